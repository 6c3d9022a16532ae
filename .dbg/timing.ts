import { startCluster, until, BASE_IMAGE } from '../test/harness/cluster.ts'
import { readFileSync } from 'node:fs'
const cluster = await startCluster({ hosts: 2, label: 'dbgt' })
try {
  await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'mesh')
  const e0 = cluster.engines[0]!
  if (process.argv[3] === 'prof') {
    for (const i of [0, 1]) { await cluster.agents[i]!.stop(); cluster.agents[i] = await cluster.agents[i]!.restart({ NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=/tmp/prof${i}` }) }
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 20_000, 'mesh')
  }
  const rss = (a: any) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${a.proc.pid}/status`, 'utf8'))![1]) / 1024
  console.log('idle rss MB', rss(cluster.agents[0]), rss(cluster.agents[1]))
  await e0.docker(['run', '-d', '--network', 'none', '--name', 'tt', '-v', 'tt-data:/data', BASE_IMAGE, 'sh', '-c', `[ -f /ready ] || { head -c ${process.env.SIZE ?? 30}m /dev/urandom > /a.bin; head -c 10m /dev/urandom > /data/b.bin; touch /ready; }; exec sleep 100000`])
  await until(async () => await e0.docker(['exec', 'tt', 'ls', '/ready']).then(() => true, () => false), 30_000, 'data')
  await new Promise(r => setTimeout(r, 2000))
  const t0 = Date.now()
  const res = await cluster.agents[0]!.call('POST', '/v1/migrations', { container: 'tt', target: 'host1', precopy: process.argv[2] === 'pre' })
  console.log('wall', Date.now() - t0, 'downtime', res.body.downtimeMs, JSON.stringify(res.body.transfer))
  let prev = 0
  for (const p of res.body.phases) { const t = Date.parse(p.at); console.log(p.phase, prev ? t - prev : 0); prev = t }
  const tr = (await cluster.agents[1]!.call('GET', `/v1/migrations/${res.body.id}`)).body
  prev = 0
  for (const p of tr.phases) { const t = Date.parse(p.at); console.log('  target', p.phase, prev ? t - prev : 0); prev = t }
  for (const a of cluster.agents) console.log(a.log().split('\n').filter(l => /DBG|migration phase|without a delta/.test(l)).map(l => l.slice(11, 23) + ' ' + l.slice(24, 260)).join('\n'))
  console.log('rss MB', rss(cluster.agents[0]), rss(cluster.agents[1]))
} finally { for (const a of cluster.agents) await a.stop(); await cluster.stop() }
