/**
 * Replication of the audit log: every entry this node writes is pushed on the
 * mesh's log topic at once; on every new connection, and every few seconds
 * with one peer, a node sends its version vector over `/goto/log-sync/1.0.0`
 * and takes whatever that peer holds beyond it, one bounded batch per request. Every
 * entry is checked (signature, chain) on receipt; refused ones are counted and
 * recorded as security events. The vector a peer sends when it pulls from this
 * node is kept (`advertised()`): what that peer held then, so the metrics can
 * tell how far this node's copy lags behind it (`lagBehind`).
 */
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, Stream, Connection } from '@libp2p/interface'
import type { GossipsubMessage } from '@libp2p/gossipsub'
import {
  LOG_SYNC_PROTOCOL, MAX_BATCH_ENTRIES, MAX_FRAME_BYTES, SYNC_TIMEOUT_MS, decodeLogMessage, encodeLogMessage
} from '../../protocols/log-sync/index.ts'
import { errorMessage, type Logger } from '../logger.ts'
import type { AuditLog } from './log.ts'
import type { MeshNode } from '../mesh/libp2p.ts'

export interface ReplicationInit {
  topic: string
  /** Interval of the anti-entropy pull with one random peer. @default 5000 */
  syncMs?: number
}

export interface ReplicationComponents {
  libp2p: MeshNode
  log: AuditLog
  logger: Logger
}

/** The version vector a peer sent in its last pull from this node, and when. */
export interface AdvertisedVector {
  peer: string
  vector: Record<string, number>
  /** Unix time (ms) it arrived. */
  at: number
}

export interface Replication {
  start(): Promise<void>
  stop(): Promise<void>
  /** Pull what `peer` has beyond our vector; resolves to the number of entries taken. */
  pull(peer: string): Promise<number>
  /** The newest vector of each peer that pulled from this node in the last `VECTOR_TTL_MS`. */
  advertised(): AdvertisedVector[]
}

/**
 * How long a peer's vector counts: a peer pulls from one random peer every
 * `syncMs` (5 s), so a live one shows up again well within this; a peer gone
 * for longer no longer says anything about what this node lacks.
 */
export const VECTOR_TTL_MS = 10 * 60_000

/**
 * Peers whose vector is kept at once. Each vector may name up to `MAX_ORIGINS`
 * origins, so this bounds the memory; in a larger mesh the peers heard from most
 * recently are kept, and they are the ones that say what this node lacks now.
 */
export const MAX_ADVERTISED = 256

/** origin → entries `vector` holds beyond `held`, for the origins where it holds more. */
export function lagBehind (held: Record<string, number>, vector: Record<string, number>): Record<string, number> {
  const lag: Record<string, number> = {}
  for (const [origin, seq] of Object.entries(vector)) {
    const behind = seq - (held[origin] ?? 0)
    if (behind > 0) lag[origin] = behind
  }
  return lag
}

export function replication (init: ReplicationInit): (components: ReplicationComponents) => Replication {
  return (c) => {
    const log = c.logger
    const pulling = new Map<string, Promise<number>>()
    let timer: NodeJS.Timeout | undefined
    let shutdown = new AbortController()
    const reported = new Set<string>()
    const vectors = new Map<string, AdvertisedVector>()

    const keepVector = (peer: string, vector: Record<string, number>): void => {
      vectors.delete(peer)
      // the map iterates oldest first: past the cap, the peer heard from least recently goes
      if (vectors.size >= MAX_ADVERTISED) vectors.delete(vectors.keys().next().value as string)
      vectors.set(peer, { peer, vector, at: Date.now() })
    }

    const signal = (): AbortSignal => AbortSignal.any([shutdown.signal, AbortSignal.timeout(SYNC_TIMEOUT_MS)])

    const onEntry = (evt: CustomEvent<{ stored: { text: string, signature: string }, own: boolean }>): void => {
      if (!evt.detail.own) return
      const pubsub = c.libp2p.services.pubsub
      pubsub.publish(init.topic, encodeLogMessage({ type: 'entries', entries: [evt.detail.stored] })).catch((err: unknown) => {
        log.debug('log publish failed', { error: errorMessage(err) })
      })
    }

    const onRefused = (evt: CustomEvent<{ origin: string, seq: number, reason: string, from: string }>): void => {
      const { origin, seq, reason, from } = evt.detail
      log.warn('log entry refused', { origin, seq, from, reason })
      const key = `${from}|${origin}|${seq}|${reason}`
      if (reported.has(key) || reported.size > 10_000) return
      reported.add(key)
      void c.log.append('security.bad-log-entry', { details: { origin, seq, from, reason } }).catch(() => {})
    }

    const pull = async (peer: string): Promise<number> => {
      const running = pulling.get(peer)
      if (running != null) return await running
      const task = (async () => {
        let taken = 0
        const stream = await c.libp2p.dialProtocol(peerIdFromString(peer), LOG_SYNC_PROTOCOL, { signal: signal() })
        const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
        try {
          // one batch per request: the next want goes out once this batch is stored,
          // so the sender never runs ahead of what the receiver can check
          for (;;) {
            await lp.write(encodeLogMessage({ type: 'want', vector: await c.log.vector() }), { signal: signal() })
            const message = decodeLogMessage((await lp.read({ signal: signal() })).subarray())
            if (message.type !== 'entries') throw new Error(`expected entries, got ${message.type}`)
            const result = await c.log.ingest(message.entries, peer)
            taken += result.accepted
            // nothing taken from a full batch means the peer sends what we refuse: stop asking
            if (message.more !== true || result.accepted === 0) break
          }
          await stream.close()
        } catch (err) {
          stream.abort(err as Error)
          throw err
        }
        return taken
      })().finally(() => { pulling.delete(peer) })
      pulling.set(peer, task)
      return await task
    }

    const serve = async (stream: Stream, connection: Connection): Promise<void> => {
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
      try {
        for (;;) {
          const message = decodeLogMessage((await lp.read({ signal: signal() })).subarray())
          if (message.type !== 'want') throw new Error(`expected want, got ${message.type}`)
          keepVector(connection.remotePeer.toString(), message.vector)
          const batch = await c.log.entriesAfter(message.vector, MAX_BATCH_ENTRIES)
          const more = batch.length === MAX_BATCH_ENTRIES
          await lp.write(encodeLogMessage({ type: 'entries', entries: batch, more }), { signal: signal() })
          if (!more) break
        }
        await stream.close()
      } catch (err) {
        log.debug('log sync refused', { peer: connection.remotePeer.toString(), error: errorMessage(err) })
        stream.abort(err as Error)
      }
    }

    const onMessage = (evt: CustomEvent<GossipsubMessage>): void => {
      const msg = evt.detail.msg
      if (msg.topic !== init.topic) return
      let message
      try {
        message = decodeLogMessage(msg.data)
      } catch (err) {
        log.warn('bad log message', { error: errorMessage(err) })
        return
      }
      if (message.type !== 'entries') return
      const relay = evt.detail.propagationSource.toString()
      void c.log.ingest(message.entries, relay).then(result => {
        // a gap: the sender holds entries we lack
        if (result.ahead > 0) void pull(relay).catch(() => {})
      }, (err: unknown) => { log.debug('log ingest failed', { error: errorMessage(err) }) })
    }

    const onConnect = (evt: CustomEvent<PeerId>): void => {
      const peer = evt.detail.toString()
      // let identify and the state exchange go first
      setTimeout(() => { void pull(peer).catch((err: unknown) => { log.debug('log pull failed', { peer, error: errorMessage(err) }) }) }, 100).unref()
    }

    return {
      async start () {
        shutdown = new AbortController()
        await c.libp2p.handle(LOG_SYNC_PROTOCOL, serve, { maxInboundStreams: 8 })
        c.log.addEventListener('entry', onEntry)
        c.log.addEventListener('refused', onRefused)
        c.libp2p.services.pubsub.addEventListener('gossipsub:message', onMessage)
        c.libp2p.services.pubsub.subscribe(init.topic)
        c.libp2p.addEventListener('peer:connect', onConnect)
        timer = setInterval(() => {
          const peers = [...new Set(c.libp2p.getConnections().map(conn => conn.remotePeer.toString()))]
          const peer = peers[Math.floor(Math.random() * peers.length)]
          if (peer != null) void pull(peer).catch(() => {})
        }, init.syncMs ?? 5000)
        timer.unref()
      },
      async stop () {
        shutdown.abort()
        clearInterval(timer)
        c.log.removeEventListener('entry', onEntry)
        c.log.removeEventListener('refused', onRefused)
        c.libp2p.services.pubsub.removeEventListener('gossipsub:message', onMessage)
        c.libp2p.removeEventListener('peer:connect', onConnect)
        await c.libp2p.unhandle(LOG_SYNC_PROTOCOL).catch(() => {})
      },
      pull,
      advertised () {
        const since = Date.now() - VECTOR_TTL_MS
        return [...vectors.values()].filter(v => v.at >= since)
      }
    }
  }
}
