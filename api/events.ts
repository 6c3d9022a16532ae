/**
 * Server-Sent Events with back-pressure: events are queued by key, and a
 * newer event replaces a pending one of the same key (a migration's newest
 * record, a peer's newest state), so a slow reader holds at most one pending
 * event per migration or peer, never an unbounded backlog. A comment line
 * every `keepAliveMs` keeps idle connections open through proxies.
 *
 * @example
 * ```ts
 * return eventStream(c, (send, end) => {
 *   const onUpdate = (evt) => { send(evt.detail.id, 'migration', evt.detail) }
 *   emitter.addEventListener('update', onUpdate)
 *   return () => { emitter.removeEventListener('update', onUpdate) }
 * })
 * ```
 */
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'

/** Queue an event; one pending event per key, the newest. */
export type Send = (key: string, event: string, data: unknown) => void

/**
 * Called once when the stream opens: subscribe, call `send` for each event
 * and `end` once nothing more will come; return the unsubscribe.
 */
export type Subscribe = (send: Send, end: () => void) => () => void

export interface EventStreamOptions {
  /** @default 15000 */
  keepAliveMs?: number
}

const KEEP_ALIVE_MS = 15_000

export function eventStream (c: Context, subscribe: Subscribe, options: EventStreamOptions = {}): Response {
  const keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS
  return streamSSE(c, async (stream) => {
    const pending = new Map<string, { event: string, data: unknown }>()
    let ended = false
    let wake: (() => void) | undefined
    const send: Send = (key, event, data) => {
      pending.delete(key)
      pending.set(key, { event, data })
      wake?.()
    }
    const unsubscribe = subscribe(send, () => {
      ended = true
      wake?.()
    })
    stream.onAbort(() => { wake?.() })
    try {
      while (!stream.aborted) {
        for (const [key, message] of pending) {
          pending.delete(key)
          await stream.writeSSE({ event: message.event, data: JSON.stringify(message.data) })
        }
        if (ended || stream.aborted) break
        let timer: NodeJS.Timeout | undefined
        const woken = await new Promise<boolean>(resolve => {
          wake = () => { resolve(true) }
          timer = setTimeout(() => { resolve(false) }, keepAliveMs)
        })
        clearTimeout(timer)
        wake = undefined
        if (!woken) await stream.write(': keep-alive\n\n')
      }
    } finally {
      unsubscribe()
    }
  })
}
