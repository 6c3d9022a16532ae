/**
 * The agent's LevelDB store. The layout carries a version under
 * `meta!layout`; a store written by another version is refused at start with
 * a clear error instead of being misread. Each part of the agent keeps its
 * records in a sublevel of its own.
 */
import { Level } from 'level'
import { StoreVersionError } from './errors.ts'

export const LAYOUT_VERSION = 1

export interface KnownPeer {
  peerId: string
  addrs: string[]
  name?: string
  /** When this peer was last heard from (ms since the epoch). */
  lastSeen: number
}

export interface Store {
  readonly db: Level<string, unknown>
  open(): Promise<void>
  close(): Promise<void>
  knownPeers(): Promise<KnownPeer[]>
  rememberPeer(peer: KnownPeer): Promise<void>
  forgetPeer(peerId: string): Promise<void>
}

export function createStore (path: string): Store {
  const db = new Level<string, unknown>(path, { valueEncoding: 'json' })
  const meta = db.sublevel<string, unknown>('meta', { valueEncoding: 'json' })
  const peers = db.sublevel<string, KnownPeer>('peers', { valueEncoding: 'json' })

  return {
    db,
    async open () {
      await db.open()
      const version = await meta.get('layout')
      if (version === undefined) {
        await meta.put('layout', LAYOUT_VERSION)
      } else if (version !== LAYOUT_VERSION) {
        await db.close()
        throw new StoreVersionError(`the store at ${path} has layout version ${String(version)}, this agent reads version ${LAYOUT_VERSION}; upgrade the agent or move the store aside`)
      }
    },
    async close () {
      await db.close()
    },
    async knownPeers () {
      return await peers.values().all()
    },
    async rememberPeer (peer) {
      await peers.put(peer.peerId, peer)
    },
    async forgetPeer (peerId) {
      await peers.del(peerId)
    }
  }
}
