/**
 * A mesh member that is not an agent: a bare libp2p node with the mesh's
 * swarm key, which joins a node's view through the state exchange and then
 * speaks any protocol by hand — to send what a real agent never would
 * (forged signatures, wrong or replayed tokens, oversized frames).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { preSharedKey } from '@libp2p/pnet'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { exchangeState, STATE_PROTOCOL } from '../../protocols/node-state/index.ts'
import type { AgentProc } from './agent.ts'

export interface RawPeer {
  node: Libp2p
  peerId: string
  privateKey: PrivateKey
  /** Dial the agent and swap states, so the agent's view holds this peer. */
  introduce(agent: AgentProc): Promise<void>
  open(agent: AgentProc, protocol: string): Promise<Stream>
  stop(): Promise<void>
}

export async function startRawPeer (swarmKeyOf: AgentProc, ip: string): Promise<RawPeer> {
  const privateKey = await generateKeyPair('Ed25519')
  const psk = await readFile(join(swarmKeyOf.dataDir, 'swarm.key'))
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [`/ip4/${ip}/tcp/0`] },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  const peerId = node.peerId.toString()
  const capacity = { cpus: 1, load1: 0, memTotal: 1e9, memFree: 1e9, diskTotal: 1e10, diskFree: 1e10 }
  return {
    node,
    peerId,
    privateKey,
    async introduce (agent) {
      const stream = await node.dialProtocol(multiaddr(agent.addr), STATE_PROTOCOL)
      await exchangeState(stream, agent.peerId, {
        state: { v: 1, type: 'state', peerId, incarnation: Date.now(), seq: 1, time: Date.now(), name: 'raw-peer', addrs: node.getMultiaddrs().map(String), state: 'active', capacity, runtime: 'none', containers: [] },
        peers: []
      })
    },
    async open (agent, protocol) {
      return await node.dialProtocol(peerIdFromString(agent.peerId), protocol)
    },
    async stop () { await node.stop() }
  }
}
