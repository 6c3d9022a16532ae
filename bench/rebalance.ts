/**
 * `npm run bench:rebalance`: the real rebalancing code (plan(), admit() and
 * drain() of node/rebalance) driven by a simulated mesh (bench/lib/mesh-sim.ts)
 * of 50 and 500 nodes, against the anchors measured in the same run on the
 * same seeds and meshes:
 *
 * - none: nothing ever moves (Docker Swarm never rebalances running tasks);
 * - descheduler: every interval each node over the band evicts a random
 *   movable container, placed by a naive scheduler on the node with the most
 *   free memory in a view one round old (the Kubernetes descheduler evicts
 *   without choosing where pods land);
 * - greedy: a central optimiser with full knowledge and no cooldowns, moving
 *   one container at a time (an upper bound on the fewest moves);
 * - the lower bound on moves (lowerBound()), and on small meshes of 6 nodes
 *   the exact optimum by search (optimum()).
 *
 * Then 100 drains through the real drain() with faults injected.
 *
 * Prints a markdown table (progress on stderr), writes
 * bench/results/rebalance.json and draws docs/bench-rebalance.svg.
 *
 * Flags: --seeds50 N (default 30), --seeds500 N (default 3), --uniform N
 * (50 nodes all alike, default 20), --small N (default 10), --drains N
 * (default 100), --workers N (default: the CPUs), --quick (10, 1, 5, 5, 20),
 * --out PATH (the samples there instead, no chart; --quick writes
 * bench/results/rebalance-quick.json).
 */
import { availableParallelism } from 'node:os'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker, isMainThread, parentPort } from 'node:worker_threads'
import { execFileSync } from 'node:child_process'
import { DEFAULT_POLICY, type RebalancePolicy } from '../node/rebalance/decide.ts'
import { DEFAULT_SIM, type SimOptions, GiB, generateMesh, greedy, lowerBound, optimum, simulate, simulateDrain, type Bound, type DrainResult, type GreedyResult, type RunResult } from './lib/mesh-sim.ts'
import { percentile } from './lib/measure.ts'

/** The agent's defaults, unchanged: the bench measures what ships. */
const POLICY: RebalancePolicy = DEFAULT_POLICY
const SMALL_MESH = { sizes: [[16, 1]] as Array<[number, number]>, mem: [1 * GiB, 4 * GiB] as [number, number], hot: 0.34 }

/** Every node alike: a move cannot change the mean load, so the lower bound counts exactly what the band asks. */
const UNIFORM_MESH = { sizes: [[32, 1]] as Array<[number, number]> }

interface Job { id: number, kind: 'run' | 'uniform' | 'small', nodes: number, seed: number, sim: Partial<SimOptions> }
interface JobResult {
  id: number
  kind: Job['kind']
  nodes: number
  seed: number
  ours: RunResult
  descheduler?: RunResult
  none?: RunResult
  greedy: GreedyResult
  bound: Bound
  optimum?: number
  ms: number
}

function runJob (job: Job): JobResult {
  const t0 = performance.now()
  if (job.kind === 'small') {
    const mesh = generateMesh(job.seed, job.nodes, POLICY, SMALL_MESH)
    const ours = simulate(mesh, 'ours', POLICY, job.seed, job.sim)
    const g = greedy(mesh, POLICY)
    const bound = lowerBound(mesh, POLICY)
    // beyond the search's reach, a schedule that ends within the band in as many moves as the lower bound is optimal too
    const reached = [ours.balancedAtEnd ? ours.moves : Infinity, g.balanced ? g.moves : Infinity]
    return { ...job, ours, greedy: g, bound, optimum: optimum(mesh, POLICY, 8) ?? (Math.min(...reached) === bound.lb ? bound.lb : undefined), ms: performance.now() - t0 }
  }
  const mesh = generateMesh(job.seed, job.nodes, POLICY, job.kind === 'uniform' ? UNIFORM_MESH : {})
  return {
    ...job,
    ours: simulate(mesh, 'ours', POLICY, job.seed, job.sim),
    descheduler: simulate(mesh, 'descheduler', POLICY, job.seed),
    none: simulate(mesh, 'none', POLICY, job.seed),
    greedy: greedy(mesh, POLICY),
    bound: lowerBound(mesh, POLICY),
    ms: performance.now() - t0
  }
}

function flag (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

async function runAll (jobs: Job[], workers: number): Promise<JobResult[]> {
  const results: JobResult[] = []
  const queue = [...jobs]
  const pool = Array.from({ length: Math.max(1, Math.min(workers, jobs.length)) }, () => new Worker(new URL(import.meta.url)))
  try {
    await Promise.all(pool.map(async w => {
      for (let job = queue.shift(); job != null; job = queue.shift()) {
        const j = job
        const r = await new Promise<JobResult>((resolve, reject) => {
          w.once('message', resolve)
          w.once('error', reject)
          w.postMessage(j)
        })
        w.removeAllListeners('error')
        results.push(r)
        process.stderr.write(`[bench] ${r.kind} ${r.nodes} nodes seed ${r.seed}: ${Math.round(r.ms)} ms, ${r.ours.moves} moves\n`)
      }
    }))
  } finally {
    await Promise.all(pool.map(async w => await w.terminate()))
  }
  return results.sort((a, b) => a.id - b.id)
}

interface Stat { mean: number, p95: number, max: number, n: number }
function stat (values: number[]): Stat {
  if (values.length === 0) return { mean: NaN, p95: NaN, max: NaN, n: 0 }
  return { mean: values.reduce((s, v) => s + v, 0) / values.length, p95: percentile(values, 95) as number, max: Math.max(...values), n: values.length }
}

const f = (x: number, digits = 2): string => Number.isNaN(x) ? '-' : Number.isInteger(x) && Math.abs(x) < 1e6 ? String(x) : x.toFixed(digits)
const fs3 = (s: Stat, digits = 2): string => `${f(s.mean, digits)} / ${f(s.p95, digits)} / ${f(s.max, digits)}`
const ratio = (a: number, b: number): string => Number.isNaN(a) || Number.isNaN(b) || b === 0 ? '-' : `${(a / b).toFixed(2)}×`

interface Row { figure: string, goal: string, ours: Stat, desched?: Stat, none?: Stat, reference?: string, met?: boolean | string, digits?: number }

/** The mean of the series over seeds, each padded with its last value, one point per `every` rounds. */
function meanSeries (series: number[][], every: number): number[] {
  const len = Math.max(...series.map(s => s.length))
  const out: number[] = []
  for (let i = 0; i < len; i += every) out.push(series.reduce((s, x) => s + (x[Math.min(i, x.length - 1)] as number), 0) / series.length)
  return out
}

function rowsFor (runs: JobResult[]): Row[] {
  const ours = runs.map(r => r.ours)
  const des = runs.map(r => r.descheduler as RunResult)
  const none = runs.map(r => r.none as RunResult)
  const pick = (rs: RunResult[], fn: (r: RunResult) => number): Stat => stat(rs.map(fn))
  const minutes = (r: RunResult): number => r.quietRound == null ? NaN : r.quietRound * DEFAULT_SIM.roundMs / 60_000
  const refusals = (r: RunResult): number => Object.values(r.refusals).reduce((s, v) => s + v, 0)
  const row = (figure: string, goal: string, fn: (r: RunResult) => number, met?: (s: Stat) => boolean, digits = 2): Row => {
    const s = pick(ours, fn)
    return { figure, goal, ours: s, desched: pick(des, fn), none: pick(none, fn), met: met?.(s), digits }
  }
  const ouLb = stat(runs.map(r => r.ours.moves / Math.max(1, r.bound.lb)))
  const ouG = stat(runs.map(r => r.ours.moves / Math.max(1, r.greedy.moves)))
  const quietOurs = ours.filter(r => r.quietRound != null).length
  const quietDes = des.filter(r => r.quietRound != null).length
  return [
    row('load stddev before', '', r => r.stddevBefore, undefined, 3),
    row('load stddev after', '≤ 0.1', r => r.stddevAfter, s => s.max <= 0.1, 3),
    row('moves', '', r => r.moves),
    row('GB carried by the moves', '', r => r.bytes / 1e9, undefined, 1),
    // optimum ≥ lower bound: moves ÷ lower bound ≥ moves ÷ optimum, so ≤ 1.2 here proves the goal
    { figure: 'moves ÷ proven lower bound (≥ ÷ optimum)', goal: '≤ 1.2', ours: ouLb, desched: stat(runs.map(r => (r.descheduler as RunResult).moves / Math.max(1, r.bound.lb))), reference: `LB ${fs3(stat(runs.map(r => r.bound.lb)), 1)}`, met: ouLb.max <= 1.2 ? 'yes, proven' : 'not proven' },
    // optimum ≤ greedy: moves ÷ greedy ≤ moves ÷ optimum, so > 1.2 here disproves it
    { figure: 'moves ÷ greedy central optimiser (≤ ÷ optimum)', goal: '≤ 1.2', ours: ouG, desched: stat(runs.map(r => (r.descheduler as RunResult).moves / Math.max(1, r.greedy.moves))), reference: `greedy ${fs3(stat(runs.map(r => r.greedy.moves)), 1)} moves, stddev after ${f(stat(runs.map(r => r.greedy.stddevAfter)).mean, 3)}, within the band in ${runs.filter(r => r.greedy.balanced).length}/${runs.length}`, met: ouG.max <= 1.2 ? 'not disproved' : '**no**' },
    { ...row('rounds until quiet (5 s)', '', r => r.quietRound ?? NaN, undefined, 0), reference: `quiet in ${quietOurs}/${ours.length} runs (descheduler ${quietDes}/${des.length}; not quiet = still moving after ${DEFAULT_SIM.maxRounds} rounds)` },
    row('minutes until quiet (simulated)', '', minutes, undefined, 1),
    row('capacity violations (node-rounds)', '0', r => r.capacityViolations, s => s.max === 0),
    row('double-booked targets', '0', r => r.doubleBooked, s => s.max === 0),
    row('A→B→A moves', '0', r => r.aba, s => s.max === 0),
    row('moves within a container\'s cooldown', '0', r => r.cooldownViolations, s => s.max === 0),
    row('moves after first settled (within the band, nothing in flight)', '0', r => r.movesAfterBalanced, s => s.max === 0),
    row('most moves in flight from one source', '≤ 1', r => r.maxOutPerSource, s => s.max <= 1, 0),
    row('most moves in flight to one target', '≤ 1', r => r.maxInPerTarget, s => s.max <= 1, 0),
    row('offers refused by the target, per move', '', r => refusals(r) / Math.max(1, r.moves)),
    row('runs ending within the band (share)', '', r => r.balancedAtEnd ? 1 : 0)
  ]
}

function table (title: string, rows: Row[]): string[] {
  const out = [`### ${title}`, '', '| figure (mean / p95 / max over seeds) | goal | ours | descheduler | ours ÷ descheduler | none (Swarm) | ours ÷ none | reference | goal met |', '|---|---|---|---|---|---|---|---|---|']
  for (const r of rows) {
    const d = r.digits ?? 2
    out.push(`| ${r.figure} | ${r.goal} | ${fs3(r.ours, d)} | ${r.desched != null ? fs3(r.desched, d) : ''} | ${r.desched != null ? ratio(r.ours.mean, r.desched.mean) : ''} | ${r.none != null ? fs3(r.none, d) : ''} | ${r.none != null ? ratio(r.ours.mean, r.none.mean) : ''} | ${r.reference ?? ''} | ${r.met == null ? '' : typeof r.met === 'string' ? r.met : r.met ? 'yes' : '**no**'} |`)
  }
  return out
}

function chart (sizes: Array<{ nodes: number, series: Record<'ours' | 'descheduler' | 'none', number[]>, every: number }>, bars: Array<{ label: string, value: number }>): string {
  const W = 980
  const H = 400
  const panelW = 280
  const top = 50
  const plotH = 260
  const colors = { ours: '#4e79a7', descheduler: '#e15759', none: '#999' }
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">Rebalancing, simulated mesh: load standard deviation over time (mean over seeds), and moves against the optimum</text>`
  ]
  const yMax = 0.35
  sizes.forEach((s, p) => {
    const x0 = 50 + p * (panelW + 60)
    const len = Math.max(...Object.values(s.series).map(v => v.length))
    const minutes = (len - 1) * s.every * DEFAULT_SIM.roundMs / 60_000
    const x = (i: number): number => x0 + i / Math.max(1, len - 1) * panelW
    const y = (v: number): number => top + plotH - Math.min(v, yMax) / yMax * plotH
    parts.push(`<text x="${x0 + panelW / 2}" y="${top - 8}" text-anchor="middle">${s.nodes} nodes of 8–64 GiB</text>`)
    parts.push(`<line x1="${x0}" y1="${top}" x2="${x0}" y2="${top + plotH}" stroke="#333"/><line x1="${x0}" y1="${top + plotH}" x2="${x0 + panelW}" y2="${top + plotH}" stroke="#333"/>`)
    for (const v of [0, 0.1, 0.2, 0.3]) parts.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`)
    parts.push(`<line x1="${x0}" y1="${y(0.1)}" x2="${x0 + panelW}" y2="${y(0.1)}" stroke="#59a14f" stroke-dasharray="5 4"/>`)
    parts.push(`<text x="${x0 + panelW}" y="${y(0.1) - 4}" text-anchor="end" fill="#59a14f">goal ≤ 0.1</text>`)
    for (const t of [0, 0.5, 1]) parts.push(`<text x="${x0 + t * panelW}" y="${top + plotH + 16}" text-anchor="middle">${Math.round(t * minutes)} min</text>`)
    for (const key of ['none', 'descheduler', 'ours'] as const) {
      const v = s.series[key]
      const pts = Array.from({ length: len }, (_, i) => `${x(i).toFixed(1)},${y(v[Math.min(i, v.length - 1)] as number).toFixed(1)}`).join(' ')
      parts.push(`<polyline fill="none" stroke="${colors[key]}" stroke-width="2"${key === 'none' ? ' stroke-dasharray="3 3"' : ''} points="${pts}"/>`)
    }
  })
  const lx = 50
  const ly = top + plotH + 40
  ;([['ours', 'Go-To (plan + admit)'], ['descheduler', 'descheduler-like'], ['none', 'none (Swarm)']] as const).forEach(([k, label], i) => {
    parts.push(`<rect x="${lx + i * 190}" y="${ly}" width="12" height="12" fill="${colors[k]}"/><text x="${lx + i * 190 + 18}" y="${ly + 11}">${label}</text>`)
  })
  // moves against the references
  const bx = 50 + 2 * (panelW + 60)
  const bw = W - bx - 20
  const scale = 2
  parts.push(`<text x="${bx + bw / 2}" y="${top - 8}" text-anchor="middle">our moves ÷ reference (mean)</text>`)
  bars.forEach((b, i) => {
    const y = top + 10 + i * 40
    const len = Math.min(b.value, scale) / scale * (bw - 40)
    parts.push(`<text x="${bx}" y="${y}">${b.label}</text>`)
    parts.push(`<rect x="${bx}" y="${y + 5}" width="${Math.max(1, len)}" height="14" fill="#4e79a7"/><text x="${bx + len + 4}" y="${y + 16}">${b.value.toFixed(2)}</text>`)
  })
  const one = bx + 1 / scale * (bw - 40)
  const goal = bx + 1.2 / scale * (bw - 40)
  parts.push(`<line x1="${one}" y1="${top + 5}" x2="${one}" y2="${top + 10 + bars.length * 40}" stroke="#333" stroke-dasharray="4 3"/><text x="${one}" y="${top + 24 + bars.length * 40}" text-anchor="middle">1</text>`)
  parts.push(`<line x1="${goal}" y1="${top + 5}" x2="${goal}" y2="${top + 10 + bars.length * 40}" stroke="#59a14f" stroke-dasharray="5 4"/><text x="${goal}" y="${top + 38 + bars.length * 40}" text-anchor="middle" fill="#59a14f">goal 1.2</text>`)
  parts.push('</svg>')
  return parts.join('\n')
}

async function main (): Promise<void> {
  const quick = process.argv.includes('--quick')
  const seeds50 = flag('seeds50', quick ? 10 : 30)
  const seeds500 = flag('seeds500', quick ? 1 : 3)
  const smallSeeds = flag('small', quick ? 5 : 10)
  const uniformSeeds = flag('uniform', quick ? 5 : 20)
  const drains = flag('drains', quick ? 20 : 100)
  const workers = flag('workers', availableParallelism())
  const sim: Partial<SimOptions> = {}
  const t0 = performance.now()
  let commit = 'unknown'
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: import.meta.dirname }).toString().trim() } catch {}
  let id = 0
  // the longest first, so the pool ends together
  const jobs: Job[] = [
    ...Array.from({ length: seeds500 }, (_, i) => ({ id: id++, kind: 'run' as const, nodes: 500, seed: i + 1, sim })),
    ...Array.from({ length: seeds50 }, (_, i) => ({ id: id++, kind: 'run' as const, nodes: 50, seed: i + 1, sim })),
    ...Array.from({ length: uniformSeeds }, (_, i) => ({ id: id++, kind: 'uniform' as const, nodes: 50, seed: i + 1, sim })),
    ...Array.from({ length: smallSeeds }, (_, i) => ({ id: id++, kind: 'small' as const, nodes: 6, seed: i + 1, sim }))
  ]
  const [results, drainResults] = await Promise.all([
    runAll(jobs, workers),
    (async () => {
      const out: DrainResult[] = []
      for (let seed = 1; seed <= drains; seed++) out.push(await simulateDrain(seed, POLICY))
      return out
    })()
  ])
  const wallS = (performance.now() - t0) / 1000

  const say = (line = ''): void => { process.stdout.write(line + '\n') }
  const p = POLICY
  say(`Rebalancing, simulated mesh (no Docker): commit ${commit}, ${new Date().toISOString()}, ${workers} workers, ${wallS.toFixed(0)} s wall`)
  say('')
  say(`policy: DEFAULT_POLICY as the agent ships it: weights ${JSON.stringify(p.weights)}, band mean −${p.low}/+${p.high}, ceiling ${p.ceiling}, interval ${p.intervalMs / 1000} s ±20 %, ` +
    `container cooldown ${p.containerCooldownMs / 60_000} min, node cooldown ${p.nodeCooldownMs / 1000} s, no return within ${p.returnAfterMs / 60_000} min, minGain ${p.minGain}, movable '${p.movable}'`)
  say(`sim: rounds of ${DEFAULT_SIM.roundMs / 1000} s, views ${DEFAULT_SIM.maxLag === 0 ? 'fresh' : `0–${DEFAULT_SIM.maxLag} rounds old`}, a move takes ${DEFAULT_SIM.moveOverheadMs / 1000} s + bytes at ${DEFAULT_SIM.bytesPerSecond / 1e6} MB/s, ` +
    `a refused container→target pair left out ${Math.max(5 * p.intervalMs, p.nodeCooldownMs) / 1000} s (a busy target: for all its containers, a node cooldown) and the source plans again at once (at most ${DEFAULT_SIM.maxOffers} offers a round), at most ${DEFAULT_SIM.maxRounds} rounds`)
  const out: Record<string, unknown> = { commit, at: new Date().toISOString(), wallSeconds: wallS, policy: p, sim: DEFAULT_SIM }
  const sizes: Array<{ nodes: number, series: Record<'ours' | 'descheduler' | 'none', number[]>, every: number }> = []
  const bars: Array<{ label: string, value: number }> = []
  for (const n of [50, 500]) {
    const runs = results.filter(r => r.kind === 'run' && r.nodes === n)
    if (runs.length === 0) continue
    say('')
    for (const line of table(`${n} nodes of 8–64 GiB, ${runs.length} seeds`, rowsFor(runs))) say(line)
    const every = 6
    const series = {
      ours: meanSeries(runs.map(r => r.ours.series), every),
      descheduler: meanSeries(runs.map(r => (r.descheduler as RunResult).series), every),
      none: meanSeries(runs.map(r => (r.none as RunResult).series), every)
    }
    sizes.push({ nodes: n, series, every })
    bars.push({ label: `${n} nodes ÷ greedy central`, value: stat(runs.map(r => r.ours.moves / Math.max(1, r.greedy.moves))).mean })
    bars.push({ label: `${n} nodes ÷ proven lower bound`, value: stat(runs.map(r => r.ours.moves / Math.max(1, r.bound.lb))).mean })
    out[`nodes${n}`] = { series, runs: runs.map(({ ours, descheduler, none, ...rest }) => ({ ...rest, ours: { ...ours, series: undefined }, descheduler: { ...descheduler, series: undefined }, none: { ...none, series: undefined } })) }
  }
  const uniform = results.filter(r => r.kind === 'uniform')
  if (uniform.length > 0) {
    say('')
    for (const line of table(`50 nodes all of 32 GiB, ${uniform.length} seeds: the mean cannot move, so the proven lower bound is the band's own count`, rowsFor(uniform))) say(line)
    bars.push({ label: '50 uniform nodes ÷ proven lower bound', value: stat(uniform.map(r => r.ours.moves / Math.max(1, r.bound.lb))).mean })
    out.uniform50 = uniform.map(({ ours, descheduler, none, ...rest }) => ({ ...rest, ours: { ...ours, series: undefined }, descheduler: { ...descheduler, series: undefined }, none: { ...none, series: undefined } }))
  }
  const small = results.filter(r => r.kind === 'small')
  if (small.length > 0) {
    const solved = small.filter(r => r.optimum != null)
    say('')
    say(`### Small meshes (6 nodes of 16 GiB, containers 1–4 GiB, ${small.length} seeds): the exact optimum by search`)
    say('')
    say('| seed | lower bound | optimum | greedy central | ours | ours ÷ optimum | stddev before → after |')
    say('|---|---|---|---|---|---|---|')
    for (const r of small) say(`| ${r.seed} | ${r.bound.lb} | ${r.optimum ?? 'out of reach'} | ${r.greedy.moves} | ${r.ours.moves} | ${r.optimum != null ? ratio(r.ours.moves, r.optimum) : '-'} | ${f(r.ours.stddevBefore, 3)} → ${f(r.ours.stddevAfter, 3)} |`)
    const bad = solved.filter(r => r.bound.lb > (r.optimum as number) || (r.optimum as number) > r.greedy.moves).length
    say('')
    say(`optimum known in ${solved.length}/${small.length} (by search, or a schedule ending within the band in as many moves as the lower bound); lower bound ≤ optimum ≤ greedy in ${solved.length - bad}/${solved.length}; ours ÷ optimum mean ${f(stat(solved.map(r => r.ours.moves / Math.max(1, r.optimum as number))).mean)}, max ${f(stat(solved.map(r => r.ours.moves / Math.max(1, r.optimum as number))).max)}`)
    if (solved.length > 0) bars.push({ label: '6 nodes ÷ exact optimum', value: stat(solved.map(r => r.ours.moves / Math.max(1, r.optimum as number))).mean })
    out.small = small.map(({ ours, ...rest }) => ({ ...rest, ours: { ...ours, series: undefined } }))
  }

  if (drainResults.length > 0) {
    const sum = (fn: (d: DrainResult) => number): number => drainResults.reduce((s, d) => s + fn(d), 0)
    const faults: Record<string, number> = {}
    for (const d of drainResults) for (const [k, v] of Object.entries(d.faults)) faults[k] = (faults[k] ?? 0) + v
    const complete = sum(d => d.report.stayed.every(s => s.reason.startsWith('pinned')) ? 1 : 0)
    say('')
    say(`### Drains: ${drainResults.length} through the real drain(), 8-node meshes, faults injected`)
    say('')
    say('| figure | total | goal | met |')
    say('|---|---|---|---|')
    say(`| containers on the drained nodes (pinned) | ${sum(d => d.containers)} (${sum(d => d.pinned)}) | | |`)
    say(`| lost (found on no node) | ${sum(d => d.lost)} | 0 | ${sum(d => d.lost) === 0 ? 'yes' : '**no**'} |`)
    say(`| duplicated (found on two nodes) | ${sum(d => d.duplicated)} | 0 | ${sum(d => d.duplicated) === 0 ? 'yes' : '**no**'} |`)
    say(`| done reported while a container was still at the source or not yet running at its target | ${sum(d => d.falseDone)} | 0 | ${sum(d => d.falseDone) === 0 ? 'yes' : '**no**'} |`)
    say(`| containers in neither moved nor stayed of the report | ${sum(d => d.unaccounted)} | 0 | ${sum(d => d.unaccounted) === 0 ? 'yes' : '**no**'} |`)
    say(`| pinned containers reported as stayed | ${sum(d => d.pinnedStayed)} of ${sum(d => d.pinned)} | all | ${sum(d => d.pinnedStayed) === sum(d => d.pinned) ? 'yes' : '**no**'} |`)
    say(`| drains that moved every non-pinned container (done: true when none was pinned) | ${complete} (${sum(d => d.report.done ? 1 : 0)}) | | |`)
    say(`| migrate() calls per container moved (refusals included) | ${f(sum(d => d.migrations) / Math.max(1, sum(d => d.report.moved.length)), 1)} | | |`)
    say(`| simulated minutes per drain (mean / max) | ${f(sum(d => d.report.endedAt - d.report.startedAt) / drainResults.length / 60_000, 1)} / ${f(Math.max(...drainResults.map(d => d.report.endedAt - d.report.startedAt)) / 60_000, 1)} | | |`)
    say(`| faults injected | ${Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(', ')} | | |`)
    out.drains = drainResults.map(({ report, ...rest }) => ({ ...rest, done: report.done, moved: report.moved.length, stayed: report.stayed, minutes: (report.endedAt - report.startedAt) / 60_000 }))
  }
  say('')
  say(`wall time ${wallS.toFixed(0)} s`)
  await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
  // a smoke run (--quick) keeps off the published samples and chart
  const outPath = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : quick ? join(import.meta.dirname, 'results', 'rebalance-quick.json') : undefined
  if (outPath != null) {
    await writeFile(outPath, JSON.stringify({ ...out, argv: process.argv.slice(2) }, null, 1) + '\n')
    process.stderr.write(`[bench] wrote ${outPath} (no chart)\n`)
    return
  }
  await writeFile(join(import.meta.dirname, 'results', 'rebalance.json'), JSON.stringify(out, null, 1) + '\n')
  await writeFile(join(import.meta.dirname, '..', 'docs', 'bench-rebalance.svg'), chart(sizes, bars) + '\n')
  process.stderr.write('[bench] wrote bench/results/rebalance.json and docs/bench-rebalance.svg\n')
}

if (!isMainThread) {
  parentPort?.on('message', (job: Job) => { parentPort?.postMessage(runJob(job)) })
} else {
  await main()
}
