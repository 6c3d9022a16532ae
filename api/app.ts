/**
 * The agent's HTTP API, versioned under /v1: small Hono routers chained into
 * one app, the bearer token on every route but /healthz and the dashboard's
 * static files, Server-Sent Events for a migration's progress and for mesh
 * changes, Prometheus metrics (at `/metrics`, Prometheus' default path, and
 * `/v1/metrics`, both with the token), the OpenAPI document of it all, and one
 * error handler that answers problem+json.
 *
 * @example
 * ```ts
 * const app = createApp({ agent, token })
 * const res = await app.request('/v1/peers', { headers: { authorization: `Bearer ${token}` } })
 * ```
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono'
import type { z } from 'zod'
import { parseRate } from '../node/chunks/bandwidth.ts'
import { requireToken } from './auth.ts'
import { requireAllowedHost } from './host-check.ts'
import { limitRequests } from './rate-limit.ts'
import { parseTime } from '../node/audit/time.ts'
import { ApiError, problem, toProblem } from './problem.ts'
import { peerInfo, type Agent } from '../node/agent.ts'
import type { MeshView, PeerRecord, StatusChange } from '../node/mesh/view.ts'
import type { MigrationRecord } from '../node/migration/journal.ts'
import { isFinal } from '../protocols/migrate/index.ts'
import { errorMessage, type Logger } from '../node/logger.ts'
import { dashboard } from './dashboard.ts'
import { eventStream, type Subscribe } from './events.ts'
import { createMetrics, METRICS_CONTENT_TYPE, type Metrics } from './metrics.ts'
import { openApiDocument } from './openapi.ts'
import { JoinBody, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX, MigrateBody, MigrationId, parseBody, readJson } from './schemas.ts'
import { rebalanceRoutes, type RebalanceAgent } from './rebalance.ts'

type Listen = 'addEventListener' | 'removeEventListener'

/** What the API needs of the agent. */
export type ApiAgent = Pick<Agent, 'peerId' | 'info' | 'peers' | 'containers' | 'join' | 'leave'> & Partial<Pick<Agent, 'cloudWatchStats' | 'replication'>> & RebalanceAgent & {
  audit: Pick<Agent['audit'], 'list' | 'verify' | 'refusedCount' | 'append' | 'vector' | 'appended'>
  migrations: Pick<Agent['migrations'], 'begin' | 'finished' | 'list' | 'get' | 'cancel' | 'rollback' | Listen>
  gossip: { view: Pick<MeshView, Listen> }
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

function migrationId (value: string): string {
  const parsed = MigrationId.safeParse(value)
  if (!parsed.success) throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `"${value}" is not a migration id (a UUID)`)
  return parsed.data
}

/**
 * Mesh changes for `GET /v1/events`: a peer's info when its status or state
 * changes, its removal when it is forgotten, and every update of this node's
 * migrations. Keyed by peer and by migration, so only the newest of each waits.
 */
function meshEvents (agent: ApiAgent): Subscribe {
  return (send) => {
    const view = agent.gossip.view
    const onStatus = (evt: CustomEvent<StatusChange>): void => {
      const { peerId, to, record } = evt.detail
      if (to === 'removed') send(`peer:${peerId}`, 'peer-removed', { peerId })
      else send(`peer:${peerId}`, 'peer', peerInfo(record))
    }
    const onState = (evt: CustomEvent<PeerRecord>): void => { send(`peer:${evt.detail.peerId}`, 'peer', peerInfo(evt.detail)) }
    const onMigration = (evt: CustomEvent<MigrationRecord>): void => { send(`migration:${evt.detail.id}:${evt.detail.role}`, 'migration', evt.detail) }
    view.addEventListener('peer:status', onStatus)
    view.addEventListener('peer:state', onState)
    agent.migrations.addEventListener('update', onMigration)
    return () => {
      view.removeEventListener('peer:status', onStatus)
      view.removeEventListener('peer:state', onState)
      agent.migrations.removeEventListener('update', onMigration)
    }
  }
}

/**
 * One migration's progress for `GET /v1/migrations/:id/events`: the record as
 * it is, then each update of the same side, ending after a final phase.
 */
function migrationEvents (agent: ApiAgent, first: MigrationRecord): Subscribe {
  return (send, end) => {
    const emit = (record: MigrationRecord): void => {
      send('migration', 'migration', record)
      if (isFinal(record.phase)) end()
    }
    const onUpdate = (evt: CustomEvent<MigrationRecord>): void => {
      if (evt.detail.id === first.id && evt.detail.role === first.role) emit(evt.detail)
    }
    agent.migrations.addEventListener('update', onUpdate)
    emit(first)
    return () => { agent.migrations.removeEventListener('update', onUpdate) }
  }
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

  // one registry per agent, made at the first scrape (an app never scraped starts no collectors)
  let metrics: Metrics | undefined
  const scrape = async (c: Context): Promise<Response> => {
    metrics ??= createMetrics({
      info: () => agent.info(),
      peers: () => agent.peers(),
      containers: () => agent.containers(),
      migrations: async () => await agent.migrations.list(),
      held: async () => await agent.audit.vector(),
      appended: () => agent.audit.appended,
      refused: () => agent.audit.refusedCount,
      advertised: () => agent.replication?.advertised() ?? [],
      cloudwatch: () => agent.cloudWatchStats?.()
    })
    return c.body(await metrics.text(), 200, { 'content-type': METRICS_CONTENT_TYPE })
  }
  // Prometheus' default metrics_path, with the same token as /v1; /v1/metrics stays as its alias
  const prometheus = new Hono()
    .use('/metrics', requireToken({ token: init.token }))
    .get('/metrics', scrape)

  const knownMigration = async (value: string): Promise<MigrationRecord> => {
    const id = migrationId(value)
    const record = await agent.migrations.get(id)
    if (record == null) throw new ApiError(404, 'GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id} on this node`)
    return record
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
      const limit = count('limit', LOG_LIMIT_MAX) ?? LOG_LIMIT_DEFAULT
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
    .get('/openapi.json', (c) => c.json(openApiDocument()))
    .get('/metrics', scrape)
    .get('/events', (c) => eventStream(c, meshEvents(agent)))
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
    .get('/:id', async (c) => c.json(await knownMigration(c.req.param('id'))))
    .get('/:id/events', async (c) => eventStream(c, migrationEvents(agent, await knownMigration(c.req.param('id')))))
    .post('/:id/cancel', async (c) => c.json(await agent.migrations.cancel(migrationId(c.req.param('id')))))
    .post('/:id/rollback', async (c) => c.json(await agent.migrations.rollback(migrationId(c.req.param('id')), actorOf(c))))

  const app = new Hono()
    .use(requireAllowedHost({ hosts: init.hosts }))
    .use(limitRequests(init.rateLimit))
    .route('/', health)
    .route('/', dashboard())
    .route('/', prometheus)
    .route('/v1/migrations', migrations)
    .route('/v1', v1)
    .route('/v1', rebalanceRoutes({
      agent,
      middleware: [requireToken({ token: init.token }), recordActs],
      readBody: async (schema, req) => parseBody(schema, await readJson(req)),
      actorOf,
      onLeave: init.onLeave
    }))
  app.notFound((c) => problem(c, 404, 'GOTO_ERR_NOT_FOUND', `no route ${c.req.method} ${c.req.path}`))
  app.onError((err, c) => {
    const res = toProblem(err, c)
    if (res.status >= 500) init.logger?.error('API request failed', { method: c.req.method, path: c.req.path, error: errorMessage(err), stack: (err as Error).stack?.split('\n').slice(1, 4).join(' | ') })
    return res
  })
  return app
}

export type App = ReturnType<typeof createApp>
