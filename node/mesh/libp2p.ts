/**
 * The libp2p node of an agent: TCP, the swarm key (pnet) before anything else,
 * Noise, Yamux, identify, ping and gossipsub. A peer without the mesh's swarm
 * key fails the pnet handshake and never reaches Noise, so it cannot even
 * learn our peer id. An optional allow-list of peer ids is enforced by the
 * connection gater.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'
import { MAX_MESSAGE_BYTES } from '../../protocols/node-state/index.ts'

export type MeshServices = { pubsub: GossipSub, identify: Identify, ping: Ping }
export type MeshNode = Libp2p<MeshServices>

export interface MeshNodeInit {
  privateKey: PrivateKey
  swarmKey: Uint8Array
  listen: string[]
  announce?: string[]
  /** Peer ids allowed to connect; empty allows every holder of the swarm key. */
  allowPeers?: string[]
  /** Gossip topics this node accepts. */
  topics: string[]
}

export function allowListGater (allow: string[]): ConnectionGater {
  if (allow.length === 0) return {}
  const allowed = new Set(allow)
  return {
    denyDialPeer: (peerId) => !allowed.has(peerId.toString()),
    denyInboundEncryptedConnection: (peerId) => !allowed.has(peerId.toString()),
    denyOutboundEncryptedConnection: (peerId) => !allowed.has(peerId.toString())
  }
}

export async function createMeshNode (init: MeshNodeInit): Promise<MeshNode> {
  return await createLibp2p({
    privateKey: init.privateKey,
    start: false,
    addresses: {
      listen: init.listen,
      announce: init.announce != null && init.announce.length > 0 ? init.announce : undefined
    },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk: init.swarmKey }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: allowListGater(init.allowPeers ?? []),
    connectionManager: {
      // agents of a mesh dial each other directly; a restart storm must not be throttled
      inboundConnectionThreshold: 50,
      // a mesh restarting or many nodes joining at once all dial the same few peers
      maxIncomingPendingConnections: 64,
      dialTimeout: 5000
    },
    connectionMonitor: {
      // the monitor closes connections that stop answering pings, which turns a
      // hung or cut-off host into a lost connection the mesh view acts on
      pingInterval: 10_000
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        allowedTopics: init.topics,
        maxInboundDataLength: MAX_MESSAGE_BYTES,
        // our peers all hold the swarm key and share few IPs in tests; scoring
        // by IP colocation would only punish the harness
        scoreParams: { IPColocationFactorWeight: 0 }
      })
    }
  })
}
