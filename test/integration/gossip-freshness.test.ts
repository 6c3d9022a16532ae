import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { startCluster, until, type Cluster } from '../harness/cluster.ts'
import { createMeshNode, type MeshNode } from '../../node/mesh/libp2p.ts'
import { meshIdOf } from '../../node/agent.ts'
import { STATE_PROTOCOL, TOPIC_PREFIX, encodeStateMessage, exchangeState, type NodeState } from '../../protocols/node-state/index.ts'

describe('gossip carries its own freshness', { timeout: 120_000 }, () => {
  let cluster: Cluster
  let peer: MeshNode
  let topic: string
  const incarnation = Date.now()
  const capacity = { cpus: 1, load1: 0, memTotal: 1e9, memFree: 1e9, diskTotal: 1e10, diskFree: 1e10 }
  const state = (seq: number, name: string, time = Date.now()): NodeState => ({
    v: 1, type: 'state', peerId: peer.peerId.toString(), incarnation, seq, time, name, addrs: peer.getMultiaddrs().map(String), state: 'active', capacity, runtime: 'none', containers: []
  })
  const nameSeen = async (): Promise<string | undefined> =>
    ((await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers as Array<{ peerId: string, name: string }>).find(p => p.peerId === peer.peerId.toString())?.name

  before(async () => {
    cluster = await startCluster({ hosts: 1, engines: false, label: 'fresh' })
    const agent = cluster.agents[0]!
    const swarmKey = await readFile(agent.swarmKeyFile)
    topic = `${TOPIC_PREFIX}/${meshIdOf(swarmKey)}/state/1`
    peer = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), swarmKey, listen: [`/ip4/${cluster.ip(5)}/tcp/0`], topics: [topic] })
    await peer.start()
    peer.services.pubsub.subscribe(topic)
    const stream = await peer.dialProtocol(multiaddr(agent.addr), STATE_PROTOCOL)
    await exchangeState(stream, agent.peerId, { state: state(1, 'fresh-1'), peers: [] })
    await until(async () => peer.services.pubsub.getSubscribers(topic).length > 0, 15_000, 'the agent in the topic mesh')
  })
  after(async () => {
    await peer?.stop()
    await cluster?.stop()
  })

  it('a gossiped state older than the window is dropped; a fresh one after it is taken', async () => {
    const publish = async (message: NodeState): Promise<void> => { await peer.services.pubsub.publish(topic, encodeStateMessage(message)) }
    // published again on every poll: the first may go out before the agent has the topic's mesh in place
    await until(async () => { await publish(state(2, 'fresh-2')); return await nameSeen() === 'fresh-2' }, 10_000, 'the fresh state')
    // signed by its origin and newer by seq, but five minutes old: a replay after gossipsub forgot its id.
    // One peer's messages arrive in order, so once the state after it is taken, the stale one was judged.
    await until(async () => {
      await publish(state(3, 'stale-3', Date.now() - 5 * 60_000))
      await publish(state(4, 'fresh-4'))
      return await nameSeen() === 'fresh-4'
    }, 10_000, 'the state after the stale one')
    assert.match(cluster.agents[0]!.log(), /stale state message dropped .*type=state ageMs=3\d{5}/)
  })
})
