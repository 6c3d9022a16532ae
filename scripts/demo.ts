/**
 * The demo: three simulated hosts on this machine — a Docker engine and a
 * goto-node agent each, on 127.x.y.1–3 — joined into one mesh, with a few
 * containers to watch. It prints the commands to watch it, then keeps
 * running until Ctrl-C, and tears everything down.
 *
 *   npm run demo            (after scripts/setup.sh; as root, for dockerd)
 */
import { BASE_IMAGE, startCluster, until } from '../test/harness/cluster.ts'

const say = (line = ''): void => { process.stdout.write(line + '\n') }

say('starting 3 Docker engines and 3 agents on loopback (about 10 s)…')
const cluster = await startCluster({ hosts: 3, label: 'demo' })
let stopping = false
const stop = async (): Promise<void> => {
  if (stopping) return
  stopping = true
  say('\nstopping the demo mesh…')
  await cluster.stop()
  process.exit(0)
}
process.removeAllListeners('SIGINT')
process.removeAllListeners('SIGTERM')
process.on('SIGINT', () => { void stop() })
process.on('SIGTERM', () => { void stop() })

await until(async () => {
  const peers = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as Array<{ status: string }>))
  return peers.every(p => p.filter(x => x.status === 'alive').length === 2)
}, 20_000, 'the mesh to form')

await cluster.engines[0]!.docker(['run', '-d', '--network', 'none', '--name', 'web-1', '--label', 'app=web', '-v', 'web-data:/var/www', BASE_IMAGE,
  'sh', '-c', '[ -f /var/www/index.html ] || head -c 50000000 /dev/urandom > /var/www/assets.bin; echo "<h1>hello from Go-To</h1>" > /var/www/index.html; exec httpd -f -p 8080 -h /var/www'])
await cluster.engines[1]!.docker(['run', '-d', '--network', 'none', '--name', 'db-1', '--label', 'app=db', BASE_IMAGE, 'sleep', '1d'])
await until(async () => (await cluster.engines[0]!.docker(['exec', 'web-1', 'cat', '/var/www/index.html']).catch(() => '')).includes('hello'), 30_000, 'web-1 to write its data')

const node = 'npx goto-node'
const a0 = cluster.agents[0]!
say('\nThe mesh is up:')
for (const a of cluster.agents) say(`  ${a.name}  ${a.peerId}  api ${a.api}  data ${a.dataDir}`)
say('\nWatch it from host0 (any host works the same):')
say(`  ${node} peers --api ${a0.api} --data-dir ${a0.dataDir}`)
say(`  ${node} list-containers --api ${a0.api} --data-dir ${a0.dataDir}`)
say(`  ${node} status --api ${a0.api} --data-dir ${a0.dataDir}`)
say('\nChange it and watch the mesh follow:')
say(`  docker -H ${cluster.engines[2]!.host} run -d --network none --name web-2 ${BASE_IMAGE} sleep 1d`)
say(`  ${node} rebalance --dry-run --api ${a0.api} --data-dir ${a0.dataDir}     # what host0 would move now, and why`)
say(`  ${node} leave --drain --api ${cluster.agents[1]!.api} --data-dir ${cluster.agents[1]!.dataDir}     # host1's containers move away, then it leaves`)
say('\nBefore the move:')
say((await a0.cli(['list-containers'])).stdout)
say(`Moving web-1 (50 MB volume) from host0 to host1:  ${node} migrate -s web-1 host1`)
const { spawn } = await import('node:child_process')
const { ENTRY } = await import('../test/harness/agent.ts')
await new Promise<void>(resolve => {
  const child = spawn(process.execPath, [ENTRY, 'migrate', '-s', 'web-1', 'host1', '--api', a0.api, '--data-dir', a0.dataDir], { stdio: 'inherit' })
  child.on('exit', () => { resolve() })
})
say('\nAfter the move:')
say((await a0.cli(['list-containers'])).stdout)
say(`Its history:  ${node} migrations --api ${a0.api} --data-dir ${a0.dataDir}`)
say(`Move it back: ${node} rollback <migration id> --api ${a0.api} --data-dir ${a0.dataDir}`)
say('\nPress Ctrl-C to stop and remove everything.')
await new Promise(() => {})
