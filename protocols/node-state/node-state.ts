/**
 * NodeState and Heartbeat: what every agent tells the mesh about itself.
 *
 * A full NodeState (inventory included) is sent on any change and on every
 * new connection; between changes a node sends only a small Heartbeat that
 * carries its capacity and the `seq` of its newest full state, so a peer that
 * missed a change sees it is behind and fetches the full state directly.
 *
 * Messages are JSON, capped at MAX_MESSAGE_BYTES and checked against a strict
 * schema; an unknown wire version or field value is an error, not a guess.
 * Authenticity comes from the carrier: gossipsub signs every message with the
 * origin's Ed25519 key (StrictSign), and a direct stream runs inside a Noise
 * session with the peer; either way the receiver checks that `peerId` is the
 * authenticated origin.
 */
import { z } from 'zod'
import {
  MAX_ADDRS, MAX_ADDR_LENGTH, MAX_CONTAINERS, MAX_PEER_HINTS, MAX_LABELS, MAX_LABEL_LENGTH,
  MAX_GOSSIP_AGE_MS, MAX_MESSAGE_BYTES, MAX_VOLUMES, WIRE_VERSION
} from './constants.ts'
import { InvalidStateMessageError, StateMessageTooLargeError } from './errors.ts'
import { decodeJson, encodeJson } from '../json-codec.ts'

const count = z.number().finite().min(0)

export const CapacitySchema = z.strictObject({
  cpus: count,
  load1: count,
  memTotal: count,
  memFree: count,
  diskTotal: count,
  diskFree: count,
  /** Memory this node offers to containers' reservations (config `rebalance.capacity.memoryBytes`, else memTotal). */
  memAlloc: count.optional(),
  /** The most containers it runs. */
  maxContainers: count.optional(),
  /** Memory reserved by migrations admitted towards it and not yet finished. */
  memInFlight: count.optional(),
  /** Migrations in flight towards it, and from it. */
  incoming: count.optional(),
  outgoing: count.optional(),
  /** When it last sent or took a rebalance move (ms since the epoch, its clock); it takes none for a node cooldown after. */
  lastMoveAt: count.optional(),
  /** Its running containers its own rules let move now (movable, out of their cooldown). */
  sheddable: count.optional()
})

export const ContainerSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{12,64}$/),
  name: z.string().min(1).max(256),
  image: z.string().max(512),
  state: z.enum(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']),
  created: count,
  sizeRw: count,
  sizeRootFs: count,
  labels: z.record(z.string().max(MAX_LABEL_LENGTH), z.string().max(MAX_LABEL_LENGTH))
    .refine(l => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`),
  volumes: z.array(z.string().max(256)).max(MAX_VOLUMES),
  movable: z.boolean(),
  /** Memory it reserves (its reservation, else its limit), bytes; 0 when unbounded. */
  mem: count.optional(),
  /** CPUs it is limited to; 0 when unbounded. */
  cpu: count.optional()
})

export const NodeStatusSchema = z.enum(['active', 'draining', 'leaving'])

export const NodeStateSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  type: z.literal('state'),
  peerId: z.string().min(1).max(128),
  /** Start time of this run of the agent; orders states across restarts. */
  incarnation: count,
  /** Increases with every full state within one incarnation. */
  seq: count,
  /** Sender's clock when sent (ms); informative only, never used for order. */
  time: count,
  name: z.string().min(1).max(253),
  addrs: z.array(z.string().max(MAX_ADDR_LENGTH)).max(MAX_ADDRS),
  state: NodeStatusSchema,
  capacity: CapacitySchema,
  runtime: z.string().max(256),
  containers: z.array(ContainerSchema).max(MAX_CONTAINERS)
})

export const HeartbeatSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  type: z.literal('hb'),
  peerId: z.string().min(1).max(128),
  incarnation: count,
  /** The seq of the sender's newest full state. */
  seq: count,
  time: count,
  state: NodeStatusSchema,
  capacity: CapacitySchema
})

export const StateMessageSchema = z.discriminatedUnion('type', [NodeStateSchema, HeartbeatSchema])

/** A member's addresses as another peer knows them: only a hint, since a dial to `/p2p/<peerId>` proves who answers. */
export const PeerHintSchema = z.strictObject({
  peerId: z.string().min(1).max(128),
  addrs: z.array(z.string().max(MAX_ADDR_LENGTH)).max(MAX_ADDRS)
})

/** What each side sends on `/goto/state/1.0.0`: its own full state, and the live members it knows. */
export const ExchangeSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  type: z.literal('exchange'),
  state: NodeStateSchema,
  peers: z.array(PeerHintSchema).max(MAX_PEER_HINTS)
})

export type Capacity = z.infer<typeof CapacitySchema>
export type ContainerEntry = z.infer<typeof ContainerSchema>
export type NodeStatus = z.infer<typeof NodeStatusSchema>
export type NodeState = z.infer<typeof NodeStateSchema>
export type Heartbeat = z.infer<typeof HeartbeatSchema>
export type StateMessage = z.infer<typeof StateMessageSchema>
export type PeerHint = z.infer<typeof PeerHintSchema>
export type Exchange = z.infer<typeof ExchangeSchema>

export function encodeStateMessage (message: StateMessage): Uint8Array {
  return encodeJson(message, MAX_MESSAGE_BYTES, 'state message', StateMessageTooLargeError)
}

export function decodeStateMessage (bytes: Uint8Array): StateMessage {
  return decodeJson(StateMessageSchema, bytes, MAX_MESSAGE_BYTES, 'state message', InvalidStateMessageError, StateMessageTooLargeError)
}

export function encodeExchange (message: Exchange): Uint8Array {
  return encodeJson(message, MAX_MESSAGE_BYTES, 'exchange', StateMessageTooLargeError)
}

export function decodeExchange (bytes: Uint8Array): Exchange {
  return decodeJson(ExchangeSchema, bytes, MAX_MESSAGE_BYTES, 'exchange', InvalidStateMessageError, StateMessageTooLargeError)
}

/** True when `a` is newer than `b`: a later incarnation, or a higher seq in the same one. */
export function isNewer (a: { incarnation: number, seq: number }, b: { incarnation: number, seq: number }): boolean {
  return a.incarnation > b.incarnation || (a.incarnation === b.incarnation && a.seq > b.seq)
}

/** True when a gossiped message's time is within MAX_GOSSIP_AGE_MS of `now`, either way. */
export function isFresh (message: { time: number }, now: number): boolean {
  return Math.abs(now - message.time) <= MAX_GOSSIP_AGE_MS
}
