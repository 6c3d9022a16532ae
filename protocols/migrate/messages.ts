/**
 * Messages of `/goto/migrate/2.0.0`. Every frame is length-prefixed (capped)
 * and holds one UTF-8 JSON control message checked against these schemas.
 * The snapshot's bytes never cross here: the session carries their recipes
 * (chunk names), and the target pulls the chunks it lacks over
 * `/goto/chunks/1.0.0`.
 *
 * Signed messages (offer, prepare) carry their payload as the exact JSON text
 * that was signed, so the receiver verifies bytes, never a re-serialisation.
 */
import { z } from 'zod'
import { MAX_BLOBS, MAX_CONTROL_BYTES, MAX_MOUNTS, MAX_RECIPE_BATCH } from './constants.ts'
import { InvalidMigrateMessageError } from './errors.ts'
import { checkJson } from '../json-codec.ts'

const id = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7')
const peer = z.string().min(1).max(128)
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const b64 = z.string().max(1024).regex(/^[A-Za-z0-9_-]*$/)
const sha256 = z.string().regex(/^[0-9a-f]{64}$/)

export const REFUSAL_CODES = [
  'NOT_MEMBER', 'BAD_SIGNATURE', 'WRONG_TARGET', 'DRAINING', 'NAME_TAKEN', 'VOLUME_EXISTS', 'PORT_TAKEN',
  'INSUFFICIENT_MEMORY', 'INSUFFICIENT_DISK', 'PRIVILEGED', 'HOST_NAMESPACE', 'CAPABILITY', 'DEVICE',
  'HOST_PATH', 'UNCONFINED', 'BAD_TOKEN', 'TOKEN_USED', 'TOKEN_EXPIRED', 'UNKNOWN_MIGRATION', 'BAD_CHUNK',
  'BAD_STATE', 'BAD_ARCHIVE', 'NO_RUNTIME', 'RATE_LIMITED', 'TARGET_BUSY', 'OVERLOADED', 'PAUSED', 'INTERNAL'
] as const
export const RefusalCode = z.enum(REFUSAL_CODES)
export type RefusalCode = z.infer<typeof RefusalCode>

export const MountSchema = z.strictObject({
  type: z.enum(['volume', 'bind', 'tmpfs']),
  source: z.string().max(4096),
  destination: z.string().min(1).max(4096).startsWith('/'),
  readOnly: z.boolean(),
  anonymous: z.boolean()
})

export const SpecSchema = z.strictObject({
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'a Docker container name'),
  image: z.string().max(512),
  config: z.record(z.string(), z.unknown()),
  hostConfig: z.record(z.string(), z.unknown()),
  mounts: z.array(MountSchema).max(MAX_MOUNTS)
})

export const OfferPayloadSchema = z.strictObject({
  id,
  source: peer,
  target: peer,
  time: count,
  spec: SpecSchema,
  /** Bytes the target needs on disk: the root filesystem plus the volumes. */
  diskBytes: count,
  /** Memory the container asks for (its limit or reservation), 0 when unbounded. */
  memoryBytes: count,
  consistency: z.enum(['freeze', 'stop']),
  dryRun: z.boolean(),
  /** Who wants the move: a person (`manual`), the mesh evening its load, or a node draining. @default 'manual' */
  purpose: z.enum(['manual', 'rebalance', 'drain']).optional()
})

/**
 * `image` or `volume:<mount destination>`, each maybe prefixed `pre:` (the
 * pre-copy round) or `delta:` (only what changed since the pre-copy).
 */
const blobName = z.string().min(1).max(4200).regex(/^(pre:|delta:)?(image|volume:\/.*)$/, 'image or volume:/<path>, maybe prefixed pre: or delta:')

export const BlobSchema = z.strictObject({
  name: blobName,
  bytes: count,
  sha256,
  /** Chunks in its recipe, and the recipe's digest (see recipeDigest). */
  chunks: count,
  recipe: sha256
})

export const ManifestSchema = z.strictObject({
  id,
  source: peer,
  target: peer,
  blobs: z.array(BlobSchema).max(MAX_BLOBS)
})

export const ControlSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('offer'), payload: z.string().max(MAX_CONTROL_BYTES), signature: b64 }),
  z.strictObject({ type: z.literal('accept'), id, token: b64, expiresAt: count }),
  z.strictObject({ type: z.literal('reject'), id, code: RefusalCode, reason: z.string().max(1024) }),
  z.strictObject({ type: z.literal('transfer'), id, token: b64 }),
  z.strictObject({ type: z.literal('blob'), id, name: blobName }),
  z.strictObject({ type: z.literal('recipe'), id, name: blobName, chunks: z.array(z.tuple([sha256, z.number().int().min(1).max(16 * 1024 * 1024)])).min(1).max(MAX_RECIPE_BATCH) }),
  z.strictObject({ type: z.literal('blob-end'), id, name: blobName, bytes: count, sha256 }),
  z.strictObject({ type: z.literal('sync'), id }),
  z.strictObject({ type: z.literal('ok'), id, step: z.string().max(4200) }),
  z.strictObject({ type: z.literal('prepare'), payload: z.string().max(MAX_CONTROL_BYTES), signature: b64 }),
  z.strictObject({ type: z.literal('prepared'), id }),
  z.strictObject({ type: z.literal('commit'), id }),
  z.strictObject({ type: z.literal('activated'), id, at: count, health: z.string().max(32).optional() }),
  z.strictObject({ type: z.literal('abort'), id, reason: z.string().max(1024) }),
  z.strictObject({ type: z.literal('query'), id }),
  z.strictObject({ type: z.literal('outcome'), id, phase: z.string().max(32) }),
  z.strictObject({ type: z.literal('rollback'), id }),
  z.strictObject({ type: z.literal('error'), id: z.string().max(64), code: RefusalCode, reason: z.string().max(1024) })
])

export type Control = z.infer<typeof ControlSchema>
export type OfferPayload = z.infer<typeof OfferPayloadSchema>
export type Manifest = z.infer<typeof ManifestSchema>
export type Spec = z.infer<typeof SpecSchema>

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeControl (message: Control): Uint8Array {
  const json = encoder.encode(JSON.stringify(message))
  if (json.byteLength > MAX_CONTROL_BYTES) throw new InvalidMigrateMessageError(`control message of ${json.byteLength} bytes exceeds ${MAX_CONTROL_BYTES}`)
  return json
}

function parse<T> (schema: z.ZodType<T>, json: unknown, what: string): T {
  return checkJson(schema, json, what, InvalidMigrateMessageError)
}

function parseJson (bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes))
  } catch (err: any) {
    throw new InvalidMigrateMessageError(`${what} is not UTF-8 JSON: ${err.message}`)
  }
}

export function decodeControl (frame: Uint8Array): Control {
  if (frame.byteLength === 0) throw new InvalidMigrateMessageError('empty frame')
  if (frame.byteLength > MAX_CONTROL_BYTES) throw new InvalidMigrateMessageError(`control message of ${frame.byteLength} bytes exceeds ${MAX_CONTROL_BYTES}`)
  return parse(ControlSchema, parseJson(frame, 'control message'), 'control message')
}

export function parseOfferPayload (payload: string): OfferPayload {
  return parse(OfferPayloadSchema, parseJson(encoder.encode(payload), 'offer'), 'offer')
}

export function parseManifest (payload: string): Manifest {
  return parse(ManifestSchema, parseJson(encoder.encode(payload), 'manifest'), 'manifest')
}
