import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Level } from 'level'
import { chunkStream, DEFAULT_SIZES } from '../../node/chunks/cdc.ts'
import { ChunkStore, sha256 } from '../../node/chunks/store.ts'
import { parseRate, TokenBucket } from '../../node/chunks/bandwidth.ts'
import {
  decodeFrame, decodeRequest, encodeFrame, encodeRequest, MAX_CHUNK_BYTES, MAX_HASHES, TAG_ABSENT, TAG_RAW, TAG_ZSTD
} from '../../protocols/chunks/index.ts'
import { assemble, chunkInto, recipeDigest } from '../../node/migration/transfer.ts'

async function * pieces (data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, Math.min(data.length, at + size))
}

async function cut (data: Buffer, size = 100_003): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const c of chunkStream(pieces(data, size))) out.push(c)
  return out
}

describe('content-defined chunking', () => {
  const data = randomBytes(8 * 1024 * 1024)

  it('cuts within the sizes, loses no byte, and does not depend on how the input is split', async () => {
    const a = await cut(data, 4096)
    const b = await cut(data, 1_000_003)
    assert.deepEqual(a.map(sha256), b.map(sha256))
    assert.ok(Buffer.concat(a).equals(data))
    for (const c of a.slice(0, -1)) assert.ok(c.length >= DEFAULT_SIZES.min && c.length <= DEFAULT_SIZES.max, `chunk of ${c.length}`)
    const avg = data.length / a.length
    assert.ok(avg > DEFAULT_SIZES.avg / 2 && avg < DEFAULT_SIZES.avg * 2, `average ${avg}`)
  })

  it('an insertion changes only the chunks next to it', async () => {
    const before = new Set((await cut(data)).map(sha256))
    const edited = Buffer.concat([data.subarray(0, 3_000_000), Buffer.from('a few new bytes'), data.subarray(3_000_000)])
    const after = (await cut(edited)).map(sha256)
    const fresh = after.filter(h => !before.has(h))
    assert.ok(fresh.length <= 2, `${fresh.length} new chunks`)
  })

  it('an empty stream has no chunks; a tiny one has one', async () => {
    assert.deepEqual(await cut(Buffer.alloc(0)), [])
    assert.equal((await cut(Buffer.from('x'))).length, 1)
  })
})

describe('chunk store', () => {
  let dir: string
  let db: Level<string, unknown>
  let store: ChunkStore

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'goto-chunks-'))
    db = new Level(join(dir, 'db'), { valueEncoding: 'json' })
    await db.open()
    store = new ChunkStore(db, join(dir, 'chunks'))
  })
  after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('stores a chunk under its hash and refuses one that does not match its name', async () => {
    const bytes = randomBytes(1000)
    await store.put(sha256(bytes), bytes)
    assert.ok(await store.has(sha256(bytes)))
    assert.ok((await store.get(sha256(bytes))).equals(bytes))
    const other = randomBytes(1000)
    await assert.rejects(store.put(sha256(bytes).replace(/^./, c => c === 'a' ? 'b' : 'a'), other), (err: any) => err.code === 'GOTO_ERR_BAD_CHUNK')
    await assert.rejects(store.get('../../etc/passwd'), (err: any) => err.code === 'GOTO_ERR_BAD_CHUNK')
    assert.deepEqual(await store.missing([sha256(bytes), sha256(other), sha256(other)]), [sha256(other)])
  })

  it('a stream goes in as a recipe and comes back byte for byte; a wrong recipe fails the check', async () => {
    const data = randomBytes(3 * 1024 * 1024)
    const batches: number[] = []
    const { chunks, bytes, sha256: digest } = await chunkInto(store, pieces(data, 65536), async b => { batches.push(b.length) }, { batch: 10 })
    assert.equal(bytes, data.length)
    assert.equal(batches.reduce((a, b) => a + b, 0), chunks.length)
    const back: Buffer[] = []
    for await (const piece of assemble(store, chunks, { bytes, sha256: digest })) back.push(piece)
    assert.ok(Buffer.concat(back).equals(data))
    const swapped = [chunks[1]!, chunks[0]!, ...chunks.slice(2)]
    assert.notEqual(recipeDigest(swapped), recipeDigest(chunks))
    await assert.rejects(async () => { for await (const _ of assemble(store, swapped, { bytes, sha256: digest })) { /* drain */ } }, (err: any) => err.code === 'GOTO_ERR_BAD_CHUNK')
  })

  it('collects chunks no kept recipe names, after the grace period', async () => {
    const keep = randomBytes(2000)
    const drop = randomBytes(2000)
    await store.put(sha256(keep), keep)
    await store.put(sha256(drop), drop)
    await store.putRecipe({ migration: 'm-live', blob: 'image', chunks: [{ hash: sha256(keep), size: 2000 }], createdAt: Date.now() })
    await store.putRecipe({ migration: 'm-old', blob: 'image', chunks: [{ hash: sha256(drop), size: 2000 }], createdAt: Date.now() - 10_000 })
    const result = await store.gc({ retentionMs: 5000, graceMs: 0, now: Date.now() + 1 })
    assert.equal(result.recipesDropped, 1)
    assert.ok(await store.has(sha256(keep)))
    assert.ok(!await store.has(sha256(drop)))
    assert.ok(!(await readdir(join(store.dir, sha256(drop).slice(0, 2))).catch((): string[] => [])).includes(sha256(drop)))
    assert.ok(result.removed >= 1)
  })
})

describe('chunk protocol frames', () => {
  const hash = 'ab'.repeat(32)

  it('round-trips requests and frames', () => {
    assert.deepEqual(decodeRequest(encodeRequest({ id: 'm', hashes: [hash] })), { id: 'm', hashes: [hash] })
    for (const tag of [TAG_RAW, TAG_ZSTD] as const) {
      const frame = decodeFrame(encodeFrame({ tag, hash, body: new Uint8Array([1, 2, 3]) }))
      assert.equal(frame.tag, tag)
      assert.equal(frame.hash, hash)
      assert.deepEqual([...frame.body], [1, 2, 3])
    }
    assert.equal(decodeFrame(encodeFrame({ tag: TAG_ABSENT, hash, body: new Uint8Array(0) })).tag, TAG_ABSENT)
  })

  it('refuses malformed, oversized and unknown input with a clear error', () => {
    const bad = (fn: () => unknown, pattern: RegExp): void => {
      assert.throws(fn, (err: any) => err.code === 'GOTO_ERR_INVALID_CHUNK_MESSAGE' && pattern.test(err.message))
    }
    bad(() => decodeRequest(new TextEncoder().encode('{"id":"m","hashes":[]}')), /hashes/)
    bad(() => decodeRequest(new TextEncoder().encode(JSON.stringify({ id: 'm', hashes: Array.from({ length: MAX_HASHES + 1 }, () => hash) }))), /hashes/)
    bad(() => decodeRequest(new TextEncoder().encode(JSON.stringify({ id: 'm', hashes: ['../x'] }))), /hashes/)
    bad(() => decodeRequest(new Uint8Array([0xff, 0xfe])), /UTF-8 JSON/)
    bad(() => decodeFrame(new Uint8Array(10)), /shorter/)
    bad(() => decodeFrame(new Uint8Array(40).fill(9)), /unknown chunk frame tag 9/)
    bad(() => decodeFrame(new Uint8Array(33 + MAX_CHUNK_BYTES + 1)), /exceeds/)
    bad(() => encodeFrame({ tag: TAG_RAW, hash, body: new Uint8Array(MAX_CHUNK_BYTES + 1) }), /exceeds/)
    const absentWithBody = encodeFrame({ tag: TAG_RAW, hash, body: new Uint8Array([1]) })
    absentWithBody[0] = TAG_ABSENT
    bad(() => decodeFrame(absentWithBody), /absent chunk carries a body/)
  })
})

describe('bandwidth limits', () => {
  it('parses rates and refuses nonsense', () => {
    assert.equal(parseRate('10M'), 10e6)
    assert.equal(parseRate('512k'), 512e3)
    assert.equal(parseRate('1.5MiB/s'), 1.5 * 1024 * 1024)
    assert.equal(parseRate('0'), undefined)
    assert.equal(parseRate(undefined), undefined)
    assert.throws(() => parseRate('fast'), /not a rate/)
    assert.throws(() => parseRate(-5), /positive/)
  })

  it('a bucket holds a stream to its rate', async () => {
    const bucket = new TokenBucket(1_000_000)
    const start = performance.now()
    for (let i = 0; i < 30; i++) await bucket.take(10_000)
    // 300 kB at 1 MB/s: at least 0.2 s once the 0.1 s burst is spent
    assert.ok(performance.now() - start >= 150, `${performance.now() - start} ms`)
  })
})
