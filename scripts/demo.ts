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

await cluster.engines[0]!.docker(['run', '-d', '--network', 'none', '--name', 'web-1', '--label', 'app=web', BASE_IMAGE, 'httpd', '-f', '-p', '8080'])
await cluster.engines[1]!.docker(['run', '-d', '--network', 'none', '--name', 'db-1', '--label', 'app=db', BASE_IMAGE, 'sleep', '1d'])

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
say(`  ${node} leave --api ${cluster.agents[2]!.api} --data-dir ${cluster.agents[2]!.dataDir}`)
say('\nPress Ctrl-C to stop and remove everything.')

const res = await a0.cli(['list-containers'])
say('\n' + res.stdout)
await new Promise(() => {})
