import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { createAuditLog, entryHash, type AuditEntry, type AuditLog, type StoredEntry } from '../../node/audit/log.ts'
import { parseTime } from '../../node/audit/time.ts'
import { decodeLogMessage, encodeLogMessage, MAX_FRAME_BYTES } from '../../protocols/log-sync/index.ts'

const dirs: string[] = []
const dbs: Array<Level<string, unknown>> = []
after(async () => {
  for (const db of dbs) await db.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function node (): Promise<{ log: AuditLog, key: Awaited<ReturnType<typeof generateKeyPair>>, id: string, db: Level<string, unknown> }> {
  const dir = await mkdtemp(join(tmpdir(), 'goto-audit-'))
  dirs.push(dir)
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
  await db.open()
  dbs.push(db)
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  return { log: createAuditLog(db, id, key), key, id, db }
}

/** Sign an entry by hand, as a forger (or a skewed clock) would. */
async function handMade (key: Awaited<ReturnType<typeof generateKeyPair>>, entry: AuditEntry): Promise<StoredEntry> {
  const text = JSON.stringify(entry)
  return { text, signature: Buffer.from(await key.sign(new TextEncoder().encode(text))).toString('base64url') }
}

describe('audit log', () => {
  let a: Awaited<ReturnType<typeof node>>
  let b: Awaited<ReturnType<typeof node>>
  let own: StoredEntry[]

  before(async () => {
    a = await node()
    b = await node()
    for (let i = 0; i < 5; i++) await a.log.append('test.step', { details: { i } })
    own = await a.log.entriesAfter({}, 100)
  })

  it('chains its own entries: per-origin sequence, previous hash, signature', async () => {
    assert.equal(own.length, 5)
    const entries = own.map(s => JSON.parse(s.text) as AuditEntry)
    assert.deepEqual(entries.map(e => e.seq), [1, 2, 3, 4, 5])
    assert.equal(entries[0]!.prev, '0'.repeat(64))
    for (let i = 1; i < 5; i++) assert.equal(entries[i]!.prev, entryHash(own[i - 1]!.text))
    assert.deepEqual(await a.log.vector(), { [a.id]: 5 })
    assert.ok((await a.log.verify()).every(r => r.gaps.length === 0 && r.breaks.length === 0))
  })

  it('takes another origin\'s entries in any order, once', async () => {
    const shuffled = [own[3]!, own[0]!, own[4]!, own[2]!, own[1]!]
    const first = await b.log.ingest(shuffled, a.id)
    assert.equal(first.accepted, 5)
    assert.equal(first.refused.length, 0)
    const again = await b.log.ingest(own, a.id)
    assert.equal(again.accepted, 0)
    assert.equal(again.duplicates, 5)
    assert.deepEqual(await b.log.vector(), { [a.id]: 5 })
  })

  it('holds back entries past a gap and says the sender is ahead', async () => {
    const c = await node()
    const result = await c.log.ingest([own[0]!, own[2]!, own[3]!], a.id)
    assert.equal(result.accepted, 1)
    assert.equal(result.ahead, 2)
    assert.deepEqual(await c.log.vector(), { [a.id]: 1 })
  })

  it('refuses forged, altered and reordered entries, and reports each', async () => {
    const c = await node()
    const refused: string[] = []
    c.log.addEventListener('refused', (e) => { refused.push(e.detail.reason) })
    const mallory = await generateKeyPair('Ed25519')
    // forged: names a's origin, signed with another key
    const forged = await handMade(mallory, { ...JSON.parse(own[0]!.text), details: { i: 'forged' } })
    // altered: one byte of a real entry changed
    const altered = { ...own[0]!, text: own[0]!.text.replace('"i":0', '"i":9') }
    let result = await c.log.ingest([forged, altered], 'mallory')
    assert.equal(result.accepted, 0)
    assert.equal(result.refused.length, 2)
    assert.match(refused.join('|'), /signature does not hold/)
    // reordered: a real origin's seq 2 whose prev skips its seq 1
    const d = await node()
    await d.log.append('x')
    await d.log.append('y')
    const [d1, d2] = await d.log.entriesAfter({}, 10)
    const skipped = await handMade(d.key, { ...JSON.parse(d2!.text), seq: 1 })
    result = await c.log.ingest([skipped], 'mallory')
    assert.equal(result.refused[0]?.reason, 'its previous-entry hash does not match the chain')
    // and the true chain still goes in
    result = await c.log.ingest([d2!, d1!], d.id)
    assert.equal(result.accepted, 2)
    // a second, different entry for a sequence already held
    const fork = await handMade(d.key, { ...JSON.parse(d2!.text), kind: 'fork' })
    result = await c.log.ingest([fork], 'mallory')
    assert.match(result.refused[0]?.reason ?? '', /conflicts/)
    assert.equal(c.log.refusedCount, 4)
    assert.ok((await c.log.verify()).every(r => r.breaks.length === 0))
  })

  it('shows a deleted entry as a gap in verify', async () => {
    const c = await node()
    await c.log.ingest(own, a.id)
    await c.db.sublevel('audit').del(`${a.id}!${(3).toString(16).padStart(16, '0')}`)
    const report = (await c.log.verify()).find(r => r.origin === a.id)
    assert.deepEqual(report?.gaps, [[3, 3]])
    assert.equal(report?.entries, 4)
    assert.deepEqual(report?.breaks, [])
    // and an entry altered in place breaks its signature
    const key5 = `${a.id}!${(5).toString(16).padStart(16, '0')}`
    const five = await c.db.sublevel<string, StoredEntry>('audit', { valueEncoding: 'json' }).get(key5)
    await c.db.sublevel<string, StoredEntry>('audit', { valueEncoding: 'json' }).put(key5, { ...five!, text: five!.text.replace('"i":4', '"i":5') })
    const again = (await c.log.verify()).find(r => r.origin === a.id)
    assert.deepEqual(again?.breaks, [{ seq: 5, reason: 'signature does not hold' }])
  })

  it('keeps one origin\'s entries in sequence order whatever its clock says', async () => {
    const skewed = await node()
    const c = await node()
    // an origin whose clock jumps back an hour between its 1st and 2nd entry
    const t0 = Date.now()
    const e1: AuditEntry = { origin: skewed.id, seq: 1, time: new Date(t0).toISOString(), prev: '0'.repeat(64), kind: 'first' }
    const s1 = await handMade(skewed.key, e1)
    const e2: AuditEntry = { origin: skewed.id, seq: 2, time: new Date(t0 - 3_600_000).toISOString(), prev: entryHash(s1.text), kind: 'second' }
    const s2 = await handMade(skewed.key, e2)
    const e3: AuditEntry = { origin: skewed.id, seq: 3, time: new Date(t0 + 1000).toISOString(), prev: entryHash(s2.text), kind: 'third' }
    const s3 = await handMade(skewed.key, e3)
    const result = await c.log.ingest([s3, s1, s2], skewed.id)
    assert.equal(result.accepted, 3, 'none lost')
    await c.log.append('local')
    const listed = await c.log.list({ since: t0 - 7_200_000 })
    const mine = listed.filter(e => e.origin === skewed.id).map(e => e.kind)
    assert.deepEqual(mine, ['first', 'second', 'third'], 'its sequence orders it')
    assert.equal(listed.length, 4)
  })

  it('filters by window, node, kind and migration, and pages', async () => {
    const c = await node()
    await c.log.append('migration.offered', { migration: 'm-1' })
    await c.log.append('migration.committed', { migration: 'm-1' })
    await c.log.append('node.started')
    assert.equal((await c.log.list({ kind: 'migration' })).length, 2)
    assert.equal((await c.log.list({ migration: 'm-1', kind: 'migration.committed' })).length, 1)
    assert.equal((await c.log.list({ node: c.id.slice(0, 20) })).length, 3)
    assert.equal((await c.log.list({ node: 'someone-else' })).length, 0)
    assert.equal((await c.log.list({ since: Date.now() + 60_000 })).length, 0)
    assert.deepEqual((await c.log.list({ limit: 2, offset: 1 })).map(e => e.seq), [2, 3])
  })
})

describe('log-sync messages and times', () => {
  it('refuse oversized and malformed messages', () => {
    assert.throws(() => decodeLogMessage(new Uint8Array(MAX_FRAME_BYTES + 1)), { code: 'GOTO_ERR_INVALID_LOG_MESSAGE' })
    assert.throws(() => decodeLogMessage(new TextEncoder().encode('{"type":"want","vector":{"a":-1}}')), /vector/)
    assert.throws(() => decodeLogMessage(new TextEncoder().encode(JSON.stringify({ type: 'entries', entries: Array(1001).fill({ text: '{}', signature: '' }) }))), /entries/)
    assert.deepEqual(decodeLogMessage(encodeLogMessage({ type: 'want', vector: { a: 3 } })), { type: 'want', vector: { a: 3 } })
  })

  it('parse ISO times and spans back from now', () => {
    const now = Date.parse('2026-11-27T12:00:00Z')
    assert.equal(parseTime('1h', 'since', now), now - 3_600_000)
    assert.equal(parseTime('90s', 'since', now), now - 90_000)
    assert.equal(parseTime('2d', 'since', now), now - 172_800_000)
    assert.equal(parseTime('2026-11-27T11:00:00Z', 'since', now), now - 3_600_000)
    assert.throws(() => parseTime('yesterday', 'since', now), { code: 'GOTO_ERR_INVALID_TIME' })
  })
})
