import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, symlink, writeFile, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { extract, pack } from 'tar-stream'
import { archiveListing, deltaSince, listTree, packDelta } from '../../node/runtime/delta.ts'
import { deltaImageArchive, readSaveIndex } from '../../node/migration/image-archive.ts'

async function entries (archive: NodeJS.ReadableStream | AsyncIterable<Uint8Array>): Promise<Array<{ name: string, type: string, body: string }>> {
  const out: Array<{ name: string, type: string, body: string }> = []
  const tar = extract()
  tar.on('entry', (header, stream, next) => {
    const parts: Buffer[] = []
    stream.on('data', (d: unknown) => { parts.push(d as Buffer) })
    stream.on('end', () => { out.push({ name: header.name, type: header.type ?? 'file', body: Buffer.concat(parts).toString() }); next() })
  })
  const done = new Promise<void>(resolve => { tar.on('finish', () => { resolve() }) })
  for await (const piece of archive as AsyncIterable<Uint8Array>) tar.write(piece)
  tar.end(undefined)
  await done
  return out
}

async function tarOf (files: Record<string, string>): Promise<Buffer> {
  const tar = pack()
  for (const [name, body] of Object.entries(files)) tar.entry({ name }, body)
  tar.finalize()
  const parts: Buffer[] = []
  for await (const piece of tar) parts.push(piece as Buffer)
  return Buffer.concat(parts)
}

describe('deltas of a tree', () => {
  let root: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'goto-delta-'))
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('finds what changed since a moment and what was deleted, and packs it with whiteouts', async () => {
    await mkdir(join(root, 'a/b'), { recursive: true })
    await mkdir(join(root, 'gone/sub'), { recursive: true })
    await writeFile(join(root, 'a/b/old.txt'), 'old')
    await writeFile(join(root, 'gone/sub/x'), 'x')
    await writeFile(join(root, 'kept.txt'), 'kept')
    const listing = await listTree(root)
    // everything so far is older than the moment: backdate ctimes by sleeping past the clock slack
    await new Promise(resolve => setTimeout(resolve, 400))
    const moment = Date.now()
    await writeFile(join(root, 'a/b/new.txt'), 'new')
    await rm(join(root, 'gone'), { recursive: true })
    await symlink('a/b/new.txt', join(root, 'link'))
    await utimes(join(root, 'kept.txt'), new Date(0), new Date(0)) // a metadata change counts too

    const delta = await deltaSince(root, moment, listing, { overlay: false })
    assert.deepEqual(delta.changed, ['a/b', 'a/b/new.txt', 'kept.txt', 'link'])
    assert.deepEqual(delta.deleted, ['gone'], 'only the top of a removed tree')

    const layer = await entries(packDelta(root, delta, { layer: true }))
    assert.deepEqual(layer.map(e => `${e.type} ${e.name}`), ['directory a/b', 'file a/b/new.txt', 'file kept.txt', 'symlink link', 'file .wh.gone'])
    assert.equal(layer.find(e => e.name === 'a/b/new.txt')?.body, 'new')

    const volume = await entries(packDelta(root, { ...delta, deleted: [] }, { layer: false, prefix: 'data/' }))
    assert.deepEqual(volume.map(e => e.name), ['data/a/b', 'data/a/b/new.txt', 'data/kept.txt', 'data/link'])
  })
})

describe('archive listings', () => {
  it('lists the entries under a prefix, directories marked, the root and outsiders left out', async () => {
    const tar = await tarOf({ 'data/': '', 'data/a.txt': 'a', 'data/sub/b': 'b', 'other/c': 'c' })
    const listing = await archiveListing(Readable.from([tar]), 'data/')
    assert.deepEqual([...listing], [['a.txt', false], ['sub/b', false]])
  })
})

describe('docker save archives', () => {
  const config = { rootfs: { type: 'layers', diff_ids: ['sha256:' + 'a'.repeat(64)] }, history: [{ created_by: 'base' }], config: { Cmd: ['sh'] } }

  it('reads the index of a saved image and writes it back with one more layer', async () => {
    const saved = await tarOf({ 'l1/layer.tar': 'LAYER', 'c0ffee.json': JSON.stringify(config), 'manifest.json': JSON.stringify([{ Config: 'c0ffee.json', RepoTags: ['x:pre'], Layers: ['l1/layer.tar'] }]) })
    const index = await readSaveIndex(Readable.from([saved]))
    assert.deepEqual(index.layers, ['l1/layer.tar'])
    const delta = 'b'.repeat(64)
    const out = await entries(deltaImageArchive(index, Readable.from([Buffer.from('DELTA')]), 5, delta, 'x:final'))
    const manifest = JSON.parse(out.find(e => e.name === 'manifest.json')!.body)
    assert.deepEqual(manifest[0].Layers, ['l1/layer.tar', `${delta}/layer.tar`])
    assert.deepEqual(manifest[0].RepoTags, ['x:final'])
    const written = JSON.parse(out.find(e => e.name === manifest[0].Config)!.body)
    assert.deepEqual(written.rootfs.diff_ids, [...config.rootfs.diff_ids, `sha256:${delta}`])
    assert.equal(written.history.length, 2)
    assert.equal(out.find(e => e.name === 'l1/layer.tar')!.body, '', 'the base layers are placeholders')
    assert.equal(out.find(e => e.name === `${delta}/layer.tar`)!.body, 'DELTA')
  })

  it('refuses an archive without a coherent manifest and config', async () => {
    await assert.rejects(readSaveIndex(Readable.from([await tarOf({ 'manifest.json': 'nope' })])), (err: any) => err.code === 'GOTO_ERR_BAD_IMAGE_ARCHIVE')
    await assert.rejects(readSaveIndex(Readable.from([await tarOf({ 'manifest.json': '[]' })])), /single manifest entry/)
    await assert.rejects(readSaveIndex(Readable.from([await tarOf({ 'c.json': JSON.stringify(config), 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: [] }]) })])), /disagree/)
  })
})
