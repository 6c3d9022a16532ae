import xsalsa20 from 'xsalsa20'
import { randomBytes } from 'node:crypto'
const x = xsalsa20(randomBytes(24), randomBytes(32))
const buf = randomBytes(64 * 1024); const out = Buffer.alloc(buf.length)
let t = performance.now(); for (let i = 0; i < 800; i++) x.update(buf, out)
console.log('xsalsa20 MB/s', (800 * 64 / 1024 / ((performance.now() - t) / 1000)).toFixed(0))
