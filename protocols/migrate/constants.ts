/** The migration session: offer, admission, transfer, two-phase commit, queries. */
export const MIGRATE_PROTOCOL = '/goto/migrate/1.0.0'

/** Frame tags: a control message (JSON) or a slice of the current blob. */
export const FRAME_CONTROL = 0
export const FRAME_DATA = 1

/** Largest control message: an offer with a container's whole config fits in far less. */
export const MAX_CONTROL_BYTES = 1024 * 1024

/** Largest data frame; senders cut blobs into slices of DATA_SLICE_BYTES. */
export const MAX_DATA_FRAME_BYTES = 1024 * 1024
export const DATA_SLICE_BYTES = 256 * 1024

/**
 * Bytes a migration stream may hold unread. A receiver pauses the stream while
 * its sink (the engine) catches up, and Yamux may still deliver up to its
 * largest window (16 MiB) after the pause; this leaves room for that, so
 * back-pressure never turns into a buffer overflow, while still bounding memory.
 */
export const MAX_UNREAD_BYTES = 48 * 1024 * 1024

/** Most blobs in one snapshot: the image plus one per mount, and Docker caps mounts well below this. */
export const MAX_BLOBS = 128

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
