/**
 * The mesh view: the newest state of every peer and whether it is alive.
 *
 *   alive ──silence > suspectAfter, or connection lost──▶ suspect
 *   suspect ──nothing heard for goneAfter──▶ gone
 *   suspect | gone ──state, heartbeat or connection──▶ alive
 *   any ──state "leaving"──▶ left        (a graceful leave is never a failure)
 *   left ──state of a newer incarnation──▶ alive (the node came back)
 *   gone | left ──forgetAfter──▶ removed
 *
 * Pure bookkeeping with the time passed in, so it is tested without clocks.
 */
import { TypedEventEmitter } from '@libp2p/interface'
import { isNewer, type Capacity, type Heartbeat, type NodeState, type NodeStatus } from '../../protocols/node-state/index.ts'
import type { GossipTiming } from '../config.ts'

export type PeerStatus = 'alive' | 'suspect' | 'gone' | 'left'

export interface PeerRecord {
  peerId: string
  status: PeerStatus
  /** When the current status began (ms). */
  since: number
  /** When we last heard a state or heartbeat from it (ms, our clock). */
  lastHeard: number
  connected: boolean
  /** Its newest full state. */
  state: NodeState
  /** Its capacity and status from the newest heartbeat or state. */
  capacity: Capacity
  nodeStatus: NodeStatus
}

export interface StatusChange {
  peerId: string
  from: PeerStatus | 'new'
  to: PeerStatus | 'removed'
  record: PeerRecord
}

export interface MeshViewEvents {
  /** A peer's status changed (or it appeared, or was forgotten). */
  'peer:status': CustomEvent<StatusChange>
  /** A peer's full state changed (inventory, addresses, status). */
  'peer:state': CustomEvent<PeerRecord>
}

export interface ApplyResult {
  /** The state was newer than what we held and was taken. */
  accepted: boolean
  /** We did not know this peer before. */
  isNew: boolean
}

export class MeshView extends TypedEventEmitter<MeshViewEvents> {
  readonly #peers = new Map<string, PeerRecord>()
  readonly #timing: GossipTiming

  constructor (timing: GossipTiming) {
    super()
    this.#timing = timing
  }

  get (peerId: string): PeerRecord | undefined {
    return this.#peers.get(peerId)
  }

  peers (): PeerRecord[] {
    return [...this.#peers.values()]
  }

  #setStatus (record: PeerRecord, to: PeerStatus, now: number): void {
    if (record.status === to) return
    const from = record.status
    record.status = to
    record.since = now
    this.safeDispatchEvent('peer:status', { detail: { peerId: record.peerId, from, to, record } })
  }

  applyState (state: NodeState, now: number): ApplyResult {
    const record = this.#peers.get(state.peerId)
    if (record == null) {
      const created: PeerRecord = {
        peerId: state.peerId,
        status: state.state === 'leaving' ? 'left' : 'alive',
        since: now,
        lastHeard: now,
        connected: false,
        state,
        capacity: state.capacity,
        nodeStatus: state.state
      }
      this.#peers.set(state.peerId, created)
      this.safeDispatchEvent('peer:status', { detail: { peerId: state.peerId, from: 'new', to: created.status, record: created } })
      this.safeDispatchEvent('peer:state', { detail: created })
      return { accepted: true, isNew: true }
    }
    if (!isNewer(state, record.state)) {
      // an old or repeated state still says the peer is there, unless it left
      if (record.status !== 'left' && state.incarnation === record.state.incarnation) this.#heard(record, now)
      return { accepted: false, isNew: false }
    }
    record.state = state
    record.capacity = state.capacity
    record.nodeStatus = state.state
    record.lastHeard = now
    this.#setStatus(record, state.state === 'leaving' ? 'left' : 'alive', now)
    this.safeDispatchEvent('peer:state', { detail: record })
    return { accepted: true, isNew: false }
  }

  /**
   * Take a heartbeat. Returns true when the peer has a newer full state than
   * the one we hold (or we hold none), so the caller should fetch it.
   */
  applyHeartbeat (hb: Heartbeat, now: number): boolean {
    const record = this.#peers.get(hb.peerId)
    if (record == null) return true
    if (hb.incarnation < record.state.incarnation) return false
    if (record.status === 'left' && hb.incarnation === record.state.incarnation) return false
    record.capacity = hb.capacity
    record.nodeStatus = hb.state
    this.#heard(record, now)
    return isNewer(hb, record.state)
  }

  #heard (record: PeerRecord, now: number): void {
    record.lastHeard = now
    if (record.status === 'suspect' || record.status === 'gone') this.#setStatus(record, 'alive', now)
  }

  connected (peerId: string, now: number): void {
    const record = this.#peers.get(peerId)
    if (record == null) return
    record.connected = true
    if (record.status !== 'left') this.#heard(record, now)
  }

  disconnected (peerId: string, now: number): void {
    const record = this.#peers.get(peerId)
    if (record == null) return
    record.connected = false
    if (record.status === 'alive') this.#setStatus(record, 'suspect', now)
  }

  /** Advance the failure detector to `now`. */
  tick (now: number): void {
    for (const record of this.#peers.values()) {
      switch (record.status) {
        case 'alive':
          if (now - record.lastHeard > this.#timing.suspectAfterMs) this.#setStatus(record, 'suspect', now)
          break
        case 'suspect':
          if (now - Math.max(record.since, record.lastHeard) > this.#timing.goneAfterMs) this.#setStatus(record, 'gone', now)
          break
        case 'gone':
        case 'left':
          if (now - record.since > this.#timing.forgetAfterMs) {
            this.#peers.delete(record.peerId)
            this.safeDispatchEvent('peer:status', { detail: { peerId: record.peerId, from: record.status, to: 'removed', record } })
          }
          break
      }
    }
  }
}
