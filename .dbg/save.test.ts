import { it } from 'node:test'
import Docker from 'dockerode'
import { startEngine, BASE_IMAGE } from '/work/main/test/harness/engine.ts'
import { makeRoot } from '/work/main/test/harness/procs.ts'
it('save then destroy then rmi', { timeout: 120_000 }, async () => {
  const root = makeRoot('dbgsave')
  const e = await startEngine({ root, index: 0 } as any)
  try {
    await e.docker(['run', '-d', '--network', 'none', '--name', 'cc', BASE_IMAGE, 'sh', '-c', 'head -c 30000000 /dev/urandom > /big; exec sleep 1000'])
    await new Promise(r => setTimeout(r, 2000))
    await e.docker(['commit', 'cc', 'x/pre:1'])
    const d = new Docker({ socketPath: e.socket })
    const stream: any = await d.getImage('x/pre:1').get()
    let n = 0
    for await (const piece of stream) { n += piece.length; if (n > 1_000_000) break }
    stream.destroy()
    console.log('read', n, 'destroyed', stream.destroyed, typeof stream.socket)
    const t = Date.now()
    await Promise.race([d.getImage('x/pre:1').remove({ force: true }), new Promise(r => setTimeout(r, 10000))])
    console.log('rmi took', Date.now() - t)
  } finally { await e.stop() }
})
