/**
 * A framed migration stream: control messages and data slices over one
 * libp2p stream, length-prefixed with caps, with back-pressure on writes.
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { CONTROL_TIMEOUT_MS, DATA_SLICE_BYTES, MAX_DATA_FRAME_BYTES, MAX_UNREAD_BYTES } from './constants.ts'
import { UnexpectedMessageError } from './errors.ts'
import { decodeFrame, encodeControl, encodeData, type Control, type Frame } from './messages.ts'

export interface SessionOptions {
  signal?: AbortSignal
}

export interface Session {
  readonly stream: Stream
  send(message: Control, options?: SessionOptions): Promise<void>
  sendData(bytes: Uint8Array, options?: SessionOptions): Promise<void>
  read(options?: SessionOptions): Promise<Frame>
  /** Read a control message; a data frame here is a protocol error. */
  readControl(options?: SessionOptions): Promise<Control>
  /** Read the reply of type `type`; a `reject` or `error` reply is thrown as RemoteRefusalError. */
  expect<T extends Control['type']>(type: T, options?: SessionOptions): Promise<Extract<Control, { type: T }>>
  close(): Promise<void>
  abort(err: Error): void
  /** Stop taking data from the peer (Yamux stops opening its window) until resume(). */
  pause(): void
  resume(): void
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
  const lp = lpStream(stream, { maxDataLength: MAX_DATA_FRAME_BYTES + 1, maxBufferSize: MAX_UNREAD_BYTES })
  const s: Session = {
    stream,
    async send (message, options = {}) {
      await lp.write(encodeControl(message), { signal: timeout(options.signal) })
    },
    async sendData (bytes, options = {}) {
      for (let at = 0; at < bytes.byteLength; at += DATA_SLICE_BYTES) {
        await lp.write(encodeData(bytes.subarray(at, Math.min(bytes.byteLength, at + DATA_SLICE_BYTES))), { signal: timeout(options.signal) })
      }
    },
    async read (options = {}) {
      return decodeFrame((await lp.read({ signal: timeout(options.signal) })).subarray())
    },
    async readControl (options = {}) {
      const frame = await s.read(options)
      if (frame.kind !== 'control') throw new UnexpectedMessageError('expected a control message, got data')
      return frame.message
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
    abort (err) { stream.abort(err) },
    pause () {
      if (stream.readStatus === 'readable') stream.pause()
    },
    resume () {
      if (stream.readStatus === 'paused') stream.resume()
    }
  }
  return s
}
