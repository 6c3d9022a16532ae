import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { preSharedKey, generateKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { startCluster, until, type Cluster } from '../harness/cluster.ts'
import { startAgent, type AgentProc } from '../harness/agent.ts'

async function peerIdsSeenBy (cluster: Cluster): Promise<string[]> {
  const lists = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as Array<{ peerId: string }>))
  return lists.flat().map(p => p.peerId)
}

describe('the swarm key keeps strangers out', { timeout: 120_000 }, () => {
  let cluster: Cluster
  let stranger: AgentProc | undefined

  before(async () => {
    cluster = await startCluster({ hosts: 2, engines: false, label: 'pnet' })
    await until(async () => (await peerIdsSeenBy(cluster)).length === 2, 10_000, 'the two members to see each other')
  })
  after(async () => {
    await stranger?.stop()
    await cluster?.stop()
  })

  /** A bare libp2p node that dials a member: without a protector, or with a swarm key of its own. */
  async function strangerDials (ip: string, psk?: Uint8Array): Promise<void> {
    const node = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: [`/ip4/${ip}/tcp/0`] },
      transports: [tcp()],
      connectionProtector: psk != null ? preSharedKey({ psk }) : undefined,
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    try {
      await assert.rejects(node.dial(multiaddr(cluster.agents[0]!.addr), { signal: AbortSignal.timeout(5000) }))
      assert.equal(node.getConnections().length, 0)
    } finally {
      await node.stop()
    }
  }

  it('a node without any swarm key fails the handshake', async () => {
    await strangerDials(cluster.ip(9))
  })

  it('a node with another swarm key fails the handshake', async () => {
    const psk = new Uint8Array(95)
    generateKey(psk)
    await strangerDials(cluster.ip(8), psk)
  })

  it('an agent of another mesh that bootstraps to a member never appears in any view', async () => {
    // no swarm key given: init makes a new mesh, whose key the members do not hold
    stranger = await startAgent({ root: cluster.root, index: 7, ip: cluster.ip(7), dockerHost: 'none', bootstrap: [cluster.agents[0]!.addr, cluster.agents[1]!.addr] })
    const join = await stranger.cli(['join', cluster.agents[1]!.addr])
    assert.equal(join.code, 1)
    assert.match(join.stderr, /GOTO_ERR_DIAL/)
    await new Promise(resolve => setTimeout(resolve, 3000))
    const seen = await peerIdsSeenBy(cluster)
    assert.ok(!seen.includes(stranger.peerId), 'the stranger is in a member\'s view')
    assert.equal(seen.length, 2)
    const { body } = await stranger.call('GET', '/v1/peers')
    assert.deepEqual(body.peers, [])
  })
})
