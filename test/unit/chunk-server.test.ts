import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { lpStream, streamPair } from '@libp2p/utils'
import type { Connection } from '@libp2p/interface'
import { ChunkServer, emptyStats } from '../../node/migration/transfer.ts'
import { decodeFrame, encodeRequest, TAG_ABSENT, TAG_RAW } from '../../protocols/chunks/index.ts'
import type { ChunkStore } from '../../node/chunks/store.ts'
import { createLogger } from '../../node/logger.ts'

const TARGET = '12D3KooWTarget'
const OTHER = '12D3KooWOther'
const body = Buffer.from('a chunk of the migration')
const named = createHash('sha256').update(body).digest('hex')
const unnamed = 'ab'.repeat(32)

describe('chunk server', () => {
  /** One request from `peer`; the frames answered, or the error that ended the stream. */
  async function ask (peer: string, hashes: string[]): Promise<{ frames: ReturnType<typeof decodeFrame>[], reads: string[], error?: Error }> {
    const reads: string[] = []
    const store = { get: async (hash: string) => { reads.push(hash); return body } } as unknown as ChunkStore
    const server = new ChunkServer(store, createLogger('test'), 'off')
    server.serve('m1', { peer: TARGET, hashes: new Set([named]), buckets: [], stats: emptyStats() })
    const [client, served] = await streamPair()
    const handled = server.handle(served, { remotePeer: { toString: () => peer } } as unknown as Connection)
    const lp = lpStream(client)
    await lp.write(encodeRequest({ id: 'm1', hashes }))
    const frames = []
    let error: Error | undefined
    try {
      for (let i = 0; i < hashes.length; i++) frames.push(decodeFrame((await lp.read({ signal: AbortSignal.timeout(2000) })).subarray()))
    } catch (err) {
      error = err as Error
    }
    await client.close().catch(() => {})
    await handled
    return { frames, reads, error }
  }

  it('serves a migration\'s chunks to its target only, and only the chunks its recipes name', async () => {
    const mine = await ask(TARGET, [named, unnamed])
    assert.equal(mine.error, undefined)
    assert.deepEqual(mine.frames.map(f => f.tag), [TAG_RAW, TAG_ABSENT])
    assert.deepEqual(Buffer.from(mine.frames[0]!.body), body)
    assert.deepEqual(mine.reads, [named], 'a chunk no recipe names is never read from the store')
    const theirs = await ask(OTHER, [named])
    assert.ok(theirs.error != null, 'another peer gets no frame')
    assert.deepEqual(theirs.frames, [])
    assert.deepEqual(theirs.reads, [])
  })
})
