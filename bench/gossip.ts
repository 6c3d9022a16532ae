/**
 * `npm run bench:gossip`: how fast the mesh's gossip spreads, and what it
 * costs at rest, on (a) agents in separate processes and (b) many agents in
 * one process. Prints a table (stdout; progress goes to stderr) and writes
 * bench/results/gossip.json (or --out PATH) with every sample.
 *
 *   node bench/gossip.ts [--runs 20] [--proc 20] [--inproc 50] [--events 3]
 *                        [--soak-minutes 0] [--seed 1] [--out PATH] [--quick]
 *
 * `--proc 0` or `--inproc 0` skips that mesh. See bench/README.md for what
 * each figure means.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { DEFAULT_GOSSIP } from '../node/config.ts'
import { type EldStats, type Summary } from './lib/measure.ts'
import { fileURLToPath } from 'node:url'
import { forkTracked, processMesh } from './lib/mesh.ts'
import { CHANGE_TIMEOUT_MS, measureMesh, SOAK_STOP_MS, type MeshFailure, type MeshOptions, type MeshResult } from './lib/phases.ts'
import { agentTiming, idleWindowMs, soakTailMs } from './lib/timing.ts'
import type { InProcessMessage, InProcessRequest } from './lib/inproc-main.ts'

const DEFAULT_RESULTS = fileURLToPath(new URL('./results/gossip.json', import.meta.url))

/** The issue's goals. */
const GOALS = {
  changeP99Ms: { process: 300, 'in-process': 500 },
  joinMs: 2000,
  leaveMs: 2000,
  crashMs: 5000,
  idleBps: 1024
}

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    proc: { type: 'string' },
    inproc: { type: 'string' },
    events: { type: 'string' },
    'soak-minutes': { type: 'string' },
    seed: { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    out: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (flags.help === true) {
  process.stdout.write(`usage: node bench/gossip.ts [--runs N] [--proc N] [--inproc N] [--events N] [--soak-minutes M] [--seed S] [--heartbeat-ms N] [--out PATH] [--quick]
  --runs N          changes timed per mesh (default 20; --quick 5)
  --proc N          agents as separate processes (default 20; --quick 5; 0 skips)
  --inproc N        agents in this process (default 50; --quick 8; 0 skips)
  --events N        join/leave (and join/crash) rounds per mesh (default 3; --quick 1)
  --soak-minutes M  SIGSTOP soak on the process mesh (default 0: skipped)
  --seed S          PRNG seed (default 1)
  --heartbeat-ms N  agents' heartbeat interval instead of the default ${DEFAULT_GOSSIP.heartbeatMs} ms (to explore; goals assume the default)
  --out PATH        where the samples go (default bench/results/gossip.json)
  --quick           small numbers, for a smoke run
`)
  process.exit(0)
}

function count (name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value == null) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`--${name}: "${value}" is not a number ≥ ${min}\n`)
    process.exit(2)
  }
  return n
}

const quick = flags.quick === true
const options = {
  runs: count('runs', flags.runs, quick ? 5 : 20, 1),
  proc: count('proc', flags.proc, quick ? 5 : 20),
  inproc: count('inproc', flags.inproc, quick ? 8 : 50),
  events: count('events', flags.events, quick ? 1 : 3),
  soakMinutes: count('soak-minutes', flags['soak-minutes'], 0),
  seed: count('seed', flags.seed, 1),
  heartbeatMs: count('heartbeat-ms', flags['heartbeat-ms'], DEFAULT_GOSSIP.heartbeatMs, 50),
  quick
}
const RESULTS = flags.out != null && flags.out !== '' ? resolve(flags.out) : DEFAULT_RESULTS
const meshInit = options.heartbeatMs === DEFAULT_GOSSIP.heartbeatMs ? {} : { timing: { heartbeatMs: options.heartbeatMs } }

/** Timings the agents run with, read from their code (see lib/timing.ts): createAgent's defaults, unless --heartbeat-ms changes the heartbeat. */
const TIMING = await agentTiming(options.heartbeatMs)
for (const [name, n] of [['proc', options.proc], ['inproc', options.inproc]] as const) {
  if (n === 1 || n > 200) {
    process.stderr.write(`--${name}: a mesh needs 2 to 200 agents (or 0 to skip it)\n`)
    process.exit(2)
  }
}

const t0 = Date.now()
const say = (line: string): void => { process.stderr.write(`· ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s  ${line}\n`) }

function meshOptions (agents: number, soakMinutes: number): Omit<MeshOptions, 'say'> {
  return {
    agents,
    runs: options.runs,
    events: options.events,
    idleMs: quick ? 4000 : idleWindowMs(TIMING),
    settleMs: quick ? 2000 : 5000,
    formTimeoutMs: quick ? 60_000 : 90_000,
    echoCount: quick ? 30 : 100,
    soakMinutes,
    soakTailMs: soakTailMs(TIMING),
    seed: options.seed
  }
}

type Outcome = MeshResult | MeshFailure

/** The in-process mesh, in a process of its own (see lib/inproc-main.ts); a death of that process is a failure, reported. */
async function measureInProcess (agents: number): Promise<Outcome> {
  const child = forkTracked(fileURLToPath(new URL('./lib/inproc-main.ts', import.meta.url)), { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4096) })
  let outcome: Outcome | undefined
  child.on('message', (msg: InProcessMessage) => {
    if ('progress' in msg) say(msg.progress)
    else outcome = msg.outcome
  })
  const request: InProcessRequest = { options: meshOptions(agents, 0), mesh: meshInit }
  child.send(request)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => { child.once('exit', (c, s) => { resolve([c, s]) }) })
  if (outcome != null) return outcome
  const error = `the process of the in-process mesh died (${signal ?? `code ${code}`}): ${stderr.trim().split('\n').slice(0, 12).join('\n')}`
  say(`in-process: ${error.split('\n')[0]}`)
  return { mode: 'in-process', agents, failed: true, error, workarounds: [], faults: [] }
}

/**
 * The code measured: the commit, and a hash of any uncommitted change to the
 * agent's code (node/, protocols/), since the tree may move under a run.
 */
function codeVersion (): { commit: string, dirty: string | null } {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: new URL('..', import.meta.url), encoding: 'utf8' })
  try {
    const diff = git('diff', 'HEAD', '--', 'node', 'protocols')
    return { commit: git('rev-parse', '--short', 'HEAD').trim(), dirty: diff === '' ? null : createHash('sha256').update(diff).digest('hex').slice(0, 12) }
  } catch {
    return { commit: 'unknown', dirty: null }
  }
}

const code = codeVersion()
const startedAt = new Date()
const load0 = loadavg()
const results: { process: Outcome | null, inProcess: Outcome | null } = { process: null, inProcess: null }
if (options.proc > 0) results.process = await measureMesh(processMesh(meshInit), { ...meshOptions(options.proc, options.soakMinutes), say })
if (options.inproc > 0) results.inProcess = await measureInProcess(options.inproc)

// the tree may have moved under the run (agents forked later load the newer code)
const codeAtEnd = codeVersion()
const codeMoved = codeAtEnd.commit !== code.commit || codeAtEnd.dirty !== code.dirty

// ---------------------------------------------------------------- report

const ms = (v: number | undefined | null): string => {
  if (v == null) return '—'
  if (v >= 10_000) return `${(v / 1000).toFixed(1)} s`
  if (v >= 100) return `${Math.round(v)} ms`
  if (v >= 10) return `${v.toFixed(1)} ms`
  return `${v.toFixed(2)} ms`
}
const triple = (s: Summary): string => s.n === 0 ? '—' : `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`
const eldText = (e: EldStats | undefined): string => e == null ? '' : `${ms(e.p99)} / ${ms(e.max)}`
const times = (value: number | undefined, base: number | undefined): string =>
  value == null || base == null || base <= 0 ? '' : `${Math.round(value / base)}x`
const bytes = (bps: number): string => bps >= 1024 ? `${(bps / 1024).toFixed(1)} KB/s` : `${bps} B/s`

/** PASS/FAIL with the value as a share of the goal. */
function verdict (value: number | undefined, goal: number, ok = true, strict = false): string {
  if (value == null) return 'FAIL (no data)'
  const pass = ok && (strict ? value < goal : value <= goal)
  return `${pass ? 'PASS' : 'FAIL'} ${(value / goal).toFixed(2)}× goal`
}

function table (rows: string[][]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map(row => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

function reportFailure (r: MeshFailure): string {
  const out = [`(${r.mode === 'process' ? 'a' : 'b'}) ${r.agents} agents ${r.mode === 'process' ? 'as separate processes' : 'in one process'} — FAILED, no figures`]
  out.push(`    ${r.error.split('\n').join('\n    ')}`)
  if (r.formation != null) out.push(`    while forming, the agents used ${r.formation.cpuPct} % of one core`)
  if (r.formation?.eld != null) out.push(`    event-loop delay while forming: p50 ${ms(r.formation.eld.p50)}, p99 ${ms(r.formation.eld.p99)}, max ${ms(r.formation.eld.max)}`)
  for (const w of r.workarounds) out.push(`    workaround: ${w}`)
  for (const f of r.faults) out.push(`    ! ${f.count}× ${f.what}:\n        ${f.detail.split('\n').slice(0, 6).join('\n        ')}`)
  return out.join('\n')
}

function report (r: Outcome): string {
  if ('failed' in r) return reportFailure(r)
  const out: string[] = []
  const base = r.echo.p50
  const goalChange = GOALS.changeP99Ms[r.mode]
  out.push(`(${r.mode === 'process' ? 'a' : 'b'}) ${r.agents} agents ${r.mode === 'process' ? 'as separate processes' : 'in one process'}` +
    ` — mesh formed in ${ms(r.formationMs)}`)
  for (const w of r.workarounds) out.push(`    workaround: ${w}`)
  out.push(`    baseline: loopback TCP echo RTT between two agents' event loops, p50 ${ms(r.echo.p50)}, p99 ${ms(r.echo.p99)} (${r.echo.n} round trips of 64 B)`)
  out.push('')
  const rows: string[][] = [['figure', 'n', 'p50 / p99 / max', 'p99÷echo p50', 'loop delay p99 / max', 'goal', 'result']]
  const c = r.change
  rows.push([`change reaches all ${r.agents - 1} others`, `${c.runs.length - c.timeouts}/${c.runs.length}`, triple(c.reachAll), times(c.reachAll.p99, base), eldText(c.eld),
    `p99 ≤ ${goalChange} ms`, verdict(c.reachAll.p99, goalChange, c.timeouts === 0)])
  rows.push(['  (each observer, every run)', String(c.perObserver.n), triple(c.perObserver), times(c.perObserver.p99, base), '', '', ''])
  const j = r.join
  const joinsOk = j.samples.filter(s => s.seenByAllMs != null).length
  rows.push(['join: seen alive by all', `${joinsOk}/${j.samples.length}`, triple(j.seenByAll), times(j.seenByAll.p99, base), eldText(j.eld),
    `max ≤ ${GOALS.joinMs} ms`, verdict(j.seenByAll.max, GOALS.joinMs, joinsOk === j.samples.length)])
  rows.push(['join: joiner sees all alive', String(j.joinerSeesAll.n), triple(j.joinerSeesAll), times(j.joinerSeesAll.p99, base), '', '', ''])
  const l = r.leave
  const leavesOk = l.samples.filter(s => s.seenAsLeftMs != null).length
  rows.push([`leave: seen as left by all (false failures: ${l.falseFailures})`, `${leavesOk}/${l.samples.length}`, triple(l.seenAsLeft), times(l.seenAsLeft.p99, base), eldText(l.eld),
    `max ≤ ${GOALS.leaveMs} ms, 0 false`, verdict(l.seenAsLeft.max, GOALS.leaveMs, leavesOk === l.samples.length && l.falseFailures === 0)])
  if (r.crash != null) {
    const k = r.crash
    const crashesOk = k.samples.filter(s => s.goneAllMs != null).length
    rows.push(['crash (SIGKILL): suspect by all', String(k.suspectAll.n), triple(k.suspectAll), times(k.suspectAll.p99, base), '', '', ''])
    rows.push([`crash (SIGKILL): gone by all${k.backToAlive > 0 ? ` (${k.backToAlive}× back to alive)` : ''}`, `${crashesOk}/${k.samples.length}`, triple(k.goneAll), times(k.goneAll.p99, base), eldText(k.eld),
      `max ≤ ${GOALS.crashMs} ms`, verdict(k.goneAll.max, GOALS.crashMs, crashesOk === k.samples.length)])
  } else {
    rows.push(['crash: not measured (agents share this process; no SIGKILL)', '', '', '', '', `max ≤ ${GOALS.crashMs} ms`, 'n/a'])
  }
  const i = r.idle
  rows.push([`idle gossip sent per node (${(i.windowMs / 1000).toFixed(0)} s window)`, String(r.agents), bytes(i.sentPerNodeBps), '', eldText(i.eld),
    `< ${GOALS.idleBps} B/s`, verdict(i.sentPerNodeBps, GOALS.idleBps, true, true)])
  if (i.loopbackPerNodeBps != null) rows.push(['  lo tx ÷ agents (all loopback traffic, anyone\'s)', '', bytes(i.loopbackPerNodeBps), '', '', '', ''])
  rows.push(['  idle CPU per agent (% of one core)', '', `${i.cpuPerAgentPct.toFixed(1)} %`, '', '', '', ''])
  rows.push([`  machine busy in that window (${availableParallelism()} cpus)`, '', `${i.hostBusyPct} %`, '', '', '', `agents ${i.agentsPct} %, others ${Math.max(0, i.hostBusyPct - i.agentsPct)} %`])
  if (r.mode === 'process') {
    if (r.soak != null) {
      rows.push([`soak: agent ${r.soak.target} SIGSTOPped ${SOAK_STOP_MS / 1000} s × ${r.soak.stops} over ${r.soak.minutes} min, non-alive seen`, String(r.soak.stops), String(r.soak.nonAlive.length), '',
        eldText(r.soak.eld), '0', r.soak.nonAlive.length === 0 ? 'PASS' : 'FAIL'])
    } else {
      rows.push([`soak (SIGSTOP ${SOAK_STOP_MS / 1000} s at a time): skipped, run with --soak-minutes 10`, '', '', '', '', '0 non-alive', 'skipped'])
    }
  }
  rows.push(['false failures of running agents, whole run', '', String(r.falseFailures.length), '', '', '0', r.falseFailures.length === 0 ? 'PASS' : 'FAIL'])
  const faultCount = r.faults.reduce((sum, f) => sum + f.count, 0)
  rows.push(['agent faults (unhandled rejections, unexpected exits)', '', String(faultCount), '', '', '0', faultCount === 0 ? 'PASS' : 'FAIL'])
  out.push(table(rows).split('\n').map(line => `    ${line}`).join('\n'))

  const notes: string[] = []
  for (const f of r.faults) {
    const who = f.agents.map(a => a < 0 ? '?' : `h${a}`).join(', ')
    notes.push(`${f.count}× ${f.what} (agents ${who}; first ${ms(f.firstAtMs)} into the run):\n        ${f.detail.split('\n').slice(0, 6).join('\n        ')}`)
  }
  for (const run of c.runs.filter(x => x.reachAllMs == null)) notes.push(`change ${run.run} (${run.op} ${run.container} on h${run.node}) never reached h${run.missing.join(', h')} within ${CHANGE_TIMEOUT_MS / 1000} s`)
  for (const s of j.samples.filter(x => x.missing.length > 0)) notes.push(`join of h${s.index} not seen by h${s.missing.join(', h')}`)
  for (const s of l.samples) {
    for (const f of s.falseFailures) notes.push(`leave of h${s.index}: h${f.observer} saw it ${f.to} ${ms(f.afterMs)} after stop() began`)
    if (s.missing.length > 0) notes.push(`leave of h${s.index} never seen as left by h${s.missing.join(', h')}`)
  }
  for (const s of r.crash?.samples ?? []) if (s.missing.length > 0) notes.push(`crash of h${s.index} never seen as gone by h${s.missing.join(', h')}`)
  for (const e of r.soak?.nonAlive.slice(0, 10) ?? []) notes.push(`soak: h${e.observer} saw h${r.soak!.target} ${e.from} → ${e.to} at ${ms(e.atMs)}`)
  for (const f of r.falseFailures.slice(0, 10)) notes.push(`false failure: h${f.observer} saw h${f.peer} ${f.from} → ${f.to} at ${ms(f.atMs)} into the run`)
  if (r.falseFailures.length > 10) notes.push(`… and ${r.falseFailures.length - 10} more false failures (see gossip.json)`)
  for (const w of r.warnings.slice(0, 8)) notes.push(`agents logged ${w.count}× "${w.message}", e.g. ${w.example}`)
  if (notes.length > 0) {
    out.push('')
    for (const note of notes) out.push(`    ! ${note}`)
  }
  return out.join('\n')
}

const header = [
  `gossip bench  ${startedAt.toISOString()}  node ${process.version}  ${availableParallelism()} cpus (${cpus()[0]?.model.trim() ?? '?'})  load ${load0.map(x => x.toFixed(2)).join(' ')}`,
  `code ${code.commit}${code.dirty != null ? ` + uncommitted changes to node/ or protocols/ (diff ${code.dirty})` : ''}` +
    (codeMoved ? `  !! CODE MOVED DURING THE RUN: at the end ${codeAtEnd.commit}${codeAtEnd.dirty != null ? ` + diff ${codeAtEnd.dirty}` : ''}; agents started later ran other code` : ''),
  `seed ${options.seed}  runs ${options.runs}  join/leave/crash rounds ${options.events}${quick ? '  (--quick)' : ''}`,
  `agent timing (${options.heartbeatMs === DEFAULT_GOSSIP.heartbeatMs ? 'defaults, unchanged' : `HEARTBEAT CHANGED by --heartbeat-ms, otherwise defaults`}): inventory debounce ${TIMING.debounceMs} ms (GossipInit default; createAgent does not expose it, so every change figure includes it)` +
    `, heartbeat ${TIMING.heartbeatMs} ms, suspect after ${TIMING.suspectAfterMs} ms silence, gone ${TIMING.goneAfterMs} ms later, view tick ${TIMING.viewTickMs} ms` +
    `, connection ping every ${TIMING.connectionPingMs ?? '?'} ms (timeout ≥ ${TIMING.connectionPingTimeoutMinMs ?? '?'} ms)`,
  'latencies: cause (change listeners run / start() / stop() / SIGKILL) → the last other agent\'s view showing it; loop delay: event-loop delay during that phase, worst agent (node:perf_hooks)'
]
const sections = [header.join('\n')]
if (results.process != null) sections.push(report(results.process))
if (results.inProcess != null) sections.push(report(results.inProcess))
if (options.soakMinutes > 0 && results.process == null) sections.push('soak: skipped, it needs the process mesh (--proc > 0)')
process.stdout.write(sections.join('\n\n') + '\n')

mkdirSync(dirname(RESULTS), { recursive: true })
writeFileSync(RESULTS, JSON.stringify({
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  node: process.version,
  cpus: availableParallelism(),
  loadavg: { start: load0, end: loadavg() },
  code,
  codeAtEnd: codeMoved ? codeAtEnd : undefined,
  options,
  timing: TIMING,
  goals: GOALS,
  results
}, null, 2) + '\n')
process.stderr.write(`· results written to ${RESULTS}\n`)
process.exit(0)
