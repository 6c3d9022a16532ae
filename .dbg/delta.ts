import { mkdtemp, writeFile, mkdir, symlink, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { extract } from 'tar-stream'
import { listTree, deltaSince, packDelta } from '../node/runtime/delta.ts'
const root = await mkdtemp(join(tmpdir(), 'delta-'))
await mkdir(join(root, 'a/b'), { recursive: true }); await writeFile(join(root, 'a/b/old.txt'), 'old'); await writeFile(join(root, 'keep.txt'), 'keep'); await mkdir(join(root, 'gone/sub'), { recursive: true }); await writeFile(join(root, 'gone/sub/x'), 'x')
const before = await listTree(root)
await new Promise(r => setTimeout(r, 2100))
const t0 = Date.now()
await writeFile(join(root, 'a/b/new.txt'), 'new'); await rm(join(root, 'gone'), { recursive: true }); await symlink('a/b/new.txt', join(root, 'link'))
const d = await deltaSince(root, t0, before, { overlay: false })
console.log(d)
const ex = extract()
ex.on('entry', (h, s, next) => { console.log(h.type, h.name, h.size, h.linkname ?? ''); s.resume(); s.on('end', next) })
const p = packDelta(root, d, { layer: true, prefix: '' })
for await (const c of p) ex.write(c)
ex.end()
