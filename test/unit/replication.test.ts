/**
 * The version vectors the log's replication keeps for the lag metrics: each
 * peer's newest, from the `want` it sends when it pulls from this node, for
 * `VECTOR_TTL_MS`, and no more than `MAX_ADVERTISED` peers at once.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it, mock } from 'node:test'
import { lpStream, streamPair } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { MAX_ADVERTISED, replication, VECTOR_TTL_MS, type Replication } from '../../node/audit/replication.ts'
import type { AuditLog } from '../../node/audit/log.ts'
import type { MeshNode } from '../../node/mesh/libp2p.ts'
import { createLogger } from '../../node/logger.ts'
import { decodeLogMessage, encodeLogMessage } from '../../protocols/log-sync/index.ts'

type Serve = (stream: Stream, connection: Connection) => Promise<void>

/** Replication over a stub mesh and a log holding nothing; `serve` is its log-sync handler. */
async function started (): Promise<{ repl: Replication, serve: Serve }> {
  let serve: Serve | undefined
  const events = { addEventListener: () => {}, removeEventListener: () => {} }
  const libp2p = {
    ...events,
    handle: async (_: string, handler: Serve) => { serve = handler },
    unhandle: async () => {},
    getConnections: () => [],
    services: { pubsub: { ...events, subscribe: () => {} } }
  } as unknown as MeshNode
  const log = { ...events, entriesAfter: async () => [] } as unknown as AuditLog
  const repl = replication({ topic: 't', syncMs: 3_600_000 })({ libp2p, log, logger: createLogger('test', { level: 'silent' }) })
  await repl.start()
  return { repl, serve: serve as Serve }
}

/** `peer` pulls with `vector`, as a peer's replication does, and reads the (empty) answer. */
async function pull (serve: Serve, peer: string, vector: Record<string, number>): Promise<void> {
  const [client, served] = await streamPair()
  const handled = serve(served, { remotePeer: { toString: () => peer } } as unknown as Connection)
  const lp = lpStream(client)
  await lp.write(encodeLogMessage({ type: 'want', vector }))
  assert.equal(decodeLogMessage((await lp.read()).subarray()).type, 'entries')
  await handled
  await client.close().catch(() => {})
}

describe('replication: the vectors peers advertise', () => {
  afterEach(() => { mock.timers.reset() })

  it('keeps each peer\'s newest vector and forgets it after the TTL', async () => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 })
    const { repl, serve } = await started()
    await pull(serve, 'peerA', { o: 3 })
    await pull(serve, 'peerB', { o: 1, p: 2 })
    await pull(serve, 'peerA', { o: 5 })
    assert.deepEqual(repl.advertised().map(v => [v.peer, v.vector, v.at]), [['peerB', { o: 1, p: 2 }, 1_000_000], ['peerA', { o: 5 }, 1_000_000]])
    mock.timers.tick(VECTOR_TTL_MS + 1)
    assert.deepEqual(repl.advertised(), [])
    await repl.stop()
  })

  it('keeps at most MAX_ADVERTISED peers, dropping the one heard from least recently', async () => {
    const { repl, serve } = await started()
    for (let i = 0; i <= MAX_ADVERTISED; i++) await pull(serve, `peer${i}`, { o: i })
    const peers = repl.advertised().map(v => v.peer)
    assert.equal(peers.length, MAX_ADVERTISED)
    assert.ok(!peers.includes('peer0'))
    assert.ok(peers.includes(`peer${MAX_ADVERTISED}`))
    await repl.stop()
  })
})
