import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { extract, pack, type Header } from 'tar-stream'
import { checkArchive, checkImageArchive, ArchiveRefusedError } from '../../node/migration/archive-check.ts'

type Entry = Partial<Header> & Pick<Header, 'name'> & { body?: string }

async function tarOf (entries: Entry[]): Promise<Buffer> {
  const p = pack()
  for (const { body, ...header } of entries) p.entry(header, body ?? '')
  p.finalize()
  const parts: Buffer[] = []
  for await (const chunk of p) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

/** What the engine would receive: the entries of a checked tar, or the error that ended it. */
async function received (checked: Readable): Promise<{ names: string[], bodies: Map<string, string>, error?: Error }> {
  const names: string[] = []
  const bodies = new Map<string, string>()
  const tar = extract()
  let error: Error | undefined
  checked.on('error', err => { error = err; tar.destroy(err) })
  checked.pipe(tar as unknown as NodeJS.WritableStream)
  try {
    for await (const entry of tar) {
      names.push(entry.header.name)
      const parts: Buffer[] = []
      for await (const c of entry) parts.push(c as Buffer)
      bodies.set(entry.header.name, Buffer.concat(parts).toString())
    }
  } catch (err) {
    error ??= err as Error
  }
  return { names, bodies, error }
}

async function throughChecker (bytes: Buffer, mount = '/data', limits: { maxBytes?: number, maxEntries?: number } = {}): Promise<{ names: string[], bodies: Map<string, string>, error?: Error }> {
  return await received(checkArchive(Readable.from([bytes]), { mount, ...limits }))
}

async function refused (entries: Entry[], match: RegExp, mount?: string): Promise<string[]> {
  const { names, error } = await throughChecker(await tarOf(entries), mount)
  assert.ok(error instanceof ArchiveRefusedError, `refused, not ${String(error)}`)
  assert.equal(error.code, 'GOTO_ERR_BAD_ARCHIVE')
  assert.match(error.message, match)
  return names
}

const dir = (name: string): Entry => ({ name, type: 'directory', mode: 0o755 })
const file = (name: string, body = 'x'): Entry => ({ name, type: 'file', mode: 0o644, body })

describe('archive checker', () => {
  it('passes a volume archive with files, directories, links inside it and a fifo, contents unchanged', async () => {
    const { names, bodies, error } = await throughChecker(await tarOf([
      dir('data/'), dir('data/conf/'), file('data/conf/site.conf', 'listen 80'),
      { name: 'data/current.conf', type: 'symlink', linkname: 'conf/site.conf' },
      { name: 'data/abs.conf', type: 'symlink', linkname: '/data/conf/site.conf' },
      { name: 'data/hard.conf', type: 'link', linkname: 'data/conf/site.conf' },
      { name: 'data/pipe', type: 'fifo', mode: 0o600 }
    ]))
    assert.equal(error, undefined)
    assert.deepEqual(names, ['data/', 'data/conf/', 'data/conf/site.conf', 'data/current.conf', 'data/abs.conf', 'data/hard.conf', 'data/pipe'])
    assert.equal(bodies.get('data/conf/site.conf'), 'listen 80')
  })

  it('refuses a symlink to / and a write through it (CVE-2018-15664 shape) before the engine sees it', async () => {
    const seen = await refused([dir('data/'), { name: 'data/root', type: 'symlink', linkname: '/' }, file('data/root/etc/shadow')], /symlink to \/, outside the volume/)
    assert.deepEqual(seen, ['data/'])
    await refused([dir('data/'), { name: 'data/up', type: 'symlink', linkname: '../../proc/1/root' }], /outside the volume/)
  })

  it('refuses an entry written through a symlink of the same archive, even one that stays inside', async () => {
    const seen = await refused([dir('data/'), dir('data/real/'), { name: 'data/alias', type: 'symlink', linkname: 'real' }, file('data/alias/x')], /through the symlink data\/alias/)
    assert.ok(!seen.includes('data/alias/x'))
  })

  it('refuses host library paths outside the volume root (CVE-2019-14271 shape): absolute, .. and a foreign root', async () => {
    await refused([file('/lib/x86_64-linux-gnu/libnss_files.so.2')], /an absolute name/)
    await refused([dir('data/'), file('data/../lib/x86_64-linux-gnu/libnss_files.so.2')], /a \.\. component/)
    await refused([file('lib/x86_64-linux-gnu/libnss_files.so.2')], /outside the volume's root data\//)
  })

  it('refuses a hard link that leaves the archive (2026 archive escape shape)', async () => {
    await refused([dir('data/'), { name: 'data/shadow', type: 'link', linkname: '/etc/shadow' }], /hard link to \/etc\/shadow/)
    await refused([dir('data/'), { name: 'data/h', type: 'link', linkname: 'data/../../etc/shadow' }], /hard link/)
  })

  it('refuses a volume root that is no directory', async () => {
    await refused([{ name: 'data', type: 'symlink', linkname: '/' }], /root as a symlink/)
  })

  it('refuses device nodes', async () => {
    await refused([dir('data/'), { name: 'data/sda', type: 'block-device', devmajor: 8, devminor: 0 }], /block-device/)
    await refused([dir('data/'), { name: 'data/mem', type: 'character-device', devmajor: 1, devminor: 1 }], /character-device/)
  })

  it('refuses names that collide after Unicode NFC normalisation, and plain duplicates', async () => {
    await refused([dir('data/'), file('data/caf\u00e9'), file('data/cafe\u0301')], /same name/)
    await refused([dir('data/'), file('data/a'), file('data/a')], /same name/)
  })

  it('refuses a compressed archive: the engine never runs a decompressor', async () => {
    const gz = gzipSync(await tarOf([dir('data/'), file('data/a')]))
    const { names, error } = await throughChecker(gz)
    assert.ok(error instanceof ArchiveRefusedError)
    assert.match(error.message, /gzip-compressed/)
    assert.deepEqual(names, [])
    for (const magic of [[0x42, 0x5a, 0x68, 0x39, 0, 0], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], [0x28, 0xb5, 0x2f, 0xfd, 0, 0]]) {
      const { error } = await throughChecker(Buffer.concat([Buffer.from(magic), Buffer.alloc(1024)]))
      assert.match(String(error?.message), /compressed/)
    }
  })

  it('refuses contents beyond the byte cap, entries beyond the count cap, and a truncated stream', async () => {
    const big = await tarOf([dir('data/'), file('data/a', 'y'.repeat(5000))])
    assert.match(String((await throughChecker(big, '/data', { maxBytes: 4096 })).error?.message), /more than 4096 bytes/)
    const many = await tarOf([dir('data/'), file('data/a'), file('data/b'), file('data/c')])
    assert.match(String((await throughChecker(many, '/data', { maxEntries: 3 })).error?.message), /more than 3 entries/)
    const cut = big.subarray(0, 1024 + 512)
    const { error } = await throughChecker(cut)
    assert.ok(error instanceof ArchiveRefusedError, String(error))
    assert.match(error.message, /not a valid tar/)
  })

  it('refuses garbage that is no tar at all', async () => {
    const { error } = await throughChecker(Buffer.alloc(2048, 0x41))
    assert.ok(error instanceof ArchiveRefusedError, String(error))
  })
})

describe('image archive checker', () => {
  const throughImageChecker = async (bytes: Buffer): Promise<{ names: string[], error?: Error }> => await received(checkImageArchive(Readable.from([bytes])))

  const saved = async (layer: Buffer | string, extra: Entry[] = []): Promise<Buffer> => await tarOf([
    dir('abc/'), { name: 'abc/layer.tar', type: 'file', body: layer as unknown as string }, file('cfg.json', '{}'), file('manifest.json', '[]'), ...extra
  ])

  it('passes a saved image whole: its layers plain tars', async () => {
    const { names, error } = await throughImageChecker(await saved(await tarOf([file('etc/motd', 'hi')])))
    assert.equal(error, undefined)
    assert.deepEqual(names, ['abc/', 'abc/layer.tar', 'cfg.json', 'manifest.json'])
  })

  it('refuses a compressed layer, links, devices and names that leave the archive, before the engine sees them', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [await saved(gzipSync(await tarOf([file('x')]))), /gzip-compressed/],
      [await saved('', [{ name: 'abc/json', type: 'symlink', linkname: '/etc/shadow' }]), /symlink entry/],
      [await saved('', [{ name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), /character-device entry/],
      [await saved('', [file('../escape')]), /not a plain relative name/],
      [await saved('', [file('/abs')]), /not a plain relative name/],
      [await saved('', [file('cfg.json', '{}')]), /second entry/],
      [gzipSync(await saved('')), /gzip-compressed/]
    ]
    for (const [bytes, match] of cases) {
      const { error } = await throughImageChecker(bytes)
      assert.ok(error instanceof ArchiveRefusedError, `refused, not ${String(error)}`)
      assert.match(error.message, match)
    }
  })
})
