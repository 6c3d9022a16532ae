/**
 * Pre-copy with a delta, against a container that keeps writing: files
 * appended, created, deleted, a lower-layer file deleted (a whiteout), a
 * lower directory deleted and made again (an opaque directory), a volume
 * that loses files (sent whole) and one that only grows (sent as a delta).
 * What runs on the target must be, file for file, what the source held at
 * the freeze — read from its rollback point.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { extract } from 'tar-stream'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { Engine } from '../harness/engine.ts'

/** What a tar from the engine holds: path → type, mode, owner, link and content hash. */
async function tree (engine: Engine, args: string[], skip: RegExp = /^$/): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const proc = spawn('docker', ['-H', engine.host, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const tar = extract()
  tar.on('entry', (header, stream, next) => {
    const hash = createHash('md5')
    stream.on('data', (d: unknown) => { hash.update(d as Buffer) })
    stream.on('end', () => {
      const name = header.name.replace(/^\.?\/?/, '').replace(/\/$/, '')
      if (!skip.test(name)) out.set(name, `${header.type} ${(header.mode ?? 0).toString(8)} ${header.uid}:${header.gid} ${header.linkname ?? ''} ${header.type === 'file' ? hash.digest('hex') : ''}`)
      next()
    })
  })
  const done = new Promise<void>((resolve, reject) => { tar.on('finish', resolve); tar.on('error', reject) })
  proc.stdout.pipe(tar as unknown as NodeJS.WritableStream)
  await done
  return out
}

/** Files the engine writes into every container it starts. */
const ENGINE_OWNED = /^(proc|sys|dev)(\/|$)|^\.dockerenv$|^etc\/(hostname|hosts|resolv\.conf)$/

describe('pre-copy with a delta, the container writing all the while', { timeout: 600_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'delta' })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'the mesh')
  })
  after(async () => { await cluster?.stop() })

  it('the target holds exactly what the source held at the freeze', async () => {
    const [e0, e1] = cluster.engines as [Engine, Engine]
    const churn = [
      // on the target the command finds /moved and only sleeps, so nothing changes there after the start
      '[ -f /moved ] && exec sleep 1000000',
      '[ -f /ready ] || { mkdir -p /app && head -c 3000000 /dev/urandom > /app/base.bin && head -c 3000000 /dev/urandom > /data/base.bin && touch /ready; }',
      'i=0',
      'while true; do i=$((i+1))',
      'echo $i >> /app/log; echo $i > /app/new-$i; rm -f /app/new-$((i-3))',
      'echo $i > /data/counter; echo $i > /data/d$i; rm -f /data/d$((i-2))',
      'echo $i >> /logs/appended; echo $i > /logs/l$i',
      '[ $i = 5 ] && rm -f /bin/ls',
      '[ $i = 6 ] && { rm -rf /usr; mkdir /usr; echo only > /usr/only; }',
      'sleep 0.05; done'
    ].join('; ')
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'churn-1', '-v', 'churn-data:/data', '-v', 'churn-logs:/logs', BASE_IMAGE, 'sh', '-c', churn])
    await until(async () => Number(await e0.docker(['exec', 'churn-1', 'cat', '/data/counter']).catch(() => '0')) > 10, 30_000, 'the churn to start')
    await e0.docker(['exec', 'churn-1', 'touch', '/moved'])

    const res = await cluster.agents[0]!.call('POST', '/v1/migrations', { container: 'churn-1', target: 'host1' })
    assert.equal(res.body.phase, 'activated', JSON.stringify(res.body.error))
    assert.ok(res.body.precopy != null, 'a pre-copy round ran')
    const point = res.body.rollbackName as string

    const fs = async (e: Engine, name: string): Promise<Map<string, string>> => await tree(e, ['export', name], ENGINE_OWNED)
    const [was, is] = await Promise.all([fs(e0, point), fs(e1, 'churn-1')])
    assert.ok(!was.has('bin/ls') && !is.has('bin/ls'), 'the deleted lower file stays deleted')
    assert.deepEqual([...is.keys()].filter(k => k.startsWith('usr/')), ['usr/only'], 'the remade directory hides what the base had there')
    assert.ok(Number(/(\d+)/.exec([...was.keys()].filter(k => k.startsWith('app/new-')).join(' '))?.[1]) > 10, 'the source kept writing through the pre-copy')
    assert.deepEqual(is, was)
    for (const volume of ['/data', '/logs']) {
      assert.deepEqual(await tree(e1, ['cp', `churn-1:${volume}`, '-']), await tree(e0, ['cp', `${point}:${volume}`, '-']), volume)
    }
  })
})
