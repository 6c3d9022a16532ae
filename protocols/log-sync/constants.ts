/** Pull what a peer has beyond our version vector. */
export const LOG_SYNC_PROTOCOL = '/goto/log-sync/1.0.0'

/** Entries per batch on the sync stream and per gossip message. */
export const MAX_BATCH_ENTRIES = 1000

/** Largest frame: a batch of entries; an entry is a few hundred bytes, its details bounded below. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024

/** Largest entry text: details of an audit entry are a handful of fields. */
export const MAX_ENTRY_BYTES = 16 * 1024

/** Most origins in one version vector: the largest mesh we plan for, with room for departed nodes. */
export const MAX_ORIGINS = 4096

/** Time allowed for one sync exchange. */
export const SYNC_TIMEOUT_MS = 60_000
