/**
 * What changed in a directory tree since a moment: the container's writable
 * layer (overlay2's upper directory) or a volume, read on the host where the
 * engine keeps them. After a pre-copy, the freeze needs to ship only this.
 *
 * A change is found by the inode's ctime, which every write, chmod, chown,
 * rename or link updates and which no program can set back; a deletion by a
 * path listed before and gone now. In an upper directory overlayfs marks a
 * deleted lower file with a 0:0 character device and a directory that hides
 * its lower contents with the `trusted.overlay.opaque` xattr; a layer tar
 * says both in Docker's words (`.wh.<name>`, `.wh..wh..opq`), so `docker
 * load` applies the delta as one more layer.
 *
 * Node cannot read xattrs, so opaque directories are asked of `getfattr`
 * (Debian's `attr`), only for the few directories changed since the moment.
 */
import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { extract, pack, type Header } from 'tar-stream'

type Headers = Partial<Header> & Pick<Header, 'name'>

const run = promisify(execFile)

/** A listing: relative path → whether it is a directory. */
export type Listing = Map<string, boolean>

/** Every path under `root`, relative, without following links. */
export async function listTree (root: string): Promise<Listing> {
  const out: Listing = new Map()
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(posix.join(root, rel), { withFileTypes: true })
    for (const e of entries) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`
      out.set(path, e.isDirectory())
      if (e.isDirectory()) await walk(path)
    }
  }
  await walk('')
  return out
}

/**
 * Each entry of a tar stream in turn: `visit` reads the body or leaves it,
 * and what it leaves is skipped before the next entry.
 */
export async function forEachEntry (archive: AsyncIterable<Uint8Array>, visit: (header: Header, body: AsyncIterable<Buffer>) => void | Promise<void>): Promise<void> {
  const tar = extract()
  const feeding = Readable.from(archive).once('error', err => { tar.destroy(err) })
  feeding.pipe(tar as unknown as NodeJS.WritableStream)
  for await (const entry of tar) {
    await visit(entry.header, entry as AsyncIterable<Buffer>)
    for await (const _ of entry) { /* the rest, unread */ }
  }
}

/** The listing of a tar's entries under `prefix` (the prefix itself and what is outside it left out). */
export async function archiveListing (archive: AsyncIterable<Uint8Array>, prefix: string): Promise<Listing> {
  const out: Listing = new Map()
  await forEachEntry(archive, header => {
    const name = header.name.replace(/\/+$/, '')
    if (name.startsWith(prefix)) out.set(name.slice(prefix.length), header.type === 'directory')
  })
  return out
}

export interface Delta {
  /** Paths whose inode changed since the moment, parents before children. */
  changed: string[]
  /** Paths listed before and gone now, only the topmost of a removed tree. */
  deleted: string[]
  /** Changed directories that overlayfs marks opaque. */
  opaque: string[]
}

/**
 * Filesystems stamp times from a coarse clock (the kernel's tick, 4–10 ms
 * behind the real time): a change made just after the moment may carry a
 * time just before it. Anything changed this long before the moment ships
 * too; more is safe, only larger.
 */
const CLOCK_SLACK_MS = 200

/** The delta of `root` since `sinceMs` (ms since the epoch), against the listing taken then. */
export async function deltaSince (root: string, sinceMs: number, before: Listing, options: { overlay: boolean }): Promise<Delta> {
  const since = BigInt(Math.floor(sinceMs - CLOCK_SLACK_MS)) * 1_000_000n
  const now = await listTree(root)
  const changed: string[] = []
  for (const path of [...now.keys()].sort()) {
    const st = await lstat(posix.join(root, path), { bigint: true })
    if (st.ctimeNs >= since) changed.push(path)
  }
  const deleted: string[] = []
  for (const path of [...before.keys()].sort()) {
    if (now.has(path)) continue
    const parent = posix.dirname(path)
    if (parent !== '.' && !now.has(parent) && before.has(parent)) continue // the parent's deletion covers it
    deleted.push(path)
  }
  const dirs = changed.filter(p => now.get(p) === true)
  const opaque = options.overlay && dirs.length > 0 ? await opaqueDirs(root, dirs) : []
  return { changed, deleted, opaque }
}

/** Whether `getfattr` can be run here: without it an upper directory cannot be read in full. */
export async function canReadXattrs (): Promise<boolean> {
  try {
    await run('getfattr', ['--version'])
    return true
  } catch {
    return false
  }
}

async function opaqueDirs (root: string, dirs: string[]): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < dirs.length; i += 256) {
    const batch = dirs.slice(i, i + 256)
    // exit 1 when some file lacks the attribute: read what it printed anyway
    const { stdout } = await run('getfattr', ['--absolute-names', '-n', 'trusted.overlay.opaque', '--', ...batch.map(d => posix.join(root, d))], { maxBuffer: 16 * 1024 * 1024 })
      .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
    let file: string | undefined
    for (const line of stdout.split('\n')) {
      if (line.startsWith('# file: ')) file = line.slice('# file: '.length)
      else if (file != null && /^trusted\.overlay\.opaque="y"$/.test(line.trim())) out.push(posix.relative(root, file))
    }
  }
  return out
}

/**
 * A tar of the delta, entry names prefixed with `prefix`. In `layer` form
 * deletions and overlay markers become Docker's whiteouts; otherwise the
 * caller must have no deletions to ship (a plain tar cannot say them).
 */
export function packDelta (root: string, delta: Delta, options: { prefix?: string, layer: boolean }): NodeJS.ReadableStream {
  const tar = pack()
  const prefix = options.prefix ?? ''
  const add = async (header: Headers, file?: string): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      if (file == null) {
        tar.entry(header, Buffer.alloc(0), err => { if (err != null) reject(err); else resolve() })
        return
      }
      const entry = tar.entry(header, err => { if (err != null) reject(err); else resolve() })
      const source = createReadStream(file)
      source.once('error', reject)
      source.pipe(entry)
    })
  }
  const whiteout = (path: string): Headers => ({ name: prefix + posix.join(posix.dirname(path), `.wh.${posix.basename(path)}`), type: 'file', size: 0, mode: 0o600, mtime: new Date() })
  void (async () => {
    const opaque = new Set(delta.opaque)
    for (const path of delta.changed) {
      const full = posix.join(root, path)
      const st = await lstat(full)
      const base = { name: prefix + path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime }
      if (st.isDirectory()) {
        await add({ ...base, type: 'directory' })
        if (opaque.has(path) && options.layer) await add({ name: `${prefix}${path}/.wh..wh..opq`, type: 'file', size: 0, mode: 0o600, mtime: new Date() })
      } else if (st.isFile()) {
        await add({ ...base, type: 'file', size: st.size }, full)
      } else if (st.isSymbolicLink()) {
        await add({ ...base, type: 'symlink', linkname: await readlink(full) })
      } else if (st.isCharacterDevice() && st.rdev === 0) {
        // overlayfs's mark of a deleted lower file
        if (options.layer) await add(whiteout(path))
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await add({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: Math.floor(st.rdev / 256), devminor: st.rdev % 256 })
      } else if (st.isFIFO()) {
        await add({ ...base, type: 'fifo' })
      }
      // sockets have no place in an archive
    }
    if (options.layer) for (const path of delta.deleted) await add(whiteout(path))
    tar.finalize()
  })().catch(err => { tar.destroy(err as Error) })
  return tar as unknown as NodeJS.ReadableStream
}
