/**
 * The agent's HTTP API, versioned under /v1: small Hono routers chained into
 * one app, the bearer token on every route but /healthz, and one error
 * handler that answers problem+json.
 *
 * @example
 * ```ts
 * const app = createApp({ agent, token })
 * const res = await app.request('/v1/peers', { headers: { authorization: `Bearer ${token}` } })
 * ```
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { z } from 'zod'
import { parseRate } from '../node/chunks/bandwidth.ts'
import { requireToken } from './auth.ts'
import { requireAllowedHost } from './host-check.ts'
import { limitRequests } from './rate-limit.ts'
import { parseTime } from '../node/audit/time.ts'
import { ApiError, problem, toProblem } from './problem.ts'
import type { Agent } from '../node/agent.ts'
import { errorMessage, type Logger } from '../node/logger.ts'

/** What the API needs of the agent. */
export type ApiAgent = Pick<Agent, 'peerId' | 'info' | 'peers' | 'containers' | 'join' | 'leave'> & {
  audit: Pick<Agent['audit'], 'list' | 'verify' | 'refusedCount' | 'append'>
  migrations: Pick<Agent['migrations'], 'begin' | 'finished' | 'list' | 'get' | 'cancel' | 'rollback'>
}

export interface AppInit {
  agent: ApiAgent
  token: string
  /** Called after a leave was accepted and answered, to stop the process. */
  onLeave?: () => void
  /** Names accepted in `Host` besides the loopback ones (DNS rebinding). @default [] */
  hosts?: string[]
  /** Requests a second and at once, for the whole API. @default API_RATE (50/s, 100) */
  rateLimit?: { rate: number, burst: number }
  /** Where unexpected errors (500s) are logged. */
  logger?: Logger
}

const JoinBody = z.strictObject({ addr: z.string().min(1).max(1024) })

const MigrateBody = z.strictObject({
  container: z.string().min(1).max(256),
  target: z.string().min(1).max(256),
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'a Docker container name').optional(),
  consistency: z.enum(['freeze', 'stop']).optional(),
  stopTimeout: z.number().int().min(0).max(3600).optional(),
  dryRun: z.boolean().optional(),
  allowBindMounts: z.boolean().optional(),
  /** Bytes a second: a number, or a rate such as "10M" or "512k". */
  bwlimit: z.union([z.number().positive(), z.string().max(32)]).optional(),
  precopy: z.boolean().optional(),
  async: z.boolean().optional()
})

const MigrationId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a migration id (UUID)')

function migrationId (value: string): string {
  const parsed = MigrationId.safeParse(value)
  if (!parsed.success) throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `"${value}" is not a migration id (a UUID)`)
  return parsed.data
}

async function readJson (req: { json: () => Promise<unknown> }): Promise<unknown> {
  try {
    return await req.json()
  } catch {
    throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', 'the body is not JSON')
  }
}

function parseBody<T> (schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue == null || issue.path.length === 0 ? 'body' : `body.${issue.path.join('.')}`
    throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `${where}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

/** Who asked: the user the CLI says it runs as (`x-goto-actor`), else the token holder, `api`. */
function actorOf (c: Context): string {
  const who = c.req.header('x-goto-actor')
  return who != null && /^[\w.@:-]{1,128}$/.test(who) ? who : 'api'
}

export function createApp (init: AppInit) {
  const { agent } = init

  const health = new Hono()
    .get('/healthz', (c) => c.json({ status: 'ok', peerId: agent.peerId }))

  // every request that acts is in the audit log, written before the act
  const recordActs: MiddlewareHandler = async (c, next) => {
    if (c.req.method !== 'GET') await agent.audit.append('api.request', { actor: actorOf(c), details: { method: c.req.method, path: c.req.path } })
    await next()
  }

  const v1 = new Hono()
    .use(requireToken({ token: init.token }))
    .use(recordActs)
    .get('/node', (c) => c.json(agent.info()))
    .get('/peers', (c) => c.json({ peers: agent.peers() }))
    .get('/containers', (c) => c.json({ containers: agent.containers(c.req.query('match')) }))
    .post('/mesh/join', async (c) => {
      const body = parseBody(JoinBody, await readJson(c.req))
      return c.json(await agent.join(body.addr))
    })
    .get('/log', async (c) => {
      const time = (name: string): number | undefined => {
        const value = c.req.query(name)
        return value == null || value === '' ? undefined : parseTime(value, name)
      }
      const count = (name: string, max: number): number | undefined => {
        const value = c.req.query(name)
        if (value == null || value === '') return undefined
        const n = Number(value)
        if (!Number.isInteger(n) || n < 0 || n > max) throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `${name}: "${value}" is not a whole number from 0 to ${max}`)
        return n
      }
      const limit = count('limit', 10_000) ?? 1000
      const offset = count('offset', Number.MAX_SAFE_INTEGER) ?? 0
      const entries = await agent.audit.list({
        since: time('since'),
        till: time('till'),
        node: c.req.query('node'),
        kind: c.req.query('kind'),
        migration: c.req.query('migration'),
        limit: limit + 1,
        offset
      })
      const more = entries.length > limit
      return c.json({ entries: entries.slice(0, limit), next: more ? offset + limit : undefined })
    })
    .get('/log/verify', async (c) => {
      const origins = await agent.audit.verify()
      return c.json({ ok: origins.every(o => o.gaps.length === 0 && o.breaks.length === 0), origins, refused: agent.audit.refusedCount })
    })
    .post('/mesh/leave', (c) => {
      // answer first, then leave: the caller learns the leave was accepted
      setTimeout(() => {
        void agent.leave().finally(() => init.onLeave?.())
      }, 10)
      return c.json({ leaving: true, peerId: agent.peerId }, 202)
    })

  const migrations = new Hono()
    .use(requireToken({ token: init.token }))
    .use(recordActs)
    .post('/', async (c) => {
      const body = parseBody(MigrateBody, await readJson(c.req))
      const { async: background, bwlimit, ...req } = body
      let rate: number | undefined
      try {
        rate = parseRate(bwlimit)
      } catch (err) {
        throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `bwlimit: ${(err as Error).message}`)
      }
      const started = await agent.migrations.begin({ ...req, bwlimit: rate, actor: actorOf(c) })
      if (background === true) return c.json(started, 202)
      return c.json(await agent.migrations.finished(started.id, { signal: c.req.raw.signal }))
    })
    .get('/', async (c) => c.json({ migrations: await agent.migrations.list() }))
    .get('/:id', async (c) => {
      const id = migrationId(c.req.param('id'))
      const record = await agent.migrations.get(id)
      if (record == null) throw new ApiError(404, 'GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id} on this node`)
      return c.json(record)
    })
    .post('/:id/cancel', async (c) => c.json(await agent.migrations.cancel(migrationId(c.req.param('id')))))
    .post('/:id/rollback', async (c) => c.json(await agent.migrations.rollback(migrationId(c.req.param('id')), actorOf(c))))

  const app = new Hono()
    .use(requireAllowedHost({ hosts: init.hosts }))
    .use(limitRequests(init.rateLimit))
    .route('/', health)
    .route('/v1/migrations', migrations)
    .route('/v1', v1)
  app.notFound((c) => problem(c, 404, 'GOTO_ERR_NOT_FOUND', `no route ${c.req.method} ${c.req.path}`))
  app.onError((err, c) => {
    const res = toProblem(err, c)
    if (res.status >= 500) init.logger?.error('API request failed', { method: c.req.method, path: c.req.path, error: errorMessage(err), stack: (err as Error).stack?.split('\n').slice(1, 4).join(' | ') })
    return res
  })
  return app
}

export type App = ReturnType<typeof createApp>
