/**
 * `npm run bench:log`: the audit log at 100k entries.
 *
 * 1. show-log of a one-hour window: `GET /v1/log?since=…&till=…` through the
 *    real API app over a real LevelDB holding 100k entries of 20 origins spread
 *    over 24 h, against the baseline of reading every entry once (a full scan).
 * 2. A new node receives all 100k: a real agent holding them, a second agent
 *    that starts empty and bootstraps from it; the time until its version
 *    vector covers everything, against the baseline of ingesting the same
 *    entries locally (verify + store, no network).
 *
 * Prints a table beside each baseline (a ratio) and writes bench/results/log.json.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { createApp } from '../api/app.ts'
import { createAgent, type Agent } from '../node/agent.ts'
import { createAuditLog, entryHash, type AuditEntry, type StoredEntry } from '../node/audit/log.ts'
import { DEFAULT_GOSSIP, type AgentConfig } from '../node/config.ts'
import { initDataDir } from '../node/data-dir.ts'
import { createLogger } from '../node/logger.ts'

const ENTRIES = Number(process.argv.find(a => a.startsWith('--entries='))?.split('=')[1] ?? 100_000)
const ORIGINS = 20
const RUNS = 20
const say = (line = ''): void => { process.stdout.write(line + '\n') }
const progress = (line: string): void => { process.stderr.write(line + '\n') }

/** 100k entries: ORIGINS chains, times spread evenly over the last 24 h. */
async function makeEntries (): Promise<StoredEntry[]> {
  const keys = await Promise.all(Array.from({ length: ORIGINS }, async () => await generateKeyPair('Ed25519')))
  const ids = keys.map(k => peerIdFromPrivateKey(k).toString())
  const heads = ids.map(() => ({ seq: 0, hash: '0'.repeat(64) }))
  const start = Date.now() - 24 * 3_600_000
  const out: StoredEntry[] = []
  const encoder = new TextEncoder()
  for (let i = 0; i < ENTRIES; i++) {
    const o = i % ORIGINS
    const head = heads[o]!
    const entry: AuditEntry = {
      origin: ids[o]!,
      seq: head.seq + 1,
      time: new Date(start + Math.floor(i * (24 * 3_600_000) / ENTRIES)).toISOString(),
      prev: head.hash,
      kind: i % 7 === 0 ? 'migration.committed' : 'api.request',
      migration: i % 7 === 0 ? `m-${i}` : undefined,
      actor: 'bench',
      details: { i, path: '/v1/mesh/join' }
    }
    const text = JSON.stringify(entry)
    out.push({ text, signature: Buffer.from(await keys[o]!.sign(encoder.encode(text))).toString('base64url') })
    head.seq = entry.seq
    head.hash = entryHash(text)
  }
  return out
}

async function fill (log: ReturnType<typeof createAuditLog>, entries: StoredEntry[]): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < entries.length; i += 1000) await log.ingest(entries.slice(i, i + 1000), 'bench')
  return performance.now() - t0
}

function stats (samples: number[]): { p50: number, p99: number, max: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)] ?? NaN
  return { p50: at(50), p99: at(99), max: sorted.at(-1) ?? NaN }
}

const root = await mkdtemp(join(tmpdir(), 'goto-bench-log-'))
const agents: Agent[] = []
try {
  progress(`signing ${ENTRIES} entries of ${ORIGINS} origins…`)
  const entries = await makeEntries()

  // ── 1. show-log of a one-hour window ──
  const db = new Level<string, unknown>(join(root, 'db'), { valueEncoding: 'json' })
  await db.open()
  const key = await generateKeyPair('Ed25519')
  const log = createAuditLog(db, peerIdFromPrivateKey(key).toString(), key)
  progress('storing them (each checked on the way in)…')
  const ingestMs = await fill(log, entries)
  const token = 'bench-token-0123456789abcdef'
  const app = createApp({ agent: { audit: log } as any, token })
  const windowMs: number[] = []
  const scanMs: number[] = []
  let windowCount = 0
  for (let r = 0; r < RUNS; r++) {
    const till = Date.now() - (r + 1) * 3_600_000
    const since = till - 3_600_000
    const t0 = performance.now()
    const res = await app.request(`/v1/log?since=${new Date(since).toISOString()}&till=${new Date(till).toISOString()}&limit=10000`, { headers: { authorization: `Bearer ${token}` } })
    const body = await res.json() as { entries: unknown[] }
    windowMs.push(performance.now() - t0)
    windowCount = body.entries.length
    const t1 = performance.now()
    let n = 0
    for await (const _ of db.sublevel('audit').values()) n++
    scanMs.push(performance.now() - t1)
    if (n !== ENTRIES) throw new Error(`scan saw ${n} entries`)
  }
  await db.close()

  // ── 2. a new node receives everything ──
  const config = async (name: string, ip: string, bootstrap: string[]): Promise<AgentConfig> => {
    const dataDir = join(root, name)
    await initDataDir(dataDir, { swarmKeyFile: name === 'a' ? undefined : join(root, 'a', 'swarm.key') })
    return { dataDir, name, listen: [`/ip4/${ip}/tcp/0`], announce: [], api: { host: ip, port: 0 }, dockerHost: 'none', bootstrap, allowPeers: [], gossip: DEFAULT_GOSSIP, migration: { policy: {} } }
  }
  const logger = createLogger('bench', { level: (process.env.GOTO_LOG_LEVEL as 'debug' | undefined) ?? 'error' })
  const a = await createAgent(await config('a', '127.0.77.1', []), { logger })
  agents.push(a)
  await a.start()
  progress('loading the holder…')
  await fill(a.audit, entries)
  const want = await a.audit.vector()
  const total = Object.values(want).reduce((s, n) => s + n, 0)
  const addr = a.info().addrs[0] as string
  const b = await createAgent(await config('b', '127.0.77.2', [addr]), { logger })
  agents.push(b)
  progress('starting the new node…')
  const t0 = performance.now()
  await b.start()
  for (;;) {
    const have = await b.audit.vector()
    if (Object.entries(want).every(([o, n]) => (have[o] ?? 0) >= n)) break
    if (performance.now() - t0 > 120_000) throw new Error('the new node did not catch up in 120 s')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const catchUpMs = performance.now() - t0

  const w = stats(windowMs)
  const s = stats(scanMs)
  const rows = [
    ['show-log, one-hour window (GET /v1/log)', `${w.p50.toFixed(1)} / ${w.p99.toFixed(1)} / ${w.max.toFixed(1)} ms`, `${windowCount} entries`, `full scan ${s.p50.toFixed(0)} ms`, `${(w.p50 / s.p50).toFixed(3)}×`, '< 200 ms', w.p99 < 200 ? 'PASS' : 'FAIL'],
    ['new node receives all entries', `${(catchUpMs / 1000).toFixed(2)} s`, `${total} entries`, `local ingest ${(ingestMs / 1000).toFixed(2)} s`, `${(catchUpMs / ingestMs).toFixed(2)}×`, '< 10 s', catchUpMs < 10_000 ? 'PASS' : 'FAIL']
  ]
  const header = ['figure', 'p50 / p99 / max', 'size', 'baseline (same run)', 'ratio', 'goal', 'result']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i]!.length)))
  say(`log bench  ${new Date().toISOString()}  node ${process.version}  ${ENTRIES} entries, ${ORIGINS} origins over 24 h, ${RUNS} runs`)
  say(header.map((h, i) => h.padEnd(widths[i]!)).join('  '))
  for (const r of rows) say(r.map((c, i) => c.padEnd(widths[i]!)).join('  '))
  await mkdir(new URL('./results/', import.meta.url), { recursive: true })
  await writeFile(new URL('./results/log.json', import.meta.url), JSON.stringify({
    date: new Date().toISOString(), node: process.version, entries: ENTRIES, origins: ORIGINS, runs: RUNS,
    window: { ms: windowMs, entries: windowCount }, fullScan: { ms: scanMs }, catchUp: { ms: catchUpMs, entries: total }, localIngest: { ms: ingestMs }
  }, null, 2) + '\n')
} finally {
  for (const agent of agents.reverse()) await agent.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
}
