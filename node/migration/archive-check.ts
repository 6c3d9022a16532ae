/**
 * The archive checker: every volume archive a peer sends passes through here
 * before the engine sees a byte of it. It reads the tar entry by entry, checks
 * each header, and writes a new, plain tar of only the entries it passed (the
 * engine never parses the peer's bytes, so no header trick of the peer's —
 * pax records, GNU extensions, a second copy of a name — reaches it).
 *
 * Refused, each with its reason, in the class of CVE-2018-15664 (a symlink
 * swapped in under a path being written), CVE-2019-14271 (the engine running
 * code from the container while it unpacks) and the later archive escapes:
 *  - input that is not a tar: compressed archives above all (the engine would
 *    run a decompressor for them, and a bomb would be unpacked by it);
 *  - an absolute name, a `..` component, a name outside the volume's root,
 *    the root itself as anything but a directory;
 *  - a symlink whose target, read inside the container, leaves the volume;
 *  - an entry whose path passes through a symlink of the same archive;
 *  - a hard link to anything but a file met earlier in the archive;
 *  - device nodes and every type but file, directory, symlink, hard link, fifo;
 *  - two names equal after Unicode NFC normalisation (or equal outright);
 *  - more entries, longer names or more bytes than the caps.
 * Nothing is extracted on the host: the checked tar goes on to the engine,
 * which unpacks it inside a container.
 *
 * @example
 * ```ts
 * const checked = checkArchive(volumeTar, { mount: '/data' })
 * await runtime.putArchive(fill, '/', checked)
 * ```
 */
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { extract, pack, type Header, type Pack } from 'tar-stream'
import { MigrationError } from './errors.ts'

export interface ArchiveCheckInit {
  /** Where the archive's root directory lands in the container: entries are `<basename(mount)>/…`. */
  mount: string
  /** At most this many entries. @default 1_000_000 */
  maxEntries?: number
  /** At most this many bytes of file contents in all. @default 1 TiB */
  maxBytes?: number
}

/** Linux's PATH_MAX and NAME_MAX: a longer name could not be created anyway. */
export const MAX_PATH = 4096
export const MAX_NAME = 255
const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_MAX_BYTES = 2 ** 40

const COMPRESSED: Array<[string, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]]
]
type PackHeader = Partial<Header> & Pick<Header, 'name'>
const ALLOWED_TYPES = new Set(['file', 'directory', 'symlink', 'link', 'fifo'])

export class ArchiveRefusedError extends MigrationError {
  override name = 'ArchiveRefusedError'
  constructor (reason: string) {
    super('GOTO_ERR_BAD_ARCHIVE', `archive refused: ${reason}`)
  }
}

/** The checked, re-packed archive. It fails with ArchiveRefusedError at the first entry refused, before writing it. */
export function checkArchive (source: AsyncIterable<Uint8Array> | Readable, init: ArchiveCheckInit): Readable {
  const out = pack()
  const checker = new EntryChecker(init)
  let sourceError: Error | undefined
  const run = async (): Promise<void> => {
    const input = refuseCompressed(source)
    const tar = extract()
    const feeding = Readable.from(input).on('error', err => { sourceError = err; tar.destroy(err) })
    feeding.pipe(tar as unknown as NodeJS.WritableStream)
    out.once('close', () => { feeding.destroy(); tar.destroy() }) // the reader went away: stop reading
    for await (const entry of tar) {
      checker.check(entry.header)
      await copyEntry(out, plainHeader(entry.header), entry as AsyncIterable<Uint8Array>)
    }
    out.finalize()
  }
  run().catch(err => {
    if (source instanceof Readable) source.destroy()
    out.destroy(err instanceof MigrationError ? err : sourceError ?? new ArchiveRefusedError(`not a valid tar: ${(err as Error).message}`))
  })
  return Readable.from(out)
}

/** Most entries in a saved image: a few files per layer, and Docker allows 127 layers. */
const MAX_IMAGE_ENTRIES = 4096

/**
 * The same pass for a saved image on its way to `docker load`: a plain tar
 * of only files and directories, relative names without `..`, no name twice,
 * and every layer in it a plain tar too (the engine would run a decompressor
 * on a compressed one, and unpack a bomb). What a layer holds is the
 * engine's to apply: it does so chrooted, whiteouts and all.
 */
export function checkImageArchive (source: AsyncIterable<Uint8Array> | Readable): Readable {
  const out = pack()
  let sourceError: Error | undefined
  const run = async (): Promise<void> => {
    const tar = extract()
    const feeding = Readable.from(refuseCompressed(source)).on('error', err => { sourceError = err; tar.destroy(err) })
    feeding.pipe(tar as unknown as NodeJS.WritableStream)
    out.once('close', () => { feeding.destroy(); tar.destroy() })
    const names = new Set<string>()
    for await (const entry of tar) {
      const h = entry.header
      if (names.size >= MAX_IMAGE_ENTRIES) throw new ArchiveRefusedError(`more than ${MAX_IMAGE_ENTRIES} entries in an image archive`)
      if (h.type !== 'file' && h.type !== 'directory') throw new ArchiveRefusedError(`${h.name}: a ${String(h.type)} entry in an image archive`)
      if (h.name.length > MAX_PATH || posix.isAbsolute(h.name) || h.name.split('/').includes('..')) throw new ArchiveRefusedError(`${h.name}: not a plain relative name`)
      const key = posix.normalize(h.name).replace(/\/+$/, '').normalize('NFC')
      if (names.has(key)) throw new ArchiveRefusedError(`${h.name}: a second entry of the same name (after Unicode normalisation)`)
      names.add(key)
      const body = h.type === 'file' && key.endsWith('.tar') ? refuseCompressed(entry as AsyncIterable<Uint8Array>) : entry as AsyncIterable<Uint8Array>
      await copyEntry(out, plainHeader(h), body)
    }
    out.finalize()
  }
  run().catch(err => {
    if (source instanceof Readable) source.destroy()
    out.destroy(err instanceof MigrationError ? err : sourceError ?? new ArchiveRefusedError(`not a valid tar: ${(err as Error).message}`))
  })
  return Readable.from(out)
}

/** Checks headers in order; holds what later entries are checked against. */
export class EntryChecker {
  readonly #mount: string
  readonly #root: string
  readonly #maxEntries: number
  readonly #maxBytes: number
  readonly #names = new Set<string>()
  readonly #symlinks = new Set<string>()
  readonly #files = new Set<string>()
  #entries = 0
  #bytes = 0

  constructor (init: ArchiveCheckInit) {
    this.#mount = posix.normalize(init.mount).replace(/\/+$/, '')
    this.#root = posix.basename(this.#mount)
    if (!posix.isAbsolute(this.#mount) || this.#root === '') throw new TypeError(`the mount must be an absolute path below /, not ${init.mount}`)
    this.#maxEntries = init.maxEntries ?? DEFAULT_MAX_ENTRIES
    this.#maxBytes = init.maxBytes ?? DEFAULT_MAX_BYTES
  }

  /** Throws ArchiveRefusedError with the reason if this entry may not be written. */
  check (header: Pick<Header, 'name' | 'type' | 'size' | 'linkname'>): void {
    if (++this.#entries > this.#maxEntries) throw new ArchiveRefusedError(`more than ${this.#maxEntries} entries`)
    const name = this.#path(header.name)
    const type = header.type ?? 'file'
    if (!ALLOWED_TYPES.has(type)) throw new ArchiveRefusedError(`${name}: a ${type} entry`)
    if (name === this.#root && type !== 'directory') throw new ArchiveRefusedError(`${name}: the volume's root as a ${type}, not a directory`)
    const key = name.normalize('NFC')
    if (this.#names.has(key)) throw new ArchiveRefusedError(`${name}: a second entry of the same name (after Unicode normalisation)`)
    this.#names.add(key)
    this.#bytes += header.size ?? 0
    if (this.#bytes > this.#maxBytes) throw new ArchiveRefusedError(`more than ${this.#maxBytes} bytes of contents`)
    if (type === 'symlink') this.#checkSymlink(name, header.linkname ?? '')
    if (type === 'link') this.#checkHardLink(name, header.linkname ?? '')
    if (type === 'file') this.#files.add(key)
  }

  /** The entry's name, checked: relative, no `..`, inside the root, through no symlink of the archive. */
  #path (raw: string): string {
    if (raw.length > MAX_PATH) throw new ArchiveRefusedError(`a name longer than ${MAX_PATH} bytes`)
    if (raw.includes('\0')) throw new ArchiveRefusedError('a name with a NUL byte')
    if (raw.startsWith('/')) throw new ArchiveRefusedError(`${raw}: an absolute name`)
    const parts = raw.split('/').filter(p => p !== '' && p !== '.')
    if (parts.includes('..')) throw new ArchiveRefusedError(`${raw}: a .. component`)
    if (parts.some(p => Buffer.byteLength(p) > MAX_NAME)) throw new ArchiveRefusedError(`${raw}: a component longer than ${MAX_NAME} bytes`)
    if (parts[0] !== this.#root) throw new ArchiveRefusedError(`${raw}: outside the volume's root ${this.#root}/`)
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join('/').normalize('NFC')
      if (this.#symlinks.has(ancestor)) throw new ArchiveRefusedError(`${raw}: written through the symlink ${ancestor}`)
    }
    return parts.join('/')
  }

  #checkSymlink (name: string, target: string): void {
    const where = posix.join(posix.dirname(this.#mount), posix.dirname(name))
    const resolved = posix.resolve(where, target)
    if (resolved !== this.#mount && !resolved.startsWith(this.#mount + '/')) {
      throw new ArchiveRefusedError(`${name}: a symlink to ${target}, outside the volume ${this.#mount}`)
    }
    this.#symlinks.add(name.normalize('NFC'))
  }

  #checkHardLink (name: string, target: string): void {
    const key = posix.normalize(target).replace(/^\/+/, '').normalize('NFC')
    if (!this.#files.has(key)) throw new ArchiveRefusedError(`${name}: a hard link to ${target}, which is no file earlier in the archive`)
  }
}

/** Passes the bytes on once the first ones show no compressed format's magic. */
async function * refuseCompressed (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let head: Buffer = Buffer.alloc(0)
  let judged = false
  for await (const chunk of source) {
    if (judged) { yield chunk; continue }
    head = Buffer.concat([head, chunk])
    if (head.length < 6) continue
    judged = true
    for (const [format, magic] of COMPRESSED) {
      if (magic.every((b, i) => head[i] === b)) throw new ArchiveRefusedError(`a ${format}-compressed archive (only plain tar is accepted)`)
    }
    yield head
  }
  if (!judged && head.length > 0) throw new ArchiveRefusedError('too short to be a tar')
}

/** Only what a plain tar needs: no pax records, no owner names, no device numbers. */
function plainHeader (h: Header): PackHeader {
  return {
    name: h.name,
    type: h.type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size: h.type === 'file' ? h.size : 0,
    mtime: h.mtime,
    ...(h.type === 'symlink' || h.type === 'link' ? { linkname: h.linkname } : {})
  }
}

/** One entry's contents into the new tar, waiting for the reader (back-pressure). */
async function copyEntry (out: Pack, header: PackHeader, body: AsyncIterable<Uint8Array>): Promise<void> {
  const sink = out.entry(header)
  const done = new Promise<void>((resolve, reject) => {
    sink.once('finish', () => { resolve() })
    sink.once('error', reject)
  })
  done.catch(() => {}) // a body that breaks first is the error reported; the sink's own follows it
  for await (const chunk of body) {
    if (!sink.write(chunk)) await drained(sink)
    if (sink.destroyed) throw new Error('the checked archive was closed')
  }
  sink.end(undefined)
  await done
}

/** Resolves when the sink takes more, or closes; leaves no listener behind. */
async function drained (sink: ReturnType<Pack['entry']>): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => {
      sink.off('drain', done)
      sink.off('close', done)
      resolve()
    }
    sink.on('drain', done)
    sink.on('close', done)
  })
}
