/**
 * `npm run bench:migrate`: Go-To's migration against the manual path on the
 * same two Docker engines in one run.
 *
 * Baseline (what operators do by hand): the container stopped (`docker kill`,
 * so no stop timeout counts against it), `docker commit`, `docker save |
 * docker load` into the other engine, each volume as a tar stream
 * (`docker cp c:/vol - | docker cp - c2:/`), `docker create` and `docker
 * start` there. It is stopped throughout, so its downtime is its wall time.
 *
 * Go-To: `POST /v1/migrations` on the source agent, the agents' real mesh
 * (Noise, Yamux, chunk verification on).
 *
 * Cases: cold (300 MB of random data in the container's filesystem and a
 * 100 MB volume), with pre-copy and without; the way back after 1 % of it
 * changed; a second container on a 200 MB base whose first container
 * already moved; a transfer cut at half its chunks, then resumed.
 *
 * Prints a table beside the baseline (ratios), writes
 * bench/results/migrate.json and draws docs/bench-migrate.svg.
 *
 * Flags: --scale=N multiplies every size (default 1; 0.1 for a quick look).
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../test/harness/cluster.ts'
import type { AgentProc } from '../test/harness/agent.ts'
import type { Engine } from '../test/harness/engine.ts'

const SCALE = Number(process.argv.find(a => a.startsWith('--scale='))?.split('=')[1] ?? 1)
const MB = 1024 * 1024
/** The cold workload: files of 10 MB in the layer and in the volume. */
const LAYER_FILES = Math.max(1, Math.round(30 * SCALE))
const VOLUME_FILES = Math.max(1, Math.round(10 * SCALE))
const BASE_FILES = Math.max(1, Math.round(20 * SCALE))
const FILE_MB = 10
const say = (line = ''): void => { process.stdout.write(line + '\n') }
const progress = (line: string): void => { process.stderr.write(`[bench] ${line}\n`) }

interface Figures {
  wallMs: number
  downtimeMs: number
  wireBytes: number
  /** Peak RSS of the two agents (Go-To only). */
  rssBytes?: number
}

interface Row {
  case: string
  baseline: Figures
  goto: Figures
  note?: string
}

function peakRss (agent: AgentProc): number {
  const status = readFileSync(`/proc/${agent.proc.pid as number}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

/** A container whose layer holds `layerFiles` and whose volume `volumeFiles` files of 10 MB of random bytes. */
async function makeContainer (e: Engine, name: string, layerFiles: number, volumeFiles: number, image = BASE_IMAGE): Promise<void> {
  const write = (dir: string, n: number, prefix: string): string => `for i in $(seq 1 ${n}); do head -c ${FILE_MB}m /dev/urandom > ${dir}/${prefix}$i.bin; done`
  await e.docker(['run', '-d', '--network', 'none', '--name', name, '-v', `${name}-data:/data`, image, 'sh', '-c',
    `[ -f /ready ] || { mkdir -p /app && ${write('/app', layerFiles, 'f')} && ${write('/data', volumeFiles, 'v')} && touch /ready; }; exec sleep 1000000`])
  await until(async () => await e.docker(['exec', name, 'ls', '/ready']).then(() => true, () => false), 600_000, `${name} to write its data`, 200)
}

/** Pipe one command's stdout into another's stdin; resolves to the bytes that crossed. */
async function pipe (from: [string, string[]], to: [string, string[]]): Promise<number> {
  const a = spawn(from[0], from[1], { stdio: ['ignore', 'pipe', 'pipe'] })
  const b = spawn(to[0], to[1], { stdio: ['pipe', 'ignore', 'pipe'] })
  let bytes = 0
  let errors = ''
  a.stderr.on('data', (d: Buffer) => { errors += d.toString() })
  b.stderr.on('data', (d: Buffer) => { errors += d.toString() })
  a.stdout.on('data', (d: Buffer) => { bytes += d.byteLength })
  a.stdout.pipe(b.stdin)
  const done = (p: ReturnType<typeof spawn>): Promise<number | null> => new Promise(resolve => p.once('exit', resolve))
  const [ca, cb] = await Promise.all([done(a), done(b)])
  if (ca !== 0 || cb !== 0) throw new Error(`${from[1].join(' ')} | ${to[1].join(' ')} failed (${ca}, ${cb}): ${errors}`)
  return bytes
}

/** The manual path, stopped throughout. */
async function manual (src: Engine, dst: Engine, name: string): Promise<Figures> {
  const t0 = performance.now()
  await src.docker(['kill', name])
  const image = `manual/${name}:moved`
  await src.docker(['commit', name, image])
  let wire = await pipe(['docker', ['-H', src.host, 'save', image]], ['docker', ['-H', dst.host, 'load', '-q']])
  await dst.docker(['volume', 'create', `${name}-data`])
  await dst.docker(['create', '--network', 'none', '--name', name, '-v', `${name}-data:/data`, image, 'sh', '-c', '[ -f /ready ] || exit 1; exec sleep 1000000'])
  wire += await pipe(['docker', ['-H', src.host, 'cp', `${name}:/data`, '-']], ['docker', ['-H', dst.host, 'cp', '-', `${name}:/`]])
  await dst.docker(['start', name])
  const ms = performance.now() - t0
  await src.docker(['rm', '-f', name])
  await src.docker(['rmi', image]).catch(() => {})
  return { wallMs: ms, downtimeMs: ms, wireBytes: wire }
}

async function restartAgents (cluster: Cluster, env: Array<NodeJS.ProcessEnv | undefined> = []): Promise<void> {
  for (const i of [0, 1]) {
    await cluster.agents[i]!.stop()
    cluster.agents[i] = await cluster.agents[i]!.restart(env[i] ?? {})
  }
  await until(async () => {
    const views = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as any[]))
    return views.every(v => v.some(p => p.status === 'alive'))
  }, 30_000, 'the mesh')
}

/** Go-To, from agent `from` to the other; fresh agents so the peak RSS is this migration's. */
async function goto (cluster: Cluster, from: number, name: string, options: { precopy?: boolean, env?: Array<NodeJS.ProcessEnv | undefined>, restart?: boolean } = {}): Promise<Figures & { record: any }> {
  if (options.restart !== false) await restartAgents(cluster, options.env)
  const to = from === 0 ? 'host1' : 'host0'
  const t0 = performance.now()
  const res = await cluster.agents[from]!.call('POST', '/v1/migrations', { container: name, target: to, precopy: options.precopy, async: true })
  if (res.status !== 202) throw new Error(`migration refused: ${JSON.stringify(res.body)}`)
  const { value: record } = await until(async () => {
    const r = await cluster.agents[from]!.call('GET', `/v1/migrations/${res.body.id as string}`)
    return ['activated', 'aborted'].includes(r.body.phase) ? r.body : undefined
  }, 1_800_000, `migration ${res.body.id as string}`, 100)
  const wallMs = performance.now() - t0
  return {
    wallMs,
    downtimeMs: record.downtimeMs ?? NaN,
    wireBytes: record.transfer?.wireBytes ?? NaN,
    rssBytes: Math.max(peakRss(cluster.agents[0]!), peakRss(cluster.agents[1]!)),
    record
  }
}

/** Change `percent` of the data in place: the first MBs of a few files in the layer and the volume. */
async function change (e: Engine, name: string, totalFiles: number, percent: number): Promise<void> {
  const mb = Math.max(1, Math.round(totalFiles * FILE_MB * percent / 100))
  const layerMb = Math.max(1, Math.round(mb * 3 / 4))
  const volumeMb = Math.max(1, mb - layerMb)
  const edits = [
    ...Array.from({ length: layerMb }, (_, i) => `head -c 1048576 /dev/urandom | dd of=/app/f${(i % LAYER_FILES) + 1}.bin bs=1048576 seek=${1 + Math.floor(i / LAYER_FILES)} conv=notrunc 2>/dev/null`),
    ...Array.from({ length: volumeMb }, (_, i) => `head -c 1048576 /dev/urandom | dd of=/data/v${(i % VOLUME_FILES) + 1}.bin bs=1048576 seek=${1 + Math.floor(i / VOLUME_FILES)} conv=notrunc 2>/dev/null`)
  ]
  await e.docker(['exec', name, 'sh', '-c', edits.join(' && ')])
}

const fmtMs = (ms: number): string => Number.isNaN(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`
const fmtB = (b: number | undefined): string => b == null || Number.isNaN(b) ? '-' : b >= 10 * MB ? `${(b / MB).toFixed(0)} MB` : `${(b / MB).toFixed(2)} MB`
const ratio = (a: number, b: number): string => Number.isNaN(a) || Number.isNaN(b) || b === 0 ? '-' : `${(a / b).toFixed(3)}×`

function chart (rows: Row[]): string {
  const metrics: Array<[keyof Figures, string, string]> = [['wallMs', 'wall time', '#4e79a7'], ['downtimeMs', 'downtime', '#e15759'], ['wireBytes', 'bytes on the wire', '#59a14f']]
  const w = 760
  const rowH = 74
  const left = 230
  const h = 60 + rows.length * rowH + 40
  const scaleMax = 1.2
  const x = (v: number): number => left + Math.min(v, scaleMax) / scaleMax * (w - left - 40)
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="20" text-anchor="middle" font-size="14">Go-To ÷ manual docker save | load (lower is better; 1 = the baseline)</text>`
  ]
  metrics.forEach(([, label, color], i) => {
    parts.push(`<rect x="${left + i * 170}" y="32" width="12" height="12" fill="${color}"/><text x="${left + i * 170 + 18}" y="43">${label}</text>`)
  })
  rows.forEach((row, r) => {
    const y0 = 60 + r * rowH
    parts.push(`<text x="${left - 8}" y="${y0 + 34}" text-anchor="end">${row.case}</text>`)
    metrics.forEach(([key, , color], i) => {
      const v = (row.goto[key] as number) / (row.baseline[key] as number)
      if (!Number.isFinite(v)) return
      const y = y0 + 8 + i * 20
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(v) - left)}" height="16" fill="${color}"/>`)
      parts.push(`<text x="${x(v) + 4}" y="${y + 12}">${v < 0.01 ? v.toFixed(4) : v.toFixed(2)}${v > scaleMax ? ' →' : ''}</text>`)
    })
  })
  parts.push(`<line x1="${x(1)}" y1="50" x2="${x(1)}" y2="${h - 30}" stroke="#333" stroke-dasharray="4 3"/>`)
  parts.push(`<text x="${x(1)}" y="${h - 14}" text-anchor="middle">1 (baseline)</text>`)
  parts.push('</svg>')
  return parts.join('\n')
}

async function main (): Promise<void> {
  progress(`scale ${SCALE}: ${LAYER_FILES * FILE_MB} MB in the layer, ${VOLUME_FILES * FILE_MB} MB in the volume, a ${BASE_FILES * FILE_MB} MB base`)
  const cluster = await startCluster({ hosts: 2, label: 'bench-migrate' })
  const [e0, e1] = cluster.engines as [Engine, Engine]
  const rows: Row[] = []
  try {
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 20_000, 'the mesh')

    // cold
    progress('cold: writing the data of three containers')
    await makeContainer(e0, 'cold-manual', LAYER_FILES, VOLUME_FILES)
    await makeContainer(e0, 'cold-goto', LAYER_FILES, VOLUME_FILES)
    await makeContainer(e0, 'cold-noprecopy', LAYER_FILES, VOLUME_FILES)
    progress('cold: manual')
    const coldManual = await manual(e0, e1, 'cold-manual')
    progress('cold: Go-To with pre-copy')
    const coldGoto = await goto(cluster, 0, 'cold-goto')
    rows.push({ case: 'cold, pre-copy on', baseline: coldManual, goto: coldGoto })
    progress('cold: Go-To without pre-copy')
    const coldPlain = await goto(cluster, 0, 'cold-noprecopy', { precopy: false })
    rows.push({ case: 'cold, pre-copy off', baseline: coldManual, goto: coldPlain })

    // back after 1 %
    progress('back: changing 1 % on host 1, then both ways back')
    await change(e1, 'cold-goto', LAYER_FILES + VOLUME_FILES, 1)
    await change(e1, 'cold-manual', LAYER_FILES + VOLUME_FILES, 1)
    const backManual = await manual(e1, e0, 'cold-manual')
    const backGoto = await goto(cluster, 1, 'cold-goto')
    rows.push({ case: 'back after a 1 % change', baseline: backManual, goto: backGoto })

    // a second container on a shared base
    progress('shared base: building a 200 MB base image, moving its first container')
    await makeContainer(e0, 'base-src', BASE_FILES, 0)
    await e0.docker(['commit', 'base-src', 'bench/base200:1'])
    await e0.docker(['rm', '-f', 'base-src'])
    await makeContainer(e0, 'first-on-base', 1, 1, 'bench/base200:1')
    await goto(cluster, 0, 'first-on-base', { restart: false })
    await makeContainer(e0, 'second-manual', 1, 1, 'bench/base200:1')
    await makeContainer(e0, 'second-goto', 1, 1, 'bench/base200:1')
    const secondManual = await manual(e0, e1, 'second-manual')
    const secondGoto = await goto(cluster, 0, 'second-goto')
    rows.push({ case: 'second container, shared base', baseline: secondManual, goto: secondGoto })

    // cut at half, then resumed
    progress('cut: a transfer cut at half its chunks, then the migration run again')
    await makeContainer(e0, 'cut-goto', LAYER_FILES, VOLUME_FILES)
    const half = Math.max(1, Math.round((coldGoto.record.transfer?.moved ?? 2000) / 2))
    const cut = await goto(cluster, 0, 'cut-goto', { env: [undefined, { GOTO_FAILPOINTS: `target:chunk-stored=cut@${half}` }] })
    if (cut.record.phase !== 'aborted') throw new Error(`the cut run ended ${String(cut.record.phase)}`)
    const resumed = await goto(cluster, 0, 'cut-goto')
    rows.push({
      case: 'cut at half, then resumed',
      baseline: coldManual,
      goto: { wallMs: cut.wallMs + resumed.wallMs, downtimeMs: resumed.downtimeMs, wireBytes: cut.wireBytes + resumed.wireBytes, rssBytes: Math.max(cut.rssBytes ?? 0, resumed.rssBytes ?? 0) },
      note: `bytes ${ratio(cut.wireBytes + resumed.wireBytes, coldGoto.wireBytes)} of an uncut cold run`
    })
  } finally {
    await cluster.stop()
  }

  say('')
  say(`Go-To migration against docker commit + save | load + volume tar, stopped throughout (same engines, one run; scale ${SCALE})`)
  say('')
  say('| case | wall: manual / Go-To (ratio) | downtime: manual / Go-To (ratio) | bytes on the wire: manual / Go-To (ratio) | agent peak RSS | note |')
  say('|---|---|---|---|---|---|')
  for (const r of rows) {
    say(`| ${r.case} | ${fmtMs(r.baseline.wallMs)} / ${fmtMs(r.goto.wallMs)} (${ratio(r.goto.wallMs, r.baseline.wallMs)}) | ${fmtMs(r.baseline.downtimeMs)} / ${fmtMs(r.goto.downtimeMs)} (${ratio(r.goto.downtimeMs, r.baseline.downtimeMs)}) | ${fmtB(r.baseline.wireBytes)} / ${fmtB(r.goto.wireBytes)} (${ratio(r.goto.wireBytes, r.baseline.wireBytes)}) | ${fmtB(r.goto.rssBytes)} | ${r.note ?? ''} |`)
  }
  const cold = rows[0]!
  const back = rows[2]!
  say('')
  say(`back after 1 %: ${ratio(back.goto.wireBytes, cold.goto.wireBytes)} of the cold bytes, ${ratio(back.goto.wallMs, cold.goto.wallMs)} of the cold time`)
  const out = { scale: SCALE, at: new Date().toISOString(), rows }
  await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
  await writeFile(join(import.meta.dirname, 'results', 'migrate.json'), JSON.stringify(out, null, 2) + '\n')
  await writeFile(join(import.meta.dirname, '..', 'docs', 'bench-migrate.svg'), chart(rows) + '\n')
  progress('wrote bench/results/migrate.json and docs/bench-migrate.svg')
}

await main()
