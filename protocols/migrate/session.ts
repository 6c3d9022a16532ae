/**
 * A framed migration stream: control messages over one libp2p stream,
 * length-prefixed with caps, with back-pressure on writes.
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { CONTROL_TIMEOUT_MS, MAX_CONTROL_BYTES, MAX_UNREAD_BYTES } from './constants.ts'
import { UnexpectedMessageError } from './errors.ts'
import { decodeControl, encodeControl, type Control } from './messages.ts'

export interface SessionOptions {
  signal?: AbortSignal
}

export interface Session {
  readonly stream: Stream
  send(message: Control, options?: SessionOptions): Promise<void>
  readControl(options?: SessionOptions): Promise<Control>
  /** Read the reply of type `type`; a `reject` or `error` reply is thrown as RemoteRefusalError. */
  expect<T extends Control['type']>(type: T, options?: SessionOptions): Promise<Extract<Control, { type: T }>>
  close(): Promise<void>
  abort(err: Error): void
}

/** The other side refused or failed a step, with its reason code. */
export class RemoteRefusalError extends Error {
  override name = 'RemoteRefusalError'
  code: string
  readonly refusal: string
  constructor (refusal: string, reason: string) {
    super(reason)
    this.refusal = refusal
    this.code = `GOTO_ERR_${refusal}`
  }
}

function timeout (signal: AbortSignal | undefined, ms = CONTROL_TIMEOUT_MS): AbortSignal {
  const t = AbortSignal.timeout(ms)
  return signal != null ? AbortSignal.any([signal, t]) : t
}

export function session (stream: Stream): Session {
  stream.maxReadBufferLength = MAX_UNREAD_BYTES
  const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_BYTES, maxBufferSize: MAX_UNREAD_BYTES })
  const s: Session = {
    stream,
    async send (message, options = {}) {
      await lp.write(encodeControl(message), { signal: timeout(options.signal) })
    },
    async readControl (options = {}) {
      return decodeControl((await lp.read({ signal: timeout(options.signal) })).subarray())
    },
    async expect (type, options = {}) {
      const message = await s.readControl(options)
      if (message.type === type) return message as any
      if (message.type === 'reject' || message.type === 'error') throw new RemoteRefusalError(message.code, message.reason)
      throw new UnexpectedMessageError(`expected "${type}", got "${message.type}"`)
    },
    async close () {
      await stream.close({ signal: AbortSignal.timeout(5000) }).catch(() => { stream.abort(new Error('close timed out')) })
    },
    abort (err) { stream.abort(err) }
  }
  return s
}
