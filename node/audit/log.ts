/**
 * The audit log, as this node holds it: its own entries and every other
 * origin's it has received. Each entry carries its origin's peer id, a
 * per-origin sequence number, the time, the hash of the origin's previous
 * entry and the origin's Ed25519 signature over the entry's exact JSON text,
 * so any node can check any entry, and a missing or altered one breaks the chain.
 *
 * LevelDB layout (sublevels):
 *   audit!<origin>!<seq, 16 hex>          → { text, signature }
 *   audit-head!<origin>                   → { seq, hash }   the newest entry held
 *   audit-time!<time>!<origin>!<seq>      → ''              index for time windows
 */
import { createHash } from 'node:crypto'
import { TypedEventEmitter, type PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Level } from 'level'
import { signText } from '../signing.ts'
import { createVerifier, ED25519_SPKI_PREFIX, type Verifier } from './verifier.ts'
import type { SignedEntry } from '../../protocols/log-sync/index.ts'

export interface AuditEntry {
  origin: string
  seq: number
  time: string
  /** SHA-256 (hex) of the origin's previous entry's text; 64 zeros for the first. */
  prev: string
  kind: string
  migration?: string
  actor?: string
  details?: Record<string, unknown>
}

export type StoredEntry = SignedEntry

export interface AuditFilter {
  since?: number
  till?: number
  /** Origin peer id, or a prefix of it. */
  node?: string
  /** A kind, or a prefix before a dot (`migration` matches `migration.committed`). */
  kind?: string
  migration?: string
  /** @default 1000 */
  limit?: number
  offset?: number
}

export interface IngestResult {
  accepted: number
  duplicates: number
  refused: Array<{ origin: string, seq: number, reason: string }>
  /** Entries ahead of what we hold: the sender has more we must pull. */
  ahead: number
}

export interface OriginReport {
  origin: string
  entries: number
  head: number
  /** Missing sequence numbers, as ranges. */
  gaps: Array<[number, number]>
  /** Entries whose prev hash does not match the entry before, or whose signature does not hold. */
  breaks: Array<{ seq: number, reason: string }>
}

export interface AuditEvents {
  /** An entry was stored (own or received). */
  entry: CustomEvent<{ entry: AuditEntry, stored: StoredEntry, own: boolean }>
  /** A received entry was refused. */
  refused: CustomEvent<{ origin: string, seq: number, reason: string, from: string }>
}

export interface AuditLog extends TypedEventEmitter<AuditEvents> {
  readonly origin: string
  append(kind: string, fields?: { migration?: string, actor?: string, details?: Record<string, unknown> }): Promise<AuditEntry>
  /** Check and store entries received from `from`; in order per origin, each checked against its chain. */
  ingest(entries: StoredEntry[], from: string): Promise<IngestResult>
  /** origin → highest sequence held without a gap. */
  vector(): Promise<Record<string, number>>
  /** Entries beyond `vector`, origin by origin in sequence order, at most `limit`. */
  entriesAfter(vector: Record<string, number>, limit: number): Promise<StoredEntry[]>
  list(filter?: AuditFilter): Promise<AuditEntry[]>
  verify(): Promise<OriginReport[]>
  /** Entries refused since start. */
  readonly refusedCount: number
  /** Entries this node appended since start, by kind. */
  readonly appended: ReadonlyMap<string, number>
}

const ZERO = '0'.repeat(64)

const seqKey = (seq: number): string => seq.toString(16).padStart(16, '0')

export function entryHash (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

const EntrySchema = z.strictObject({
  origin: z.string().min(1).max(128),
  seq: z.number().int().min(1),
  time: z.string().max(40).refine(t => !Number.isNaN(Date.parse(t)), 'an ISO 8601 time'),
  prev: z.string().regex(/^[0-9a-f]{64}$/),
  kind: z.string().min(1).max(64),
  migration: z.string().max(64).optional(),
  actor: z.string().max(256).optional(),
  details: z.record(z.string(), z.unknown()).optional()
})

/** Parse and check one entry's shape; throws with a reason. */
export function parseEntry (text: string): AuditEntry {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new Error('not JSON')
  }
  const parsed = EntrySchema.safeParse(json)
  if (!parsed.success) throw new Error(`breaks the schema at "${parsed.error.issues[0]?.path.join('.') ?? ''}"`)
  return parsed.data
}

/** Merge entries by time, never reordering one origin's entries (their sequence orders them, not their clock). */
export function mergeByTime (entries: AuditEntry[]): AuditEntry[] {
  const byOrigin = new Map<string, AuditEntry[]>()
  for (const e of entries) {
    let list = byOrigin.get(e.origin)
    if (list == null) byOrigin.set(e.origin, list = [])
    list.push(e)
  }
  const queues = [...byOrigin.values()].map(list => list.sort((a, b) => a.seq - b.seq))
  const at = queues.map(() => 0)
  const out: AuditEntry[] = []
  for (;;) {
    let best = -1
    for (let i = 0; i < queues.length; i++) {
      const head = queues[i]![at[i]!]
      if (head == null) continue
      const current = best >= 0 ? queues[best]![at[best]!]! : undefined
      if (current == null || head.time < current.time || (head.time === current.time && head.origin < current.origin)) best = i
    }
    if (best < 0) return out
    out.push(queues[best]![at[best]!]!)
    at[best]!++
  }
}

export function createAuditLog (db: Level<string, unknown>, origin: string, privateKey: PrivateKey): AuditLog {
  return new LevelAuditLog(db, origin, privateKey)
}

class LevelAuditLog extends TypedEventEmitter<AuditEvents> implements AuditLog {
  readonly origin: string
  refusedCount = 0
  readonly appended = new Map<string, number>()
  readonly #entries
  readonly #heads
  readonly #time
  readonly #key: PrivateKey
  readonly #ders = new Map<string, Buffer | null>()
  readonly #verifier: Verifier = createVerifier()
  #queue: Promise<unknown> = Promise.resolve()

  constructor (db: Level<string, unknown>, origin: string, privateKey: PrivateKey) {
    super()
    this.origin = origin
    this.#key = privateKey
    this.#entries = db.sublevel<string, StoredEntry>('audit', { valueEncoding: 'json' })
    this.#heads = db.sublevel<string, { seq: number, hash: string }>('audit-head', { valueEncoding: 'json' })
    this.#time = db.sublevel<string, string>('audit-time', { valueEncoding: 'utf8' })
  }

  /** One writer at a time, so heads and chains stay consistent. */
  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn)
    this.#queue = run.catch(() => {})
    return await run
  }

  async #head (origin: string): Promise<{ seq: number, hash: string }> {
    return await this.#heads.get(origin) ?? { seq: 0, hash: ZERO }
  }

  /** The writes that store one entry and move its origin's head; written in one batch with others. */
  #ops (entry: AuditEntry, stored: StoredEntry, hash: string): any[] {
    const k = `${entry.origin}!${seqKey(entry.seq)}`
    return [
      { type: 'put', sublevel: this.#entries, key: k, value: stored },
      { type: 'put', sublevel: this.#heads, key: entry.origin, value: { seq: entry.seq, hash } },
      { type: 'put', sublevel: this.#time, key: `${entry.time}!${k}`, value: '' }
    ]
  }

  /** `sync` for own entries: each is written before the act it records, so it must outlive a crash of the host. */
  async #store (entry: AuditEntry, stored: StoredEntry, options: { sync: boolean } = { sync: false }): Promise<void> {
    await this.#entries.db.batch(this.#ops(entry, stored, entryHash(stored.text)), options as any)
  }

  async append (kind: string, fields: { migration?: string, actor?: string, details?: Record<string, unknown> } = {}): Promise<AuditEntry> {
    return await this.#serial(async () => {
      const head = await this.#head(this.origin)
      const entry: AuditEntry = { origin: this.origin, seq: head.seq + 1, time: new Date().toISOString(), prev: head.hash, kind, ...fields }
      const text = JSON.stringify(entry)
      const stored = { text, signature: await signText(this.#key, text) }
      await this.#store(entry, stored, { sync: true })
      this.appended.set(kind, (this.appended.get(kind) ?? 0) + 1)
      this.safeDispatchEvent('entry', { detail: { entry, stored, own: true } })
      return entry
    })
  }

  /** The origin's Ed25519 key as SPKI DER, or null when the peer id holds no Ed25519 key. */
  #der (origin: string): Buffer | null {
    let der = this.#ders.get(origin)
    if (der === undefined) {
      try {
        const raw = peerIdFromString(origin).publicKey
        der = raw?.type === 'Ed25519' ? Buffer.concat([ED25519_SPKI_PREFIX, raw.raw]) : null
      } catch {
        der = null
      }
      this.#ders.set(origin, der)
    }
    return der
  }

  async ingest (entries: StoredEntry[], from: string): Promise<IngestResult> {
    return await this.#serial(async () => {
      const result: IngestResult = { accepted: 0, duplicates: 0, refused: [], ahead: 0 }
      const heads = new Map<string, { seq: number, hash: string }>()
      const refuse = (origin: string, seq: number, reason: string): void => {
        this.refusedCount++
        result.refused.push({ origin, seq, reason })
        this.safeDispatchEvent('refused', { detail: { origin, seq, reason, from } })
      }
      // order each origin's entries by sequence, whatever order they came in
      const parsed: Array<{ entry: AuditEntry, stored: StoredEntry }> = []
      for (const stored of entries) {
        try {
          parsed.push({ entry: parseEntry(stored.text), stored })
        } catch (err: any) {
          refuse('unknown', 0, `unreadable entry: ${err.message}`)
        }
      }
      parsed.sort((a, b) => a.entry.origin.localeCompare(b.entry.origin) || a.entry.seq - b.entry.seq)
      // check every signature that may matter at once, over all cores
      for (const { entry } of parsed) if (!heads.has(entry.origin)) heads.set(entry.origin, { ...await this.#head(entry.origin) })
      const candidates = parsed.filter(p => p.entry.seq > (heads.get(p.entry.origin)?.seq ?? 0) && this.#der(p.entry.origin) != null)
      const checked = await this.#verifier.verifyAll(candidates.map(p => ({ der: this.#der(p.entry.origin) as Buffer, text: p.stored.text, signature: p.stored.signature })))
      const signed = new Set(candidates.filter((_, i) => checked[i] === true).map(p => p.stored))
      const ops: any[] = []
      const stored_: Array<{ entry: AuditEntry, stored: StoredEntry }> = []
      for (const { entry, stored } of parsed) {
        let head = heads.get(entry.origin)
        if (head == null) heads.set(entry.origin, head = await this.#head(entry.origin))
        if (entry.seq <= head.seq) {
          const mine = await this.#entries.get(`${entry.origin}!${seqKey(entry.seq)}`)
          if (mine?.text === stored.text) result.duplicates++
          else if (mine != null) refuse(entry.origin, entry.seq, 'conflicts with the entry held for that sequence number')
          else result.duplicates++
          continue
        }
        if (entry.seq > head.seq + 1) {
          result.ahead++
          continue
        }
        if (!signed.has(stored)) {
          refuse(entry.origin, entry.seq, 'the signature does not hold for the origin\'s key')
          continue
        }
        if (entry.prev !== head.hash) {
          refuse(entry.origin, entry.seq, 'its previous-entry hash does not match the chain')
          continue
        }
        head.seq = entry.seq
        head.hash = entryHash(stored.text)
        ops.push(...this.#ops(entry, stored, head.hash))
        stored_.push({ entry, stored })
        result.accepted++
      }
      // one batch for the lot: the heads written last for each origin are the newest
      if (ops.length > 0) await this.#entries.db.batch(ops)
      for (const { entry, stored } of stored_) this.safeDispatchEvent('entry', { detail: { entry, stored, own: false } })
      return result
    })
  }

  async vector (): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for await (const [origin, head] of this.#heads.iterator()) out[origin] = head.seq
    return out
  }

  async entriesAfter (vector: Record<string, number>, limit: number): Promise<StoredEntry[]> {
    const out: StoredEntry[] = []
    for await (const [origin, head] of this.#heads.iterator()) {
      const have = vector[origin] ?? 0
      if (head.seq <= have) continue
      for await (const stored of this.#entries.values({ gt: `${origin}!${seqKey(have)}`, lt: `${origin}!~`, limit: limit - out.length })) {
        out.push(stored)
      }
      if (out.length >= limit) break
    }
    return out
  }

  async list (filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const range: { gte?: string, lte?: string } = {}
    if (filter.since != null) range.gte = new Date(filter.since).toISOString()
    if (filter.till != null) range.lte = new Date(filter.till).toISOString() + '~'
    const keys: string[] = []
    for await (const key of this.#time.keys(range)) {
      const rest = key.slice(key.indexOf('!') + 1)
      if (filter.node != null && !rest.startsWith(filter.node)) continue
      keys.push(rest)
    }
    const stored = keys.length === 0 ? [] : await this.#entries.getMany(keys)
    const matched: AuditEntry[] = []
    for (const s of stored) {
      if (s == null) continue
      const entry = JSON.parse(s.text) as AuditEntry
      if (filter.kind != null && entry.kind !== filter.kind && !entry.kind.startsWith(filter.kind + '.')) continue
      if (filter.migration != null && entry.migration !== filter.migration) continue
      matched.push(entry)
    }
    const merged = mergeByTime(matched)
    const offset = filter.offset ?? 0
    return merged.slice(offset, offset + (filter.limit ?? 1000))
  }

  async verify (): Promise<OriginReport[]> {
    const reports: OriginReport[] = []
    for await (const [origin, head] of this.#heads.iterator()) {
      const report: OriginReport = { origin, entries: 0, head: head.seq, gaps: [], breaks: [] }
      let expected = 1
      let prevHash = ZERO
      const der = this.#der(origin)
      const unsigned: Array<{ seq: number, stored: StoredEntry }> = []
      for await (const stored of this.#entries.values({ gt: `${origin}!`, lt: `${origin}!~` })) {
        let entry: AuditEntry
        try {
          entry = parseEntry(stored.text)
        } catch (err: any) {
          report.breaks.push({ seq: expected, reason: `unreadable: ${err.message}` })
          continue
        }
        report.entries++
        if (entry.seq > expected) {
          report.gaps.push([expected, entry.seq - 1])
        } else if (entry.prev !== prevHash) {
          report.breaks.push({ seq: entry.seq, reason: 'previous-entry hash does not match' })
        }
        unsigned.push({ seq: entry.seq, stored })
        expected = entry.seq + 1
        prevHash = entryHash(stored.text)
      }
      if (expected <= head.seq) report.gaps.push([expected, head.seq])
      const checked = der == null ? [] : await this.#verifier.verifyAll(unsigned.map(u => ({ der, text: u.stored.text, signature: u.stored.signature })))
      unsigned.forEach((u, i) => { if (checked[i] !== true) report.breaks.push({ seq: u.seq, reason: 'signature does not hold' }) })
      report.breaks.sort((x, y) => x.seq - y.seq)
      reports.push(report)
    }
    return reports
  }
}
