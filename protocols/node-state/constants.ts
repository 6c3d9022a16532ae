/** The gossip topic of a mesh is `${TOPIC_PREFIX}/<mesh id>/state/1`. */
export const TOPIC_PREFIX = '/goto'

/** Stream protocol for the direct exchange of full states on connect and on leave. */
export const STATE_PROTOCOL = '/goto/state/1.0.0'

/** Wire format version carried in every message; anything else is refused. */
export const WIRE_VERSION = 1

/**
 * Largest encoded message: a full state with a full inventory. 4,096 containers
 * of about 200 bytes each fit well within 1 MiB; more than that is not a host
 * we can reason about, and a peer sending more is refused.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024

/** Most containers one state may list (see MAX_MESSAGE_BYTES). */
export const MAX_CONTAINERS = 4096

/** Most addresses one node may announce: interfaces × transports, with room. */
export const MAX_ADDRS = 32

/** Longest multiaddr text we accept. */
export const MAX_ADDR_LENGTH = 256

/** Most member hints in one exchange: the largest mesh we plan for, with room. */
export const MAX_PEER_HINTS = 1024

/** Most labels kept per container; more are cut, not refused (Docker has no limit). */
export const MAX_LABELS = 64

/** Longest label key or value kept. */
export const MAX_LABEL_LENGTH = 512

/** Most volumes listed per container. */
export const MAX_VOLUMES = 64

/** Time allowed for one state exchange stream. */
export const EXCHANGE_TIMEOUT_MS = 5000

/** Concurrent inbound exchange streams per connection. */
export const MAX_INBOUND_STREAMS = 4

/**
 * How far a gossiped message's own time may be from the receiver's clock.
 * Gossipsub forgets the ids of messages it has seen after two minutes, so a
 * message replayed later would pass as new; one older than this is refused
 * instead. A minute leaves room for clocks that NTP keeps within a second.
 */
export const MAX_GOSSIP_AGE_MS = 60_000
