import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { createAuditLog } from '../../node/audit/log.ts'
import { createJournal, type MigrationRecord } from '../../node/migration/journal.ts'

/** A store whose batches say whether they asked LevelDB to sync. */
async function recordingStore (dir: string): Promise<{ db: Level<string, unknown>, syncs: boolean[] }> {
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
  await db.open()
  const syncs: boolean[] = []
  const batch = db.batch.bind(db) as (ops: unknown, options?: { sync?: boolean }) => Promise<void>
  ;(db as unknown as { batch: typeof batch }).batch = async (ops, options) => {
    syncs.push(options?.sync === true)
    await batch(ops, options)
  }
  return { db, syncs }
}

describe('durability', () => {
  it('a node\'s own audit entries are written with sync; entries copied from peers are not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'goto-durable-'))
    try {
      const [keyA, keyB] = [await generateKeyPair('Ed25519'), await generateKeyPair('Ed25519')]
      const a = await recordingStore(join(dir, 'a'))
      const b = await recordingStore(join(dir, 'b'))
      const logA = createAuditLog(a.db, peerIdFromPrivateKey(keyA).toString(), keyA)
      const logB = createAuditLog(b.db, peerIdFromPrivateKey(keyB).toString(), keyB)
      await logA.append('test.act')
      await logA.append('test.act')
      assert.deepEqual(a.syncs, [true, true])
      const result = await logB.ingest(await logA.entriesAfter({}, 10), peerIdFromPrivateKey(keyA).toString())
      assert.equal(result.accepted, 2)
      assert.ok(b.syncs.length > 0 && b.syncs.every(s => !s), 'a copy can be pulled again, so it is not synced')
      await a.db.close()
      await b.db.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the journal writes the commit decision with sync, and the phases before it without', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'goto-durable-'))
    const db = new Level<string, unknown>(join(dir, 'db'), { valueEncoding: 'json' })
    await db.open()
    try {
      // a sublevel's writes reach the store's own put with their options
      const syncs: boolean[] = []
      const put = (db as any)._put.bind(db)
      ;(db as any)._put = (key: string, value: unknown, options: { sync?: boolean }, ...rest: unknown[]) => {
        syncs.push(options?.sync === true)
        return put(key, value, options, ...rest)
      }
      const journal = createJournal(db)
      const now = new Date().toISOString()
      const record = { id: '01a2b3c4-0000-7000-8000-000000000000', role: 'source', phase: 'planned', phases: [{ phase: 'planned', at: now }], source: 'a', target: 'b', sourceNode: 'a', targetNode: 'b', container: 'c', name: 'c', consistency: 'freeze', dryRun: false, createdAt: now, updatedAt: now, bytes: { total: 0, moved: 0 } } as MigrationRecord
      for (const phase of ['offered', 'frozen', 'transferring', 'prepared', 'committed', 'activated'] as const) await journal.move(record, phase)
      assert.deepEqual(syncs, [false, false, false, false, true, false])
      assert.equal((await journal.get(record.id, 'source'))?.phase, 'activated')
    } finally {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
