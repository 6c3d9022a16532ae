/**
 * The JSON codec every protocol here shares: a size cap checked before and
 * after, UTF-8 that must be valid, and a strict schema whose first broken
 * field names the error. Each protocol passes its own error class, so its
 * errors keep their own name and code.
 */
import type { z } from 'zod'

type ErrorClass = new (message: string) => Error

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeJson (value: unknown, maxBytes: number, what: string, TooLarge: ErrorClass): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(value))
  if (bytes.byteLength > maxBytes) throw new TooLarge(`${what} of ${bytes.byteLength} bytes exceeds ${maxBytes}`)
  return bytes
}

export function decodeJson<T> (schema: z.ZodType<T>, bytes: Uint8Array, maxBytes: number, what: string, Invalid: ErrorClass, TooLarge: ErrorClass = Invalid): T {
  if (bytes.byteLength > maxBytes) throw new TooLarge(`${what} of ${bytes.byteLength} bytes exceeds ${maxBytes}`)
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(bytes))
  } catch (err: any) {
    throw new Invalid(`${what} is not UTF-8 JSON: ${err.message}`)
  }
  return checkJson(schema, json, what, Invalid)
}

export function checkJson<T> (schema: z.ZodType<T>, json: unknown, what: string, Invalid: ErrorClass): T {
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new Invalid(`${what} breaks the schema at "${issue?.path.join('.') ?? ''}": ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}
