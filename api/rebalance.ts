/**
 * The rebalancer's routes: what this node would do now and why, one step now,
 * pause and resume, and the drain that ends in a leave.
 *
 * `POST /v1/mesh/drain` answers at once with a stream of JSON lines
 * (`application/x-ndjson`), one `{type: "progress", report}` per container
 * that lands at a peer and a last `{type: "report", report}` (an empty line
 * every 15 s in between); the agent leaves right after that line. A node
 * that drains already answers 409. A client that goes away does not stop the
 * drain: the report is also in the audit log (`drain.finished`).
 *
 * @example
 * ```sh
 * curl -N -X POST -H "authorization: Bearer $(cat api.token)" -d '{"deadline":"10m"}' \
 *   http://127.0.0.1:7070/v1/mesh/drain
 * ```
 */
import { Hono, type MiddlewareHandler } from 'hono'
import { parseDuration } from '../node/audit/time.ts'
import { errorMessage } from '../node/logger.ts'
import { DrainBody } from './schemas.ts'
import { ApiError } from './problem.ts'
import type { Agent } from '../node/agent.ts'

export const NDJSON = 'application/x-ndjson'
export const DEFAULT_DRAIN_DEADLINE = '15m'
const KEEPALIVE_MS = 15_000

export type RebalanceAgent = Pick<Agent, 'drainAndLeave'> & {
  rebalancer: Pick<Agent['rebalancer'], 'preview' | 'step' | 'pause' | 'resume' | 'status'>
}

export interface RebalanceRoutesInit {
  agent: RebalanceAgent
  /** The token check and the audit of acts, as the other routers use them. */
  middleware: MiddlewareHandler[]
  readBody: (schema: typeof DrainBody, req: { json: () => Promise<unknown> }) => Promise<{ deadline?: string }>
  actorOf: (c: any) => string
  /** Called once the drain's agent has left, to stop the process. */
  onLeave?: () => void
}

export function rebalanceRoutes (init: RebalanceRoutesInit): Hono {
  const { agent } = init
  const app = new Hono()
  for (const m of init.middleware) app.use(m)
  return app
    .get('/rebalance', async (c) => c.json(await agent.rebalancer.preview()))
    .post('/rebalance', async (c) => c.json({ decision: await agent.rebalancer.step() }))
    .post('/rebalance/pause', async (c) => c.json(await agent.rebalancer.pause(init.actorOf(c))))
    .post('/rebalance/resume', async (c) => c.json(await agent.rebalancer.resume(init.actorOf(c))))
    .post('/mesh/drain', async (c) => {
      const body = await init.readBody(DrainBody, c.req)
      if (agent.rebalancer.status().draining) throw new ApiError(409, 'GOTO_ERR_DRAINING', 'this node is draining already')
      const deadline = Date.now() + parseDuration(body.deadline ?? DEFAULT_DRAIN_DEADLINE, 'deadline')
      const encoder = new TextEncoder()
      let controller: ReadableStreamDefaultController<Uint8Array> | undefined
      let open = true
      const send = (text: string): void => {
        if (!open) return
        try {
          controller?.enqueue(encoder.encode(text))
        } catch {
          open = false
        }
      }
      const write = (line: unknown): void => { send(`${JSON.stringify(line)}\n`) }
      // an empty line every 15 s: a client (fetch) drops a body silent for 5 minutes, and one move can take longer
      const keepAlive = setInterval(() => { send('\n') }, KEEPALIVE_MS)
      keepAlive.unref()
      const close = (): void => {
        clearInterval(keepAlive)
        if (!open) return
        open = false
        try { controller?.close() } catch {}
      }
      const stream = new ReadableStream<Uint8Array>({
        start (ctl) { controller = ctl },
        cancel () { open = false; clearInterval(keepAlive) }
      })
      write({ type: 'started', deadline: new Date(deadline).toISOString() })
      void agent.drainAndLeave({
        deadline,
        actor: init.actorOf(c),
        onProgress: (report, final) => {
          write({ type: final ? 'report' : 'progress', report })
          if (final) close()
        }
      }).then(() => { init.onLeave?.() }, (err: unknown) => {
        write({ type: 'error', code: (err as { code?: string }).code ?? 'GOTO_ERR_INTERNAL', detail: errorMessage(err) })
        close()
      })
      return c.body(stream, 200, { 'content-type': NDJSON, 'cache-control': 'no-store' })
    })
}
