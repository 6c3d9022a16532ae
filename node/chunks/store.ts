/**
 * The node's chunk store: chunks named by the SHA-256 of their bytes, one
 * file each under `<data dir>/chunks/<first two hex digits>/<hash>`, with an
 * index in LevelDB (sublevel `chunks`: hash → size and last use) and the
 * recipes of the snapshots that need them (sublevel `recipes`).
 *
 * A chunk is checked against its name before it is stored, and the index is
 * written only after the file is complete (written to a temporary name, then
 * renamed), so the index never names a chunk that is not whole on disk.
 *
 * Garbage collection keeps every chunk a live recipe names, and any chunk
 * used within the grace period; it deletes the rest.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { Level } from 'level'
import { GotoError } from '../errors.ts'

export class BadChunkError extends GotoError {
  override name = 'BadChunkError'
  override code = 'GOTO_ERR_BAD_CHUNK'
}

export interface ChunkRef {
  hash: string
  size: number
}

/** The chunks of one snapshot stream, in order. */
export interface Recipe {
  migration: string
  blob: string
  chunks: ChunkRef[]
  /** ms since the epoch; recipes older than the retention are dropped by gc(). */
  createdAt: number
}

interface IndexEntry { size: number, usedAt: number }

export interface GcResult { kept: number, removed: number, removedBytes: number, recipesDropped: number }

export function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

const HASH = /^[0-9a-f]{64}$/

export class ChunkStore {
  readonly dir: string
  readonly #index
  readonly #recipes
  /** Index writes are batched: a put costs one file write, not also one LevelDB write. */
  #pending = new Map<string, IndexEntry>()
  #flushing: Promise<void> | undefined
  /** Fan-out folders known to exist. */
  readonly #dirs = new Set<string>()

  constructor (db: Level<string, unknown>, dir: string) {
    this.dir = dir
    this.#index = db.sublevel<string, IndexEntry>('chunks', { valueEncoding: 'json' })
    this.#recipes = db.sublevel<string, Recipe>('recipes', { valueEncoding: 'json' })
  }

  #path (hash: string): string {
    if (!HASH.test(hash)) throw new BadChunkError(`"${hash}" is not a chunk name`)
    return join(this.dir, hash.slice(0, 2), hash)
  }

  async has (hash: string): Promise<boolean> {
    if (this.#pending.has(hash)) return true
    return await this.#index.get(hash) !== undefined
  }

  /** Which of `hashes` the store lacks, in their order, without duplicates. */
  async missing (hashes: string[]): Promise<string[]> {
    const unique = [...new Set(hashes)]
    const found = await this.#index.getMany(unique)
    return unique.filter((hash, i) => found[i] === undefined && !this.#pending.has(hash))
  }

  /**
   * Store a chunk after checking it is what its name says (unless the caller
   * just hashed it); `known: false` when the caller just asked `missing()`.
   */
  async put (hash: string, bytes: Uint8Array, options: { verified?: boolean, known?: false } = {}): Promise<void> {
    if (options.verified !== true) {
      const actual = sha256(bytes)
      if (actual !== hash) throw new BadChunkError(`chunk ${hash.slice(0, 12)}… hashes to ${actual.slice(0, 12)}…`)
    }
    if (options.known !== false && await this.has(hash)) return
    const path = this.#path(hash)
    const dir = join(this.dir, hash.slice(0, 2))
    if (!this.#dirs.has(dir)) {
      await mkdir(dir, { recursive: true })
      this.#dirs.add(dir)
    }
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, bytes)
    await rename(tmp, path)
    this.#pending.set(hash, { size: bytes.byteLength, usedAt: Date.now() })
    if (this.#pending.size >= 256) await this.flush()
  }

  /** Write the batched index entries. */
  async flush (): Promise<void> {
    while (this.#flushing != null) await this.#flushing
    if (this.#pending.size === 0) return
    const batch = [...this.#pending]
    this.#flushing = this.#index.batch(batch.map(([key, value]) => ({ type: 'put' as const, key, value })))
      .then(() => { for (const [hash] of batch) this.#pending.delete(hash) })
      .finally(() => { this.#flushing = undefined })
    await this.#flushing
  }

  async get (hash: string): Promise<Buffer> {
    try {
      return await readFile(this.#path(hash))
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw new BadChunkError(`chunk ${hash} is not in the store`)
      throw err
    }
  }

  async putRecipe (recipe: Recipe): Promise<void> {
    await this.flush()
    await this.#recipes.put(`${recipe.migration}!${recipe.blob}`, recipe)
  }

  async recipe (migration: string, blob: string): Promise<Recipe | undefined> {
    return await this.#recipes.get(`${migration}!${blob}`)
  }

  /** Bytes free on the store's filesystem. */
  async free (): Promise<number> {
    await mkdir(this.dir, { recursive: true })
    const s = await statfs(this.dir)
    return s.bavail * s.bsize
  }

  /**
   * Drop recipes older than `retentionMs` (unless `live` says their
   * migration still runs), then every chunk that no kept recipe names and
   * that was not used within `graceMs`.
   */
  async gc (options: { retentionMs: number, graceMs: number, live?: (migration: string) => boolean, now?: number }): Promise<GcResult> {
    await this.flush()
    const now = options.now ?? Date.now()
    const needed = new Set<string>()
    let recipesDropped = 0
    for await (const [key, recipe] of this.#recipes.iterator()) {
      if (now - recipe.createdAt > options.retentionMs && options.live?.(recipe.migration) !== true) {
        await this.#recipes.del(key)
        recipesDropped++
        continue
      }
      for (const c of recipe.chunks) needed.add(c.hash)
    }
    let kept = 0
    let removed = 0
    let removedBytes = 0
    for await (const [hash, entry] of this.#index.iterator()) {
      if (needed.has(hash) || now - entry.usedAt <= options.graceMs) {
        kept++
        continue
      }
      await this.#index.del(hash)
      await rm(this.#path(hash), { force: true })
      removed++
      removedBytes += entry.size
    }
    return { kept, removed, removedBytes, recipesDropped }
  }
}
