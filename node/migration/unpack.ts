/**
 * The target's half of a transfer, into the engine: each blob flows from the
 * chunk store into Docker while its chunks are still arriving, so the
 * engine's work (loading the image, extracting the volumes) overlaps the
 * network's instead of following it.
 *
 * The steps run one after another, in the order the source announces the
 * blobs (the engine would serialise them anyway):
 *
 *   pre:image, image   → `docker load`, streamed
 *   pre:volume:…, volume:…, delta:volume:…
 *                      → the volume created (or, sent whole after a pre-copy,
 *                        made afresh), filled through a container that is
 *                        never started, streamed
 *   delta:image        → at its end (the layer's length goes in a header):
 *                        `docker load` of the pre-copied image plus that layer
 *
 * and `finish` creates the container itself once the signed manifest holds.
 */
import { createHash } from 'node:crypto'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { BadChunkError, type ChunkRef, type ChunkStore } from '../chunks/store.ts'
import { checkArchive, checkImageArchive } from './archive-check.ts'
import { deltaImageArchive, readSaveIndex, type SaveIndex } from './image-archive.ts'
import { assemble, inOrder } from './transfer.ts'
import { createBody, type ContainerSpec } from './spec.ts'
import { MigrationError } from './errors.ts'
import { errorMessage } from '../logger.ts'
import type { MigrationRuntime } from '../runtime/runtime.ts'

export interface BlobEnd {
  bytes: number
  sha256: string
}

/** A blob as it arrives: its recipe grows batch by batch until its end. */
export class IncomingBlob {
  readonly name: string
  readonly chunks: ChunkRef[] = []
  end: BlobEnd | undefined
  readonly ended: Promise<BlobEnd>
  #resolveEnd!: (end: BlobEnd) => void
  #rejectEnd!: (err: Error) => void
  #wake: Array<() => void> = []

  constructor (name: string) {
    this.name = name
    this.ended = new Promise((resolve, reject) => { this.#resolveEnd = resolve; this.#rejectEnd = reject })
    this.ended.catch(() => {})
  }

  add (refs: ChunkRef[]): void {
    if (this.end != null) throw new MigrationError('GOTO_ERR_BAD_STATE', `a recipe for ${this.name} after its end`)
    this.chunks.push(...refs)
    for (const wake of this.#wake.splice(0)) wake()
  }

  finish (end: BlobEnd): void {
    if (this.end != null) throw new MigrationError('GOTO_ERR_BAD_STATE', `${this.name} ended twice`)
    this.end = end
    this.#resolveEnd(end)
    for (const wake of this.#wake.splice(0)) wake()
  }

  abandon (err: Error): void {
    this.#rejectEnd(err)
    for (const wake of this.#wake.splice(0)) wake()
  }

  /** The chunk names in order, as they come; done at the end. */
  async * refs (): AsyncGenerator<ChunkRef> {
    let at = 0
    for (;;) {
      while (at < this.chunks.length) yield this.chunks[at++]!
      if (this.end != null) return
      await Promise.race([new Promise<void>(resolve => { this.#wake.push(resolve) }), this.ended])
    }
  }
}

/**
 * A blob rebuilt from the store while it arrives: each chunk once stored,
 * the whole checked at the end against the length and hash the source sent.
 */
export function assembleLive (store: ChunkStore, blob: IncomingBlob, whenStored: (hash: string) => Promise<void>): Readable {
  async function * read (): AsyncGenerator<Buffer> {
    const whole = createHash('sha256')
    let bytes = 0
    for await (const { ref, data } of inOrder(blob.refs(), async ref => {
      await whenStored(ref.hash)
      return { ref, data: await store.get(ref.hash) }
    })) {
      if (data.byteLength !== ref.size) throw new BadChunkError(`chunk ${ref.hash.slice(0, 12)}… has ${data.byteLength} bytes, the recipe says ${ref.size}`)
      whole.update(data)
      bytes += data.byteLength
      yield data
    }
    const end = await blob.ended
    const digest = whole.digest('hex')
    if (bytes !== end.bytes || digest !== end.sha256) throw new BadChunkError(`${blob.name} rebuilt has ${bytes} bytes hashing ${digest}, the source sent ${end.bytes} hashing ${end.sha256}`)
  }
  return Readable.from(read(), { objectMode: false, highWaterMark: 256 * 1024 })
}

export interface UnpackerInit {
  runtime: MigrationRuntime
  store: ChunkStore
  whenStored: (hash: string) => Promise<void>
  migration: string
  spec: ContainerSpec
  /** The final image's tag; the pre-copied one is this plus `-pre`. */
  imageRef: string
  /** Called before the first volume is created: a stale rollback point may hold the names. */
  beforeVolumes: () => Promise<void>
  /** A volume was created (for the journal, so a cleanup finds it). */
  onVolume: (name: string) => Promise<void>
}

export function fillContainerName (migration: string): string {
  return `goto-fill-${migration.slice(0, 8)}`
}

export class Unpacker {
  readonly #i: UnpackerInit
  readonly #blobs = new Map<string, IncomingBlob>()
  #chain: Promise<void> = Promise.resolve()
  #failure: unknown
  /** The image loaded so far (the pre-copied or the final), which the fill container runs. */
  #loaded: string | undefined
  #preIndex: SaveIndex | undefined
  #fill: string | undefined
  #volumesReady = false
  readonly #volumes = new Set<string>()
  readonly #filled = new Set<string>()

  constructor (init: UnpackerInit) {
    this.#i = init
  }

  get blobs (): ReadonlyMap<string, IncomingBlob> { return this.#blobs }

  /** Whether the pre-copied image is in the engine (a delta can apply to it). */
  get preLoaded (): boolean { return this.#preIndex != null }

  #then (step: () => Promise<void>): void {
    this.#chain = this.#chain.then(async () => {
      if (this.#failure == null) await step()
    }).catch(err => { this.#failure ??= err })
  }

  begin (name: string): IncomingBlob {
    if (this.#blobs.has(name)) throw new MigrationError('GOTO_ERR_BAD_STATE', `blob ${name} was sent twice`)
    const bare = name.replace(/^(pre|delta):/, '')
    const destination = bare.replace(/^volume:/, '')
    if (bare !== 'image' && !this.#i.spec.mounts.some(m => m.type === 'volume' && m.destination === destination)) {
      throw new MigrationError('GOTO_ERR_BAD_STATE', `no volume is mounted at ${destination}`)
    }
    const blob = new IncomingBlob(name)
    this.#blobs.set(name, blob)
    if (name === 'pre:image' || name === 'image') {
      this.#then(async () => { await this.#loadImage(blob) })
    } else if (name === 'delta:image') {
      this.#then(async () => { await this.#loadDelta(blob) })
    } else {
      this.#then(async () => { await this.#fillVolume(blob, destination) })
    }
    return blob
  }

  recipe (name: string, refs: ChunkRef[]): void {
    const blob = this.#blobs.get(name)
    if (blob == null) throw new MigrationError('GOTO_ERR_BAD_STATE', `a recipe for ${name} outside its blob`)
    blob.add(refs)
  }

  end (name: string, end: BlobEnd): IncomingBlob {
    const blob = this.#blobs.get(name)
    if (blob == null) throw new MigrationError('GOTO_ERR_BAD_STATE', `the end of ${name} outside its blob`)
    blob.finish(end)
    return blob
  }

  /** Wait for every step so far; throw the first failure. */
  async settled (): Promise<void> {
    await this.#chain
    if (this.#failure != null) throw this.#failure
  }

  /** After the signed manifest: the container itself, on the final image and the filled volumes. */
  async finish (): Promise<void> {
    await this.settled()
    const runtime = this.#i.runtime
    if (this.#loaded !== this.#i.imageRef) throw new MigrationError('GOTO_ERR_BAD_STATE', 'the transfer ended without the final image')
    if (this.#fill != null) await runtime.removeContainer(this.#fill, { volumes: false })
    this.#fill = undefined
    await this.#prepareVolumes()
    for (const m of this.#i.spec.mounts.filter(m => m.type === 'volume')) if (!this.#volumes.has(m.source)) await this.#createVolume(m.source)
    await runtime.createContainer(this.#i.spec.name, createBody(this.#i.spec, this.#i.imageRef))
    if (this.#preIndex != null) await runtime.removeImage(`${this.#i.imageRef}-pre`).catch(() => {})
  }

  /** Stop every stream in flight and wait until the engine has let go, so a cleanup does not race it. */
  async abandon (err: Error): Promise<void> {
    for (const blob of this.#blobs.values()) blob.abandon(err)
    this.#failure ??= err
    await this.#chain.catch(() => {})
  }

  async #engine (name: string, stream: Readable, consume: (stream: NodeJS.ReadableStream) => Promise<void>): Promise<void> {
    let broken: unknown
    stream.once('error', err => { broken = err })
    try {
      await consume(stream)
    } catch (err) {
      if (broken != null) throw broken
      const message = errorMessage(err)
      throw new MigrationError(/no space|disk|quota/i.test(message) ? 'GOTO_ERR_INSUFFICIENT_DISK' : 'GOTO_ERR_INTERNAL', `${name}: the engine refused it: ${message}`)
    } finally {
      stream.destroy()
    }
    if (broken != null) throw broken
  }

  async #loadImage (blob: IncomingBlob): Promise<void> {
    const { runtime, store } = this.#i
    await this.#engine(blob.name, checkImageArchive(assembleLive(store, blob, this.#i.whenStored)), async stream => { await runtime.loadImage(stream) })
    if (blob.name === 'pre:image') {
      // its manifest and config, for the delta layer to come (every chunk is in the store by now)
      this.#preIndex = await readSaveIndex(assemble(store, blob.chunks, await blob.ended))
      this.#loaded = `${this.#i.imageRef}-pre`
    } else {
      this.#loaded = this.#i.imageRef
    }
  }

  async #loadDelta (blob: IncomingBlob): Promise<void> {
    if (this.#preIndex == null) throw new MigrationError('GOTO_ERR_BAD_STATE', 'a delta without the pre-copied image it applies to')
    const end = await blob.ended
    const layer = assembleLive(this.#i.store, blob, this.#i.whenStored)
    const archive = deltaImageArchive(this.#preIndex, layer, end.bytes, end.sha256, this.#i.imageRef) as unknown as Readable
    try {
      await this.#engine(blob.name, checkImageArchive(archive), async stream => { await this.#i.runtime.loadImage(stream) })
    } finally {
      layer.destroy()
    }
    this.#loaded = this.#i.imageRef
  }

  async #fillVolume (blob: IncomingBlob, destination: string): Promise<void> {
    const { runtime, spec } = this.#i
    const mount = spec.mounts.find(m => m.type === 'volume' && m.destination === destination)!
    if (this.#loaded == null) throw new MigrationError('GOTO_ERR_BAD_STATE', `${blob.name} came before any image`)
    await this.#prepareVolumes()
    if (blob.name.startsWith('volume:') && this.#filled.has(mount.source)) {
      // sent whole after a pre-copy (files were deleted since): start it afresh
      if (this.#fill != null) await runtime.removeContainer(this.#fill, { volumes: false })
      this.#fill = undefined
      await runtime.removeVolume(mount.source)
      this.#volumes.delete(mount.source)
      this.#filled.delete(mount.source)
    }
    for (const m of spec.mounts.filter(m => m.type === 'volume')) if (!this.#volumes.has(m.source)) await this.#createVolume(m.source)
    const fill = await this.#fillContainer()
    await this.#engine(blob.name, checkArchive(assembleLive(this.#i.store, blob, this.#i.whenStored), { mount: destination }), async stream => { await runtime.putArchive(fill, posix.dirname(destination), stream) })
    this.#filled.add(mount.source)
  }

  async #prepareVolumes (): Promise<void> {
    if (this.#volumesReady) return
    this.#volumesReady = true
    await this.#i.beforeVolumes()
  }

  async #createVolume (name: string): Promise<void> {
    await this.#i.runtime.createVolume(name, { 'goto.migration': this.#i.migration })
    this.#volumes.add(name)
    await this.#i.onVolume(name)
  }

  /** A container, never started, with every volume mounted writable: the archive API fills volumes only through one. */
  async #fillContainer (): Promise<string> {
    if (this.#fill != null) return this.#fill
    const name = fillContainerName(this.#i.migration)
    await this.#i.runtime.createContainer(name, {
      Image: this.#loaded,
      Entrypoint: ['/goto-fill-never-runs'],
      Cmd: [],
      Labels: { 'goto.migration': this.#i.migration },
      HostConfig: {
        NetworkMode: 'none',
        Mounts: this.#i.spec.mounts.filter(m => m.type === 'volume').map(m => ({ Type: 'volume', Source: m.source, Target: m.destination, ReadOnly: false }))
      }
    })
    this.#fill = name
    return name
  }
}
