/**
 * Property tests: every decoder of a peer's bytes, and the archive checker,
 * on generated input. A decoder may accept or refuse, but refuses only with
 * its own error class; what it accepts survives a round trip. Runs are few
 * and inputs small so the file stays well under a second or two.
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { extract, pack, type Header } from 'tar-stream'
import { decodeControl, encodeControl, InvalidMigrateMessageError, parseManifest, parseOfferPayload } from '../../protocols/migrate/index.ts'
import { decodeFrame, decodeRequest, encodeFrame, encodeRequest, InvalidChunkMessageError, TAG_ABSENT, TAG_RAW, TAG_ZSTD } from '../../protocols/chunks/index.ts'
import { decodeExchange, decodeStateMessage, InvalidStateMessageError, StateMessageTooLargeError } from '../../protocols/node-state/index.ts'
import { decodeLogMessage, encodeLogMessage, InvalidLogMessageError } from '../../protocols/log-sync/index.ts'
import { ArchiveRefusedError, checkArchive } from '../../node/migration/archive-check.ts'

const RUNS = { numRuns: 200 }
const encoder = new TextEncoder()

/** Raw bytes, JSON of any shape, and JSON shaped like the protocol's own messages. */
function peerBytes (types: string[]): fc.Arbitrary<Uint8Array> {
  const shaped = fc.record({ type: fc.constantFrom(...types), v: fc.constantFrom(1, 2), id: fc.string() }, { requiredKeys: ['type'] })
    .chain(base => fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }).map(extra => ({ ...extra, ...base })))
  return fc.oneof(
    fc.uint8Array({ maxLength: 2048 }),
    fc.jsonValue({ maxDepth: 4 }).map(v => encoder.encode(JSON.stringify(v))),
    shaped.map(v => encoder.encode(JSON.stringify(v)))
  )
}

function onlyOwnErrors (decode: (bytes: Uint8Array) => unknown, ...own: Array<new (...args: any[]) => Error>): (bytes: Uint8Array) => void {
  return bytes => {
    try {
      decode(bytes)
    } catch (err) {
      assert.ok(own.some(E => err instanceof E), `${(err as Error).name}: ${(err as Error).message}`)
    }
  }
}

/** The value as JSON gives it back: fast-check's records have no prototype. */
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value))
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(b => Buffer.from(b).toString('hex'))

describe('protocol decoders on generated input', () => {
  it('migrate control messages, offers and manifests refuse only with their own error', () => {
    const types = ['offer', 'accept', 'reject', 'transfer', 'recipe', 'blob-end', 'manifest', 'prepared', 'commit', 'activated', 'query', 'error', 'sync']
    fc.assert(fc.property(peerBytes(types), onlyOwnErrors(decodeControl, InvalidMigrateMessageError)), RUNS)
    fc.assert(fc.property(fc.string({ maxLength: 512 }), text => {
      onlyOwnErrors(() => parseOfferPayload(text), InvalidMigrateMessageError)(new Uint8Array(0))
      onlyOwnErrors(() => parseManifest(text), InvalidMigrateMessageError)(new Uint8Array(0))
    }), RUNS)
  })

  it('migrate control messages round-trip', () => {
    fc.assert(fc.property(fc.uuid({ version: 7 }), fc.array(fc.tuple(hex64, fc.integer({ min: 1, max: 256 * 1024 })), { minLength: 1, maxLength: 64 }), (id, chunks) => {
      const recipe = { type: 'recipe' as const, id, name: 'volume:/data', chunks }
      assert.deepEqual(decodeControl(encodeControl(recipe)), recipe)
    }), RUNS)
  })

  it('chunk requests and frames refuse only with their own error, and round-trip', () => {
    fc.assert(fc.property(peerBytes(['request']), onlyOwnErrors(decodeRequest, InvalidChunkMessageError)), RUNS)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), onlyOwnErrors(decodeFrame, InvalidChunkMessageError)), RUNS)
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 64 }), fc.array(hex64, { minLength: 1, maxLength: 32 }), (id, hashes) => {
      assert.deepEqual(decodeRequest(encodeRequest({ id, hashes })), { id, hashes })
    }), RUNS)
    fc.assert(fc.property(fc.constantFrom(TAG_RAW, TAG_ZSTD), hex64, fc.uint8Array({ maxLength: 1024 }), (tag, hash, body) => {
      const frame = decodeFrame(encodeFrame({ tag, hash, body }))
      assert.equal(frame.tag, tag)
      assert.equal(frame.hash, hash)
      assert.deepEqual(Buffer.from(frame.body), Buffer.from(body))
    }), RUNS)
    fc.assert(fc.property(hex64, hash => { assert.equal(decodeFrame(encodeFrame({ tag: TAG_ABSENT, hash, body: new Uint8Array(0) })).hash, hash) }), RUNS)
  })

  it('node states and exchanges refuse only with their own errors', () => {
    fc.assert(fc.property(peerBytes(['state', 'heartbeat', 'leaving']), onlyOwnErrors(decodeStateMessage, InvalidStateMessageError, StateMessageTooLargeError)), RUNS)
    fc.assert(fc.property(peerBytes(['state']), onlyOwnErrors(decodeExchange, InvalidStateMessageError, StateMessageTooLargeError)), RUNS)
  })

  it('log-sync messages refuse only with their own error, and round-trip', () => {
    fc.assert(fc.property(peerBytes(['want', 'entries']), onlyOwnErrors(decodeLogMessage, InvalidLogMessageError)), RUNS)
    const entry = fc.record({ text: fc.string({ maxLength: 200 }), signature: fc.base64String({ maxLength: 88 }).map(s => s.replace(/[+/=]/g, '_')) })
    fc.assert(fc.property(fc.array(entry, { maxLength: 20 }), fc.boolean(), (entries, more) => {
      const message = { type: 'entries' as const, entries, more }
      assert.deepEqual(decodeLogMessage(encodeLogMessage(message)), plain(message))
    }), RUNS)
    fc.assert(fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 52 }).filter(k => k !== '__proto__'), fc.nat()), vector => {
      assert.deepEqual(decodeLogMessage(encodeLogMessage({ type: 'want', vector })), plain({ type: 'want', vector }))
    }), RUNS)
  })
})

type Entry = Partial<Header> & Pick<Header, 'name'>

/** Names and link targets built from the parts that make archive escapes. */
const part = fc.constantFrom('data', 'data', 'data', '..', '.', '', 'etc', 'a', 'b', 'caf\u00e9', 'cafe\u0301', 'lib')
const path = fc.array(part, { minLength: 1, maxLength: 5 }).chain(parts => fc.boolean().map(abs => (abs ? '/' : '') + parts.join('/')))
const entry: fc.Arbitrary<Entry> = fc.record({
  name: path,
  type: fc.constantFrom('file', 'file', 'directory', 'symlink', 'link', 'fifo', 'character-device', 'block-device'),
  linkname: path
}).map(e => ({ ...e, mode: 0o644, size: 0 }))

async function tarOf (entries: Entry[]): Promise<Buffer> {
  const p = pack()
  for (const e of entries) p.entry(e, e.type === 'file' ? 'x' : '')
  p.finalize()
  const parts: Buffer[] = []
  for await (const chunk of p) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

async function passed (bytes: Uint8Array): Promise<{ headers: Header[], error?: Error }> {
  const headers: Header[] = []
  const tar = extract()
  const checked = checkArchive(Readable.from([bytes]), { mount: '/data' })
  let error: Error | undefined
  checked.on('error', err => { error = err; tar.destroy(err) })
  checked.pipe(tar as unknown as NodeJS.WritableStream)
  try {
    for await (const e of tar) {
      headers.push(e.header)
      e.resume()
    }
  } catch (err) {
    error ??= err as Error
  }
  return { headers, error }
}

describe('archive checker on generated archives', () => {
  it('refuses only with ArchiveRefusedError, and what it passes stays inside the volume', async () => {
    await fc.assert(fc.asyncProperty(fc.array(entry, { maxLength: 8 }), async entries => {
      const { headers, error } = await passed(await tarOf(entries))
      if (error != null) assert.ok(error instanceof ArchiveRefusedError, `${error.name}: ${error.message}`)
      const seen = new Set<string>()
      for (const h of headers) {
        const parts = h.name.split('/').filter(p => p !== '' && p !== '.')
        assert.ok(!h.name.startsWith('/') && !parts.includes('..') && parts[0] === 'data', h.name)
        assert.ok(!['character-device', 'block-device'].includes(h.type ?? ''), h.type)
        const key = parts.join('/').normalize('NFC')
        assert.ok(!seen.has(key), `twice: ${h.name}`)
        seen.add(key)
        if (h.type === 'symlink') {
          const target = new URL(h.linkname ?? '', `file:///${parts.slice(0, -1).map(p => `${p}/`).join('')}`).pathname
          assert.ok(target === '/data' || target.startsWith('/data/'), `${h.name} → ${h.linkname ?? ''}`)
        }
      }
    }), { numRuns: 150 })
  })

  it('passes a safe archive through whole: the same names, types, modes, link targets and contents', async () => {
    const safeName = fc.array(fc.constantFrom('a', 'b', 'c\u00e9', 'deep', 'x.txt'), { minLength: 1, maxLength: 3 }).map(parts => `data/${parts.join('/')}`)
    const files = fc.uniqueArray(fc.record({ name: safeName, body: fc.string({ maxLength: 3000 }), mode: fc.constantFrom(0o600, 0o644, 0o755) }), { selector: f => f.name, maxLength: 8 })
      // a name may not also be another's directory
      .map(list => list.filter(f => !list.some(g => g.name.startsWith(`${f.name}/`))))
    await fc.assert(fc.asyncProperty(files, async list => {
      const entries: Entry[] = [{ name: 'data/', type: 'directory', mode: 0o755 }]
      for (const f of list) entries.push({ name: f.name, type: 'file', mode: f.mode })
      if (list.length > 0) entries.push({ name: 'data/link', type: 'symlink', linkname: `/${list[0]!.name}` })
      const p = pack()
      for (const e of entries) p.entry(e, e.type === 'file' ? list.find(f => f.name === e.name)!.body : '')
      p.finalize()
      const parts: Buffer[] = []
      for await (const chunk of p) parts.push(chunk as Buffer)
      const out: Array<{ name: string, type: string, mode: number, linkname: string | null, body: string }> = []
      const tar = extract()
      checkArchive(Readable.from([Buffer.concat(parts)]), { mount: '/data' }).pipe(tar as unknown as NodeJS.WritableStream)
      for await (const e of tar) {
        const chunks: Buffer[] = []
        for await (const c of e) chunks.push(c as Buffer)
        out.push({ name: e.header.name, type: e.header.type ?? '', mode: e.header.mode ?? 0, linkname: e.header.linkname ?? null, body: Buffer.concat(chunks).toString() })
      }
      assert.deepEqual(out, entries.map(e => ({
        name: e.name, type: e.type, mode: e.mode ?? 0o644, linkname: e.linkname ?? null, body: e.type === 'file' ? list.find(f => f.name === e.name)!.body : ''
      })))
    }), { numRuns: 60 })
  })

  it('refuses only with ArchiveRefusedError on bytes that are no tar, or a tar cut anywhere', async () => {
    const good = await tarOf([{ name: 'data/', type: 'directory' }, { name: 'data/a', type: 'file' }])
    await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: good.length - 1 }).map(n => good.subarray(0, n))), async bytes => {
      const { error } = await passed(bytes)
      if (error != null) assert.ok(error instanceof ArchiveRefusedError, `${error.name}: ${error.message}`)
    }), { numRuns: 100 })
  })
})
