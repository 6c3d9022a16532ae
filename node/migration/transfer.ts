/**
 * Chunked, content-addressed transfer (DESIGN.md): the source cuts each
 * snapshot stream into chunks, keeps them in its chunk store and sends the
 * target their names (the recipe); the target pulls, over several streams at
 * once, only the chunks its own store lacks, checks each against its name,
 * and later rebuilds every stream from its store for the engine.
 *
 * - ChunkServer (source): answers `/goto/chunks/1.0.0` for the migrations it
 *   is running, within their bandwidth limits, compressing where it pays.
 * - Fetcher (target): a queue of wanted chunks and a few workers, each on its
 *   own stream; a broken stream is reopened and its chunks asked for again,
 *   a chunk that fails its hash is refused, counted and asked for again.
 * - chunkInto / assemble: a stream into the store as a recipe, and back.
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { constants as zlibConstants, zstdCompress, zstdCompressSync, zstdDecompress } from 'node:zlib'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import {
  CHUNKS_PROTOCOL, MAX_CHUNK_BYTES, MAX_FRAME_BYTES, MAX_HASHES, MAX_REQUEST_BYTES, TAG_ABSENT, TAG_RAW, TAG_ZSTD,
  decodeFrame, decodeRequest, encodeFrame, encodeRequest
} from '../../protocols/chunks/index.ts'
import { chunkStream } from '../chunks/cdc.ts'
import { BadChunkError, sha256, type ChunkRef, type ChunkStore } from '../chunks/store.ts'
import type { TokenBucket } from '../chunks/bandwidth.ts'
import { errorMessage, type Logger } from '../logger.ts'
import type { MeshNode } from '../mesh/libp2p.ts'

const compress = promisify(zstdCompress)

/** The sample a chunk's compressibility is judged by, and the ratio under which it is worth it. */
const PROBE_BYTES = 8192

/** Whether zstd is likely to save a tenth of this chunk, judged on a slice (cheap, on this thread). */
function worthCompressing (chunk: Uint8Array): boolean {
  const sample = chunk.subarray(0, Math.min(PROBE_BYTES, chunk.byteLength))
  return zstdCompressSync(sample, ZSTD_LEVEL).byteLength < sample.byteLength * 0.9
}
const decompress = promisify(zstdDecompress)
const ZSTD_LEVEL = { params: { [zlibConstants.ZSTD_c_compressionLevel]: 1 } }

/** What one transfer did, on either side. Bytes are the chunks' own; wire bytes what crossed. */
export interface TransferStats {
  /** Chunks in the recipes (with repeats). */
  chunks: number
  /** Bytes of the snapshot streams. */
  bytes: number
  /** Chunks (and their bytes) the target already held: never sent. */
  held: number
  heldBytes: number
  /** Chunks sent (source) or stored after fetching (target). */
  moved: number
  movedBytes: number
  /** Bytes on the wire after compression. */
  wireBytes: number
  /** Chunks that failed their hash on arrival and were asked for again. */
  refused: number
  /** Streams that broke and were reopened. */
  retries: number
}

export function emptyStats (): TransferStats {
  return { chunks: 0, bytes: 0, held: 0, heldBytes: 0, moved: 0, movedBytes: 0, wireBytes: 0, refused: 0, retries: 0 }
}

/** The digest of a recipe: SHA-256 over its chunk names in order; signed in the manifest. */
export function recipeDigest (chunks: ChunkRef[]): string {
  const h = createHash('sha256')
  for (const c of chunks) h.update(`${c.hash}:${c.size}\n`)
  return h.digest('hex')
}

/** Chunks a source reads ahead of the one it sends, per stream; and a target stores at once, per stream. */
const READ_AHEAD = 6
const STORES_IN_FLIGHT = 4

/** Stop a chunk reader whose peer sends nothing for this long. */
const IDLE_MS = 120_000

// ─────────────────────────────── source ───────────────────────────────

export interface Serving {
  /** The target, the only peer this migration's chunks are served to. */
  peer: string
  hashes: Set<string>
  buckets: TokenBucket[]
  stats: TransferStats
  /** Test hook: corrupt the next chunk served, once. */
  corruptNext?: boolean
  /** Test hook: break the next chunk stream after one chunk, once. */
  breakNext?: boolean
  onProgress?: () => void
}

export class ChunkServer {
  readonly #store: ChunkStore
  readonly #log: Logger
  readonly #serving = new Map<string, Serving>()
  readonly #compression: 'auto' | 'off'

  constructor (store: ChunkStore, log: Logger, compression: 'auto' | 'off' = 'auto') {
    this.#store = store
    this.#log = log
    this.#compression = compression
  }

  serve (id: string, serving: Serving): Serving {
    this.#serving.set(id, serving)
    return serving
  }

  end (id: string): void {
    this.#serving.delete(id)
  }

  async handle (stream: Stream, connection: Connection): Promise<void> {
    const remote = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    try {
      for (;;) {
        let request
        try {
          request = decodeRequest((await lp.read({ signal: AbortSignal.timeout(IDLE_MS) })).subarray())
        } catch (err) {
          if ((err as Error).name === 'UnexpectedEOFError') break
          throw err
        }
        const serving = this.#serving.get(request.id)
        if (serving == null || serving.peer !== remote) throw new Error(`no migration ${request.id} is moving to ${remote}`)
        // read a few chunks ahead (the disk works in parallel), send them in order
        const reads: Array<Promise<Buffer> | undefined> = []
        const readAhead = (i: number): void => {
          const hash = request.hashes[i]
          if (hash == null || reads[i] !== undefined || !serving.hashes.has(hash)) return
          reads[i] = this.#store.get(hash)
          reads[i]!.catch(() => {})
        }
        for (const [i, hash] of request.hashes.entries()) {
          for (let k = i; k < i + READ_AHEAD; k++) readAhead(k)
          const read = reads[i]
          reads[i] = undefined
          if (read == null) {
            await lp.write(encodeFrame({ tag: TAG_ABSENT, hash, body: new Uint8Array(0) }))
            continue
          }
          const raw = await read
          let tag: typeof TAG_RAW | typeof TAG_ZSTD = TAG_RAW
          let body: Uint8Array = raw
          if (this.#compression === 'auto' && worthCompressing(raw)) {
            const packed = await compress(raw, ZSTD_LEVEL)
            if (packed.byteLength < raw.byteLength * 0.9) {
              tag = TAG_ZSTD
              body = packed
            }
          }
          if (serving.corruptNext === true) {
            serving.corruptNext = false
            const bad = Buffer.from(raw)
            bad[0] = bad[0]! ^ 0xff
            tag = TAG_RAW
            body = bad
          }
          for (const bucket of serving.buckets) await bucket.take(body.byteLength)
          await lp.write(encodeFrame({ tag, hash, body }))
          serving.stats.moved++
          serving.stats.movedBytes += raw.byteLength
          serving.stats.wireBytes += body.byteLength + 33
          serving.onProgress?.()
          if (serving.breakNext === true) {
            serving.breakNext = false
            throw new Error('failpoint: chunk stream broken')
          }
        }
      }
      await stream.close().catch(() => {})
    } catch (err) {
      this.#log.debug('chunk stream ended', { peer: remote, error: errorMessage(err) })
      stream.abort(err as Error)
    }
  }
}

/**
 * Cut `source` into chunks, store each the store lacks, and hand the names
 * on in batches (`onBatch`, awaited: back-pressure reaches the reader). Chunks
 * are looked up and written a group at a time (one index read for the group,
 * the writes in parallel); a batch goes out only once all its chunks are
 * stored and `onChunk` has seen them, so nobody is told of a chunk before it
 * can be served.
 */
export async function chunkInto (
  store: ChunkStore,
  source: AsyncIterable<Uint8Array>,
  onBatch: (batch: ChunkRef[]) => Promise<void>,
  options: { batch?: number, signal?: AbortSignal, onChunk?: (hash: string, size: number) => void } = {}
): Promise<{ chunks: ChunkRef[], bytes: number, sha256: string }> {
  const whole = createHash('sha256')
  const chunks: ChunkRef[] = []
  let group: Array<{ hash: string, bytes: Buffer }> = []
  let batch: ChunkRef[] = []
  let bytes = 0
  // one group is written while the next is read and cut
  let writing: Promise<void> = Promise.resolve()
  const storeGroup = async (): Promise<void> => {
    const mine = group
    group = []
    await writing
    writing = (async () => {
      const missing = new Set(await store.missing(mine.map(g => g.hash)))
      await Promise.all(mine.filter(g => missing.has(g.hash)).map(async g => { await store.put(g.hash, g.bytes, { verified: true, known: false }) }))
      for (const g of mine) options.onChunk?.(g.hash, g.bytes.byteLength)
    })()
    writing.catch(() => {})
  }
  for await (const chunk of chunkStream(source)) {
    if (options.signal?.aborted === true) throw options.signal.reason
    const hash = sha256(chunk)
    whole.update(chunk)
    bytes += chunk.byteLength
    const ref = { hash, size: chunk.byteLength }
    chunks.push(ref)
    batch.push(ref)
    group.push({ hash, bytes: chunk })
    if (group.length >= GROUP) await storeGroup()
    if (batch.length >= (options.batch ?? 64)) {
      await storeGroup()
      await writing
      await onBatch(batch)
      batch = []
    }
  }
  await storeGroup()
  await writing
  if (batch.length > 0) await onBatch(batch)
  await store.flush()
  return { chunks, bytes, sha256: whole.digest('hex') }
}

/** Chunks looked up and written together: at most 16 × 256 KiB held. */
const GROUP = 16

/** Chunk reads kept in flight ahead of the one a rebuilt stream hands on. */
const ASSEMBLE_AHEAD = 4

/** `fetch` of each item, a few at once, the results in the items' order. */
export async function * inOrder<T, R> (items: Iterable<T> | AsyncIterable<T>, fetch: (item: T) => Promise<R>, depth = ASSEMBLE_AHEAD): AsyncGenerator<R> {
  const pending: Array<Promise<R>> = []
  try {
    for await (const item of items) {
      const p = fetch(item)
      p.catch(() => {})
      pending.push(p)
      if (pending.length > depth) yield await pending.shift()!
    }
    while (pending.length > 0) yield await pending.shift()!
  } finally {
    await Promise.allSettled(pending)
  }
}

/** A stream rebuilt from the store, checked as it goes against its length and hash. */
export function assemble (store: ChunkStore, chunks: ChunkRef[], expect: { bytes: number, sha256: string } | undefined): Readable {
  async function * read (): AsyncGenerator<Buffer> {
    const whole = createHash('sha256')
    let bytes = 0
    for await (const { ref, data } of inOrder(chunks, async ref => ({ ref, data: await store.get(ref.hash) }))) {
      if (data.byteLength !== ref.size) throw new BadChunkError(`chunk ${ref.hash.slice(0, 12)}… has ${data.byteLength} bytes, the recipe says ${ref.size}`)
      whole.update(data)
      bytes += data.byteLength
      yield data
    }
    const digest = whole.digest('hex')
    if (expect != null && (bytes !== expect.bytes || digest !== expect.sha256)) throw new BadChunkError(`the rebuilt stream has ${bytes} bytes hashing ${digest}, the manifest says ${expect.bytes} hashing ${expect.sha256}`)
  }
  return Readable.from(read(), { objectMode: false, highWaterMark: 256 * 1024 })
}

// ─────────────────────────────── target ───────────────────────────────

export interface FetcherInit {
  libp2p: MeshNode
  store: ChunkStore
  log: Logger
  /** The source. */
  peer: string
  migration: string
  /** Streams at once. @default 4 */
  streams?: number
  stats: TransferStats
  /** A chunk was stored (or refused). */
  onProgress?: () => void
  onRefused?: (hash: string) => Promise<void> | void
  /** Test hook: called after each chunk stored. */
  afterStore?: (count: number) => Promise<void>
  signal: AbortSignal
}

/** A chunk may fail its hash this many times before the migration gives up on it. */
const MAX_REFUSALS_PER_CHUNK = 3
/** Broken streams tolerated in a row with no chunk stored in between. */
const MAX_RETRIES_IN_A_ROW = 8

export class Fetcher {
  readonly #init: FetcherInit
  readonly #queue: ChunkRef[] = []
  readonly #known = new Set<string>()
  readonly #refusals = new Map<string, number>()
  /** Chunks queued or in flight, and who waits for them to be stored. */
  readonly #waiting = new Map<string, { promise: Promise<void>, resolve: () => void, reject: (err: Error) => void }>()
  #inFlight = 0
  #workers = 0
  #stored = 0
  #failed: Error | undefined
  #closed = false
  #wake: (() => void)[] = []
  #idle: (() => void)[] = []
  #retriesInARow = 0

  constructor (init: FetcherInit) {
    this.#init = init
  }

  get failed (): Error | undefined { return this.#failed }

  /** Queue the chunks the store lacks (the caller asks the store); repeats are ignored. */
  want (refs: ChunkRef[]): void {
    for (const ref of refs) {
      if (this.#known.has(ref.hash)) continue
      this.#known.add(ref.hash)
      this.#queue.push(ref)
      const waiter = Promise.withResolvers<void>()
      waiter.promise.catch(() => {})
      this.#waiting.set(ref.hash, waiter)
    }
    const target = Math.min(this.#init.streams ?? 4, this.#queue.length + this.#workers)
    while (this.#workers < target && !this.#closed) {
      this.#workers++
      void this.#work()
    }
    this.#notify()
  }

  /** Resolve once `hash` is in the store: at once for one never wanted (the store held it). */
  async whenStored (hash: string): Promise<void> {
    if (this.#failed != null) throw this.#failed
    await this.#waiting.get(hash)?.promise
  }

  /** Resolve once every queued chunk is stored; reject if the transfer failed. */
  async drained (): Promise<void> {
    for (;;) {
      if (this.#failed != null) throw this.#failed
      if (this.#queue.length === 0 && this.#inFlight === 0) return
      await new Promise<void>(resolve => { this.#idle.push(resolve) })
    }
  }

  close (err: Error = new Error('the transfer ended')): void {
    this.#closed = true
    for (const waiter of this.#waiting.values()) waiter.reject(this.#failed ?? err)
    this.#waiting.clear()
    this.#notify()
  }

  #notify (): void {
    for (const wake of this.#wake.splice(0)) wake()
    if (this.#failed != null || (this.#queue.length === 0 && this.#inFlight === 0)) for (const idle of this.#idle.splice(0)) idle()
  }

  #fail (err: Error): void {
    this.#failed ??= err
    this.close(err)
  }

  /** Store one fetched chunk; a chunk that fails its hash is counted and left out of `done`, so it is asked for again. */
  async #store (ref: ChunkRef, body: Uint8Array, done: Set<string>): Promise<void> {
    try {
      // asked for because the store lacked it: no need to ask the index again
      await this.#init.store.put(ref.hash, body, { known: false })
    } catch (err) {
      if (!(err instanceof BadChunkError)) throw err
      this.#init.stats.refused++
      const n = (this.#refusals.get(ref.hash) ?? 0) + 1
      this.#refusals.set(ref.hash, n)
      await this.#init.onRefused?.(ref.hash)
      if (n >= MAX_REFUSALS_PER_CHUNK) this.#fail(new BadChunkError(`chunk ${ref.hash.slice(0, 12)}… failed its hash ${n} times`))
      else this.#init.log.warn('chunk refused: hash mismatch; asking again', { migration: this.#init.migration, chunk: ref.hash })
      return
    }
    done.add(ref.hash)
    this.#waiting.get(ref.hash)?.resolve()
    this.#waiting.delete(ref.hash)
    this.#stored++
    this.#retriesInARow = 0
    this.#init.stats.moved++
    this.#init.stats.movedBytes += body.byteLength
    this.#init.onProgress?.()
    await this.#init.afterStore?.(this.#stored)
  }

  async #work (): Promise<void> {
    let stream: Stream | undefined
    let lp: ReturnType<typeof lpStream> | undefined
    try {
      while (!this.#closed && !this.#init.signal.aborted) {
        if (this.#queue.length === 0) {
          await new Promise<void>(resolve => { this.#wake.push(resolve) })
          continue
        }
        const batch = this.#queue.splice(0, MAX_HASHES)
        this.#inFlight += batch.length
        const done = new Set<string>()
        const stores: Array<Promise<void>> = []
        try {
          if (stream == null || lp == null) {
            stream = await this.#init.libp2p.dialProtocol(peerIdFromString(this.#init.peer), CHUNKS_PROTOCOL, { signal: AbortSignal.any([this.#init.signal, AbortSignal.timeout(10_000)]) })
            stream.maxReadBufferLength = 8 * MAX_FRAME_BYTES
            lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
          }
          await lp.write(encodeRequest({ id: this.#init.migration, hashes: batch.map(r => r.hash) }), { signal: this.#init.signal })
          // store while the next frames arrive: the disk and the network work at once
          for (const ref of batch) {
            const frame = decodeFrame((await lp.read({ signal: AbortSignal.any([this.#init.signal, AbortSignal.timeout(IDLE_MS)]) })).subarray())
            if (frame.hash !== ref.hash) throw new Error(`asked for ${ref.hash.slice(0, 12)}…, got ${frame.hash.slice(0, 12)}…`)
            if (frame.tag === TAG_ABSENT) {
              this.#fail(new BadChunkError(`the source does not have chunk ${ref.hash.slice(0, 12)}…`))
              return
            }
            this.#init.stats.wireBytes += frame.body.byteLength + 33
            // the frame is a view on a buffer of its own (each read from the network is a new one): no copy
            const body = frame.tag === TAG_ZSTD ? await decompress(frame.body, { maxOutputLength: MAX_CHUNK_BYTES }) : frame.body
            stores.push(this.#store(ref, body, done))
            if (stores.length >= STORES_IN_FLIGHT) await stores.shift()
          }
          await Promise.all(stores)
          if (this.#failed != null) return
        } catch (err) {
          stream?.abort(err as Error)
          stream = undefined
          lp = undefined
          if (this.#init.signal.aborted || this.#closed) throw err
          this.#init.stats.retries++
          if (++this.#retriesInARow > MAX_RETRIES_IN_A_ROW) {
            this.#fail(new Error(`chunk streams to the source keep breaking: ${errorMessage(err)}`))
            return
          }
          this.#init.log.warn('chunk stream broke; reopening', { migration: this.#init.migration, error: errorMessage(err) })
          await new Promise(resolve => setTimeout(resolve, Math.min(5000, 100 * 2 ** this.#retriesInARow)))
        } finally {
          await Promise.allSettled(stores)
          // what did not arrive whole goes back to the front of the queue
          const undone = batch.filter(r => !done.has(r.hash))
          this.#queue.unshift(...undone)
          this.#inFlight -= batch.length
          this.#notify()
        }
      }
    } catch (err) {
      if (!this.#closed) this.#fail(err as Error)
    } finally {
      this.#workers--
      await stream?.close().catch(() => {})
    }
  }
}
