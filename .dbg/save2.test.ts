import { it } from 'node:test'
import Docker from 'dockerode'
import { startEngine, BASE_IMAGE } from '/work/main/test/harness/engine.ts'
import { makeRoot } from '/work/main/test/harness/procs.ts'
import { chunkStream } from '/work/main/node/chunks/cdc.ts'
it('save then destroy then rmi', { timeout: 120_000 }, async () => {
  const root = makeRoot('dbgsave')
  const e = await startEngine({ root, index: 0 } as any)
  try {
    await e.docker(['run', '-d', '--network', 'none', '--name', 'cc', BASE_IMAGE, 'sh', '-c', 'head -c 3000000 /dev/urandom > /big; exec sleep 1000'])
    await new Promise(r => setTimeout(r, 1000))
    const d = new Docker({ socketPath: e.socket })
    const ev = await d.getEvents({})
    await d.getContainer('cc').commit({ repo: 'x/pre', tag: '1', pause: false })
    const stream: any = await d.getImage('x/pre:1').get()
    let n = 0
    try {
      for await (const piece of chunkStream(stream)) { n += piece.length; if (n > 100_000) throw new Error('boom') }
    } catch (err) { console.log('caught', (err as Error).message) }
    stream.destroy()
    console.log('read', n, 'destroyed', stream.destroyed)
    const t = Date.now()
    console.log(await Promise.race([d.getImage('x/pre:1').remove({ force: true }).then(() => 'removed', (e: any) => e.message), new Promise(r => setTimeout(() => r('timeout'), 10000))]))
    console.log('rmi took', Date.now() - t)
    ;(ev as any).destroy()
  } finally { await e.stop() }
})
