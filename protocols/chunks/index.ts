/**
 * @packageDocumentation
 *
 * `/goto/chunks/1.0.0`: a migration's target pulls the chunks it lacks from
 * the source. The target opens several of these streams at once, each a loop
 * of one request and its answers:
 *
 *   target                                   source
 *   request {id, hashes[≤ MAX_HASHES]} ────▶ each hash must belong to migration `id`,
 *                                            and `id` must be moving to this peer
 *                               ◀────────── one chunk frame per hash, in order
 *
 * A chunk frame is `tag (1 byte) | sha-256 (32 bytes) | body`: tag RAW with
 * the chunk's bytes, ZSTD with them compressed (only when that saved at
 * least a tenth), or ABSENT with an empty body when the source cannot serve
 * it. Every frame is length-prefixed and capped; the target checks each
 * chunk's hash before it stores it, and asks again for one that fails.
 */
import { z } from 'zod'
import { decodeJson, encodeJson } from '../json-codec.ts'

export const CHUNKS_PROTOCOL = '/goto/chunks/1.0.0'

/** Hashes in one request. */
export const MAX_HASHES = 32
/** The largest chunk (the chunker's maximum). */
export const MAX_CHUNK_BYTES = 256 * 1024
/** A frame: tag, hash, and a body no larger than a chunk (a compressed body that grew is sent raw). */
export const MAX_FRAME_BYTES = 1 + 32 + MAX_CHUNK_BYTES
export const MAX_REQUEST_BYTES = 4096

export const TAG_RAW = 0
export const TAG_ZSTD = 1
export const TAG_ABSENT = 2

export class InvalidChunkMessageError extends Error {
  override name = 'InvalidChunkMessageError'
  code = 'GOTO_ERR_INVALID_CHUNK_MESSAGE'
}

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex')

export const RequestSchema = z.strictObject({
  id: z.string().min(1).max(64),
  hashes: z.array(hash).min(1).max(MAX_HASHES)
})
export type ChunkRequest = z.infer<typeof RequestSchema>

export function encodeRequest (request: ChunkRequest): Uint8Array {
  return encodeJson(request, MAX_REQUEST_BYTES, 'chunk request', InvalidChunkMessageError)
}

export function decodeRequest (bytes: Uint8Array): ChunkRequest {
  return decodeJson(RequestSchema, bytes, MAX_REQUEST_BYTES, 'chunk request', InvalidChunkMessageError)
}

export interface ChunkFrame {
  tag: typeof TAG_RAW | typeof TAG_ZSTD | typeof TAG_ABSENT
  hash: string
  body: Uint8Array
}

export function encodeFrame (frame: ChunkFrame): Uint8Array {
  if (frame.body.byteLength > MAX_CHUNK_BYTES) throw new InvalidChunkMessageError(`chunk body of ${frame.body.byteLength} bytes exceeds ${MAX_CHUNK_BYTES}`)
  const out = new Uint8Array(33 + frame.body.byteLength)
  out[0] = frame.tag
  out.set(Buffer.from(frame.hash, 'hex'), 1)
  out.set(frame.body, 33)
  return out
}

export function decodeFrame (bytes: Uint8Array): ChunkFrame {
  if (bytes.byteLength < 33) throw new InvalidChunkMessageError(`chunk frame of ${bytes.byteLength} bytes is shorter than its header`)
  if (bytes.byteLength > MAX_FRAME_BYTES) throw new InvalidChunkMessageError(`chunk frame of ${bytes.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`)
  const tag = bytes[0]
  if (tag !== TAG_RAW && tag !== TAG_ZSTD && tag !== TAG_ABSENT) throw new InvalidChunkMessageError(`unknown chunk frame tag ${String(tag)}`)
  const body = bytes.subarray(33)
  if (tag === TAG_ABSENT && body.byteLength !== 0) throw new InvalidChunkMessageError('an absent chunk carries a body')
  return { tag, hash: Buffer.from(bytes.subarray(1, 33)).toString('hex'), body }
}
