/**
 * The OpenAPI 3.1 document of the API, served at `/v1/openapi.json`. Every
 * route is described once in `OPERATIONS`; request bodies and parameters are
 * generated from the same zod schemas the routes check with, and answers from
 * the schemas of responses.ts (`z.toJSONSchema`). Tests hold the table equal
 * to the routes the app registers and parse every answer with its schema, so
 * the document cannot drift from the code.
 *
 * @example
 * ```ts
 * const doc = openApiDocument()
 * doc.paths['/v1/migrations/{id}'].get.responses['404']
 * ```
 */
import { z } from 'zod'
import { VERSION } from '../node/agent.ts'
import { DASHBOARD_FILES } from './dashboard.ts'
import { METRICS_CONTENT_TYPE } from './metrics.ts'
import { DrainBody, JoinBody, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX, MigrateBody, MigrationId } from './schemas.ts'
import { NDJSON } from './rebalance.ts'
import {
  ContainerListSchema, HealthSchema, RebalancePlanSchema, RebalanceStatusSchema, StepSchema, JoinedSchema, LeavingSchema, LogPageSchema, LogReportSchema, MigrationListSchema,
  MigrationRecordSchema, NodeInfoSchema, PeerListSchema, responses
} from './responses.ts'

type Content = 'json' | 'events' | 'redirect' | { type: string }

export interface Operation {
  method: 'get' | 'post'
  /** As Hono registers it (`:id`); the document writes `{id}`. */
  path: string
  id: string
  summary: string
  /** Needs no token. */
  public?: boolean
  query?: Record<string, string>
  body?: z.ZodType
  /** Success statuses and what each means. */
  ok: Record<number, string>
  content: Content
  /** The JSON answer's schema, when `content` is json. */
  schema?: z.ZodType
  /** Problem statuses besides 401. */
  errors?: number[]
}

const ERROR_MEANING: Record<number, string> = {
  400: 'the request is invalid; `detail` names the field and what is wrong with it',
  401: 'no bearer token, or the wrong one',
  404: 'no such migration, container or target',
  409: 'the migration or target is in a state that does not allow this',
  422: 'the container cannot move as asked (e.g. bind mounts of host paths)',
  502: 'a peer did not answer or refused',
  503: 'the agent is not running'
}

const TIME = 'ISO 8601 time or a span back from now: 90s, 15m, 1h, 2d'

const MIGRATION_EVENTS = 'Server-Sent Events: `migration` with the record, first as it is, then at every phase and as bytes move; the stream ends after a final phase (activated, aborted, rolled-back, dry-run)'

const METRICS_SUMMARY = 'capacity, peers by status and state, containers by node, migrations by role and phase and by result, ' +
  'histograms of migration duration and downtime, bytes sent, received, on the wire and deduplicated, chunks refused, ' +
  'audit log entries held by origin and written by kind, replication lag, rebalance decisions, refused log entries, ' +
  'CloudWatch counters while it runs, the process and Node.js runtime'

export const OPERATIONS: Operation[] = [
  { method: 'get', path: '/healthz', id: 'health', summary: 'liveness', public: true, ok: { 200: '`{status: "ok", peerId}`' }, content: 'json', schema: HealthSchema },
  { method: 'get', path: '/ui', id: 'dashboardRedirect', summary: 'the dashboard, at /ui/', public: true, ok: { 301: 'to /ui/' }, content: 'redirect' },
  ...Object.entries(DASHBOARD_FILES).map(([path, { file, type }]): Operation => ({
    method: 'get', path, id: `dashboard:${file}`, summary: `the dashboard's ${file} (static, no data; the page takes the token from its URL fragment)`, public: true, ok: { 200: file }, content: { type }
  })),
  { method: 'get', path: '/metrics', id: 'metrics', summary: `Prometheus metrics: ${METRICS_SUMMARY}`, ok: { 200: 'the Prometheus text format, version 0.0.4' }, content: { type: METRICS_CONTENT_TYPE } },
  { method: 'get', path: '/v1/metrics', id: 'metricsV1', summary: 'the same as /metrics, kept under /v1 for scrape configs written before /metrics', ok: { 200: 'the Prometheus text format, version 0.0.4' }, content: { type: METRICS_CONTENT_TYPE } },
  { method: 'get', path: '/v1/openapi.json', id: 'openapi', summary: 'this document', ok: { 200: 'OpenAPI 3.1' }, content: 'json' },
  { method: 'get', path: '/v1/node', id: 'getNode', summary: 'this node: peer id, name, addresses, capacity, inventory size, mesh id', ok: { 200: 'NodeInfo' }, content: 'json', schema: NodeInfoSchema },
  { method: 'get', path: '/v1/peers', id: 'getPeers', summary: 'the mesh view: every peer with status (alive, suspect, gone, left), state and capacity', ok: { 200: '`{peers: PeerInfo[]}`' }, content: 'json', schema: PeerListSchema },
  { method: 'get', path: '/v1/containers', id: 'getContainers', summary: 'containers of the whole mesh', query: { match: 'a regular expression on the name' }, ok: { 200: '`{containers: MeshContainer[]}`' }, content: 'json', schema: ContainerListSchema, errors: [400] },
  { method: 'post', path: '/v1/mesh/join', id: 'join', summary: 'dial a member and swap states', body: JoinBody, ok: { 200: '`{peerId}` of the member' }, content: 'json', schema: JoinedSchema, errors: [400, 502, 503] },
  { method: 'post', path: '/v1/mesh/leave', id: 'leave', summary: 'announce the leave and stop the agent', ok: { 202: '`{leaving: true, peerId}`; the agent leaves right after answering' }, content: 'json', schema: LeavingSchema },
  { method: 'post', path: '/v1/mesh/drain', id: 'drain', summary: 'mark this node draining (gossiped: nobody sends it work), move every container but the pinned ones to peers with room, report, then leave', body: DrainBody, ok: { 200: 'JSON lines: `{type: "started", deadline}`, a `{type: "progress", report}` per container landed, and last `{type: "report", report}` (a DrainReport: done, moved, stayed with reasons); the agent leaves right after' }, content: { type: NDJSON }, errors: [400, 409] },
  { method: 'get', path: '/v1/rebalance', id: 'getRebalance', summary: 'what this node would do now and why (a dry run): the mesh\'s loads, the band, the best moves, the containers that may not move', ok: { 200: 'RebalancePlan' }, content: 'json', schema: RebalancePlanSchema },
  { method: 'post', path: '/v1/rebalance', id: 'rebalance', summary: 'look at the mesh now and start at most one move (paused or draining: hold)', ok: { 200: '`{decision}`: the move started, or why it holds' }, content: 'json', schema: StepSchema },
  { method: 'post', path: '/v1/rebalance/pause', id: 'pauseRebalance', summary: 'this node starts and takes no rebalance moves until resumed (kept across restarts)', ok: { 200: 'RebalanceStatus' }, content: 'json', schema: RebalanceStatusSchema },
  { method: 'post', path: '/v1/rebalance/resume', id: 'resumeRebalance', summary: 'rebalance again', ok: { 200: 'RebalanceStatus' }, content: 'json', schema: RebalanceStatusSchema },
  { method: 'get', path: '/v1/events', id: 'events', summary: 'mesh changes as Server-Sent Events', ok: { 200: 'Server-Sent Events: `peer` (a PeerInfo, on a status or state change), `peer-removed` (`{peerId}`, a gone or left peer forgotten), `migration` (a record of this node, on every update)' }, content: 'events' },
  {
    method: 'get',
    path: '/v1/log',
    id: 'getLog',
    summary: 'the mesh-wide audit log as this node holds it, merged by time',
    query: {
      since: `from this time (${TIME})`,
      till: `until this time (${TIME})`,
      node: 'entries of one origin (peer id or prefix)',
      kind: 'one kind, or a family: migration, security, node',
      migration: 'the entries of one migration',
      limit: `at most this many entries, 0 to ${LOG_LIMIT_MAX} (default ${LOG_LIMIT_DEFAULT})`,
      offset: 'skip this many (the `next` of the previous page)'
    },
    ok: { 200: '`{entries: AuditEntry[], next?: number}`' },
    content: 'json', schema: LogPageSchema,
    errors: [400]
  },
  { method: 'get', path: '/v1/log/verify', id: 'verifyLog', summary: 'every origin\'s chain: entries, head, gaps, breaks; refusals since start', ok: { 200: '`{ok, origins, refused}`' }, content: 'json', schema: LogReportSchema },
  { method: 'post', path: '/v1/migrations', id: 'migrate', summary: 'move a container of this node to a peer', body: MigrateBody, ok: { 200: 'the final record (synchronous)', 202: 'the planned record (`async: true`)' }, content: 'json', schema: MigrationRecordSchema, errors: [400, 404, 409, 422] },
  { method: 'get', path: '/v1/migrations', id: 'getMigrations', summary: 'every migration this node took part in, newest first', ok: { 200: '`{migrations: MigrationRecord[]}`' }, content: 'json', schema: MigrationListSchema },
  { method: 'get', path: '/v1/migrations/:id', id: 'getMigration', summary: 'one migration: phases with times, bytes, downtime, error', ok: { 200: 'MigrationRecord' }, content: 'json', schema: MigrationRecordSchema, errors: [400, 404] },
  { method: 'get', path: '/v1/migrations/:id/events', id: 'migrationEvents', summary: 'one migration\'s progress as Server-Sent Events', ok: { 200: MIGRATION_EVENTS }, content: 'events', errors: [400, 404] },
  { method: 'post', path: '/v1/migrations/:id/cancel', id: 'cancelMigration', summary: 'abort a migration before its commit', ok: { 200: 'the record, aborted (or final as it was)' }, content: 'json', schema: MigrationRecordSchema, errors: [400, 404, 409] },
  { method: 'post', path: '/v1/migrations/:id/rollback', id: 'rollbackMigration', summary: 'remove the target\'s copy and run the original again', ok: { 200: 'the record, rolled-back' }, content: 'json', schema: MigrationRecordSchema, errors: [400, 404, 409, 502] }
]

const problemResponse = (status: number): object => ({
  description: ERROR_MEANING[status] ?? 'error',
  content: { 'application/problem+json': { schema: { $ref: SCHEMA_URI('Problem') } } }
})

function jsonSchema (schema: z.ZodType): object {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>
  return rest
}

const SCHEMA_URI = (id: string): string => `#/components/schemas/${id}`

/** A reference to a named response schema, else the schema inline. */
function schemaRef (schema: z.ZodType | undefined): object {
  if (schema == null) return { type: 'object' }
  const id = responses.get(schema)?.id
  return id != null ? { $ref: SCHEMA_URI(id) } : jsonSchema(schema)
}

function successContent (op: Operation, description: string): object {
  const { content } = op
  if (content === 'redirect') return { description, headers: { location: { schema: { type: 'string' } } } }
  if (content === 'events') return { description, content: { 'text/event-stream': { schema: { type: 'string' } } } }
  if (content === 'json') return { description, content: { 'application/json': { schema: schemaRef(op.schema) } } }
  return { description, content: { [content.type.split(';')[0] ?? content.type]: { schema: { type: 'string' } } } }
}

/** Every named response schema, for `components.schemas`. */
function componentSchemas (): Record<string, object> {
  const { schemas } = z.toJSONSchema(responses, { uri: SCHEMA_URI })
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _, $id: __, ...schema }]) => [id, schema]))
}

function operationObject (op: Operation): object {
  const pathParams = [...op.path.matchAll(/:(\w+)/g)].map(m => ({ name: m[1], in: 'path', required: true, schema: jsonSchema(MigrationId) }))
  const queryParams = Object.entries(op.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } }))
  const answers: Record<string, object> = {}
  for (const [status, description] of Object.entries(op.ok)) answers[status] = successContent(op, description)
  for (const status of [...(op.public === true ? [] : [401]), ...(op.errors ?? [])]) answers[String(status)] = problemResponse(status)
  return {
    operationId: op.id,
    summary: op.summary,
    ...(op.public === true ? { security: [] } : {}),
    ...(pathParams.length + queryParams.length > 0 ? { parameters: [...pathParams, ...queryParams] } : {}),
    ...(op.body != null ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body) } } } } : {}),
    responses: answers
  }
}

/** The OpenAPI path of a Hono path: `/v1/migrations/:id` → `/v1/migrations/{id}`. */
export function openApiPath (path: string): string {
  return path.replace(/:(\w+)/g, '{$1}')
}

export function openApiDocument (): Record<string, unknown> {
  const paths: Record<string, Record<string, object>> = {}
  for (const op of OPERATIONS) {
    const path = openApiPath(op.path)
    paths[path] = { ...paths[path], [op.method]: operationObject(op) }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'goto-node agent API',
      version: VERSION,
      description: 'The HTTP API of a Go-To agent. Errors are application/problem+json with a stable `code` (GOTO_ERR_…).'
    },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the agent\'s data dir api.token' } },
      schemas: componentSchemas()
    },
    paths
  }
}
