/**
 * @packageDocumentation
 *
 * Replication of the audit log: entries pushed on a gossip topic as they are
 * written, and pulled over `/goto/log-sync/1.0.0` by version vector (origin →
 * highest sequence held) on every connection and periodically, in bounded
 * batches.
 *
 * @example
 * ```ts
 * const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
 * await lp.write(encodeLogMessage({ type: 'want', vector: { [origin]: 41 } }))
 * const batch = decodeLogMessage((await lp.read()).subarray())
 * ```
 */
export * from './constants.ts'
export * from './errors.ts'
export * from './messages.ts'
