/**
 * Messages of the log replication: an entry travels as the exact JSON text
 * its origin signed plus the signature, so any holder can pass it on and any
 * receiver can check it.
 *
 *   gossip (topic /goto/<mesh>/log/1):  { type: 'entries', entries }
 *   /goto/log-sync/1.0.0:  → { type: 'want', vector }   ← { type: 'entries', entries, more }
 *                          → (while more) the next want, with the vector grown by what was stored…
 */
import { z } from 'zod'
import { MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES, MAX_FRAME_BYTES, MAX_ORIGINS } from './constants.ts'
import { InvalidLogMessageError } from './errors.ts'
import { decodeJson, encodeJson } from '../json-codec.ts'

export const SignedEntrySchema = z.strictObject({
  text: z.string().max(MAX_ENTRY_BYTES),
  signature: z.string().max(256).regex(/^[A-Za-z0-9_-]*$/)
})

export const LogMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('want'),
    /** origin → highest sequence held */
    vector: z.record(z.string().max(128), z.number().int().min(0)).refine(v => Object.keys(v).length <= MAX_ORIGINS, `at most ${MAX_ORIGINS} origins`)
  }),
  z.strictObject({
    type: z.literal('entries'),
    entries: z.array(SignedEntrySchema).max(MAX_BATCH_ENTRIES),
    /** More batches follow on this stream. */
    more: z.boolean().optional()
  })
])

export type SignedEntry = z.infer<typeof SignedEntrySchema>
export type LogMessage = z.infer<typeof LogMessageSchema>

export function encodeLogMessage (message: LogMessage): Uint8Array {
  return encodeJson(message, MAX_FRAME_BYTES, 'log message', InvalidLogMessageError)
}

export function decodeLogMessage (bytes: Uint8Array): LogMessage {
  return decodeJson(LogMessageSchema, bytes, MAX_FRAME_BYTES, 'log message', InvalidLogMessageError)
}
