/**
 * This node's audit log: entries written before the act they record, each
 * with the origin's per-origin sequence number, the hash of the origin's
 * previous entry, and the origin's Ed25519 signature over the entry's exact
 * JSON text. Kept in LevelDB under `audit!<origin>!<seq, 16 hex digits>`, so
 * one origin's entries read back in order.
 */
import { createHash } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import type { Level } from 'level'
import { signText } from '../signing.ts'

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

export interface StoredEntry {
  /** The entry's exact JSON text, as signed. */
  text: string
  signature: string
}

export interface AuditFilter {
  since?: number
  till?: number
  kind?: string
  migration?: string
}

export interface AuditLog {
  append(kind: string, fields?: { migration?: string, actor?: string, details?: Record<string, unknown> }): Promise<AuditEntry>
  list(filter?: AuditFilter): Promise<AuditEntry[]>
}

const ZERO = '0'.repeat(64)
const key = (origin: string, seq: number): string => `${origin}!${seq.toString(16).padStart(16, '0')}`

export function entryHash (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

export function createAuditLog (db: Level<string, unknown>, origin: string, privateKey: PrivateKey): AuditLog {
  const entries = db.sublevel<string, StoredEntry>('audit', { valueEncoding: 'json' })
  let last: { seq: number, hash: string } | undefined
  let queue: Promise<unknown> = Promise.resolve()

  const tail = async (): Promise<{ seq: number, hash: string }> => {
    if (last != null) return last
    const found = await entries.values({ gte: `${origin}!`, lt: `${origin}!~`, reverse: true, limit: 1 }).all()
    const stored = found[0]
    last = stored == null ? { seq: 0, hash: ZERO } : { seq: (JSON.parse(stored.text) as AuditEntry).seq, hash: entryHash(stored.text) }
    return last
  }

  return {
    async append (kind, fields = {}) {
      // appends are serialised so seq and prev stay a chain
      const run = queue.then(async () => {
        const before = await tail()
        const entry: AuditEntry = { origin, seq: before.seq + 1, time: new Date().toISOString(), prev: before.hash, kind, ...fields }
        const text = JSON.stringify(entry)
        await entries.put(key(origin, entry.seq), { text, signature: await signText(privateKey, text) })
        last = { seq: entry.seq, hash: entryHash(text) }
        return entry
      })
      queue = run.catch(() => {})
      return await run
    },
    async list (filter = {}) {
      const out: AuditEntry[] = []
      for await (const stored of entries.values()) {
        const entry = JSON.parse(stored.text) as AuditEntry
        const t = Date.parse(entry.time)
        if (filter.since != null && t < filter.since) continue
        if (filter.till != null && t > filter.till) continue
        if (filter.kind != null && entry.kind !== filter.kind && !entry.kind.startsWith(filter.kind + '.')) continue
        if (filter.migration != null && entry.migration !== filter.migration) continue
        out.push(entry)
      }
      return out.sort((a, b) => a.time.localeCompare(b.time) || a.seq - b.seq)
    }
  }
}
