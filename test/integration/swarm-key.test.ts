import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
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

  it('an agent with an allow-list refuses a peer that holds the swarm key but is not on it', async () => {
    const guarded = await startAgent({ root: cluster.root, index: 6, ip: cluster.ip(6), dockerHost: 'none', swarmKeyFile: cluster.agents[0]!.swarmKeyFile, bootstrap: [cluster.agents[0]!.addr], config: { allowPeers: [cluster.agents[0]!.peerId] } })
    try {
      await until(async () => (await guarded.call('GET', '/v1/peers')).body.peers.some((p: any) => p.peerId === cluster.agents[0]!.peerId && p.status === 'alive'), 10_000, 'the allowed member')
      const node = await createLibp2p({
        privateKey: await generateKeyPair('Ed25519'),
        addresses: { listen: [`/ip4/${cluster.ip(5)}/tcp/0`] },
        transports: [tcp()],
        connectionProtector: preSharedKey({ psk: await readFile(cluster.agents[0]!.swarmKeyFile) }),
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()]
      })
      try {
        await assert.rejects(node.dialProtocol(multiaddr(guarded.addr), '/goto/state/1.0.0', { signal: AbortSignal.timeout(5000) }))
      } finally {
        await node.stop()
      }
      const seen = (await guarded.call('GET', '/v1/peers')).body.peers.map((p: any) => p.peerId)
      assert.ok(!seen.includes(cluster.agents[1]!.peerId), 'a member off the list is in the guarded view')
    } finally {
      await guarded.stop()
    }
  })

  it('swarm-key rotation by rolling restart: a rotated node is cut off from old-key nodes and rejoins the rotated ones', async () => {
    const status = async (viewer: AgentProc, of: AgentProc): Promise<string | undefined> =>
      ((await viewer.call('GET', '/v1/peers')).body.peers as Array<{ peerId: string, status: string }>).find(p => p.peerId === of.peerId)?.status
    const next = new Uint8Array(95)
    generateKey(next)
    await cluster.agents[1]!.stop()
    await writeFile(join(cluster.agents[1]!.dataDir, 'swarm.key'), next, { mode: 0o600 })
    cluster.agents[1] = await cluster.agents[1]!.restart()
    const [a0, a1] = [cluster.agents[0]!, cluster.agents[1]!]
    // the rotated node dials the peers it knows, with its new key: none of the old-key nodes lets it in
    await new Promise(resolve => setTimeout(resolve, 3000))
    assert.notEqual(await status(a0, a1), 'alive', 'an old-key node let the rotated one in')
    assert.notEqual(await status(a1, a0), 'alive', 'the rotated node reached an old-key node')
    assert.equal(a1.proc.exitCode, null, 'the rotated node runs on')
    await a0.stop()
    await writeFile(join(a0.dataDir, 'swarm.key'), next, { mode: 0o600 })
    cluster.agents[0] = await a0.restart()
    // the harness gives every start a new port, so the remembered address is stale: join by the current one
    // (hosts listen on a fixed port, where the remembered peers suffice)
    assert.equal((await cluster.agents[0]!.cli(['join', cluster.agents[1]!.addr])).code, 0)
    await until(async () => await status(cluster.agents[0]!, cluster.agents[1]!) === 'alive' && await status(cluster.agents[1]!, cluster.agents[0]!) === 'alive', 15_000, 'the rotated nodes to find each other again')
  })
})
