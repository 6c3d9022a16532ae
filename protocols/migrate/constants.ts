/** The migration session: offer, admission, transfer, two-phase commit, queries. */
export const MIGRATE_PROTOCOL = '/goto/migrate/2.0.0'

/** Largest control message: an offer with a container's whole config fits in far less. */
export const MAX_CONTROL_BYTES = 1024 * 1024

/** Chunk names in one `recipe` message (about 70 KB of JSON). */
export const MAX_RECIPE_BATCH = 1024

/** Bytes a migration stream may hold unread: a few control messages. */
export const MAX_UNREAD_BYTES = 4 * 1024 * 1024

/** Most blobs in one migration: the image plus one per mount, twice with a pre-copy round. */
export const MAX_BLOBS = 256

/** Most mounts in one spec. */
export const MAX_MOUNTS = 100

/** Time the token of an admitted migration stays good before the transfer starts. */
export const TOKEN_TTL_MS = 5 * 60_000

/** Time allowed for one control round trip that does no bulk work. */
export const CONTROL_TIMEOUT_MS = 30_000

/** Time allowed for a target to start the container and see it run (and be healthy). */
export const ACTIVATE_TIMEOUT_MS = 120_000

/** Inbound migration streams per connection (sessions, queries, resends). */
export const MAX_INBOUND_STREAMS = 16

/**
 * Offers one peer may make: a burst of 20, then one a second. Each offer costs
 * the target a signature check, engine calls and an audit entry written with
 * sync; a member migrates a few containers at a time, never dozens a second.
 */
export const OFFER_BURST = 20
export const OFFER_RATE = 1
