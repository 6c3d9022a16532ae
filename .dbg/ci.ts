import { Level } from 'level'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { ChunkStore } from '../node/chunks/store.ts'
import { chunkInto } from '../node/migration/transfer.ts'
const dir = await mkdtemp(join(tmpdir(), 'ci-'))
const db = new Level<string, unknown>(join(dir, 'db'), { valueEncoding: 'json' }); await db.open()
const store = new ChunkStore(db, join(dir, 'chunks'))
const data = randomBytes(100 * 1024 * 1024)
async function * src () { for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536) }
let t = performance.now()
const r = await chunkInto(store, src(), async () => {})
console.log('chunkInto 100MB ms', (performance.now() - t).toFixed(0), r.chunks.length)
t = performance.now()
for (const c of r.chunks) await store.get(c.hash)
console.log('read back ms', (performance.now() - t).toFixed(0))
