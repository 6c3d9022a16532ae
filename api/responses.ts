/**
 * The API's JSON answers as zod schemas, registered by name for the OpenAPI
 * document's `components.schemas`. Each `satisfies` the agent's own type, so
 * a field the agent adds to NodeInfo, PeerInfo or the others fails the type
 * check until it is described here; the contract tests parse answers with
 * them. Migration records and log entries are described by their stable
 * fields and allow more (the migration record grows with the transfer).
 */
import { z } from 'zod'
import { CapacitySchema, ContainerSchema, NodeStatusSchema } from '../protocols/node-state/index.ts'
import { PHASES } from '../protocols/migrate/index.ts'
import type { MeshContainer, NodeInfo, PeerInfo } from '../node/agent.ts'
import type { AuditEntry, OriginReport } from '../node/audit/log.ts'
import type { MigrationRecord } from '../node/migration/journal.ts'
import type { Problem } from './problem.ts'
import type { DecisionRecord, PlanReport, RebalanceStatus } from '../node/rebalance/service.ts'
import type { DrainReport } from '../node/rebalance/drain.ts'

/** Named schemas: the document lists them under `components.schemas`, by these ids. */
export const responses = z.registry<{ id: string }>()

function named<T extends z.ZodType> (id: string, schema: T): T {
  responses.add(schema, { id })
  return schema
}

const time = z.iso.datetime()

const Capacity = named('Capacity', CapacitySchema)

export const NodeInfoSchema = named('NodeInfo', z.strictObject({
  peerId: z.string(),
  name: z.string(),
  version: z.string(),
  state: NodeStatusSchema,
  addrs: z.array(z.string()),
  runtime: z.string(),
  capacity: Capacity,
  containers: z.number().int().describe('containers on this node'),
  startedAt: time,
  meshId: z.string()
}) satisfies z.ZodType<NodeInfo>)

export const PeerInfoSchema = named('PeerInfo', z.strictObject({
  peerId: z.string(),
  name: z.string(),
  status: z.enum(['alive', 'suspect', 'gone', 'left']),
  state: NodeStatusSchema,
  connected: z.boolean(),
  since: time.describe('when the current status began'),
  lastHeard: time,
  addrs: z.array(z.string()),
  capacity: Capacity,
  containers: z.number().int()
}) satisfies z.ZodType<PeerInfo>)

export const MeshContainerSchema = named('MeshContainer', ContainerSchema.extend({
  node: z.string().describe('the name of the node it runs on'),
  peerId: z.string()
}) satisfies z.ZodType<MeshContainer>)

const migrationStable = {
  id: z.string(),
  role: z.enum(['source', 'target']),
  phase: z.enum(PHASES),
  phases: z.array(z.strictObject({ phase: z.enum(PHASES), at: time })),
  source: z.string(),
  target: z.string(),
  sourceNode: z.string(),
  targetNode: z.string(),
  container: z.string().describe('its name on the source'),
  name: z.string().describe('its name on the target'),
  consistency: z.enum(['freeze', 'stop']),
  dryRun: z.boolean(),
  createdAt: time,
  updatedAt: time,
  actor: z.string().optional(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  bytes: z.looseObject({ total: z.number(), moved: z.number() }).describe('bytes expected and moved so far'),
  downtimeMs: z.number().optional().describe('from the freeze to the target\'s start')
}

export const MigrationRecordSchema = named('MigrationRecord', z.looseObject(migrationStable) satisfies z.ZodType<Pick<MigrationRecord, keyof typeof migrationStable>>)

export const AuditEntrySchema = named('AuditEntry', z.looseObject({
  origin: z.string().describe('the peer id that wrote it'),
  seq: z.number().int().describe('its place in the origin\'s chain'),
  time,
  prev: z.string().describe('SHA-256 of the origin\'s previous entry'),
  kind: z.string(),
  migration: z.string().optional(),
  actor: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional()
}) satisfies z.ZodType<AuditEntry>)

export const OriginReportSchema = named('OriginReport', z.strictObject({
  origin: z.string(),
  entries: z.number().int(),
  head: z.number().int(),
  gaps: z.array(z.tuple([z.number().int(), z.number().int()])),
  breaks: z.array(z.strictObject({ seq: z.number().int(), reason: z.string() }))
}) satisfies z.ZodType<OriginReport>)

export const ProblemSchema = named('Problem', z.strictObject({
  type: z.url(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().describe('a sentence a person can act on'),
  code: z.string().regex(/^GOTO_ERR_[A-Z0-9_]+$/).describe('stable: match on this')
}) satisfies z.ZodType<Problem>)

export const HealthSchema = named('Health', z.strictObject({ status: z.literal('ok'), peerId: z.string() }))
export const PeerListSchema = named('PeerList', z.strictObject({ peers: z.array(PeerInfoSchema) }))
export const ContainerListSchema = named('ContainerList', z.strictObject({ containers: z.array(MeshContainerSchema) }))
export const JoinedSchema = named('Joined', z.strictObject({ peerId: z.string().describe('the member dialled') }))
export const LeavingSchema = named('Leaving', z.strictObject({ leaving: z.literal(true), peerId: z.string() }))
export const MigrationListSchema = named('MigrationList', z.strictObject({ migrations: z.array(MigrationRecordSchema) }))
export const LogPageSchema = named('LogPage', z.strictObject({ entries: z.array(AuditEntrySchema), next: z.number().int().optional().describe('the offset of the next page, when there is one') }))
export const LogReportSchema = named('LogReport', z.strictObject({ ok: z.boolean(), origins: z.array(OriginReportSchema), refused: z.number().int() }))

const DecisionSchema = named('RebalanceDecision', z.strictObject({
  at: time,
  action: z.enum(['move', 'hold']),
  reason: z.string(),
  container: z.string().optional(),
  target: z.string().optional().describe('the target node\'s name'),
  migration: z.string().optional()
}) satisfies z.ZodType<DecisionRecord>)

export const RebalanceStatusSchema = named('RebalanceStatus', z.strictObject({
  enabled: z.boolean().describe('config `rebalance.enabled`'),
  paused: z.boolean(),
  draining: z.boolean(),
  moving: z.string().optional().describe('the rebalance move in flight from this node'),
  last: DecisionSchema.optional().describe('the last decision')
}) satisfies z.ZodType<RebalanceStatus>)

const pair = z.tuple([z.number(), z.number()])

export const RebalancePlanSchema = named('RebalancePlan', z.strictObject({
  node: z.string(),
  status: RebalanceStatusSchema,
  decision: z.strictObject({
    action: z.enum(['move', 'hold']),
    reason: z.string(),
    container: z.string().optional(),
    target: z.string().optional(),
    targetName: z.string().optional(),
    bytes: z.number().optional()
  }),
  mean: z.number().describe('the mean load of the active nodes'),
  band: pair.describe('the watermarks around the mean'),
  loads: z.array(z.strictObject({ peerId: z.string(), name: z.string(), load: z.number(), containers: z.number().int() })),
  candidates: z.array(z.strictObject({
    container: z.string(),
    target: z.string(),
    targetName: z.string(),
    bytes: z.number(),
    gain: z.number(),
    sourceLoad: pair,
    targetLoad: pair
  })),
  skipped: z.array(z.strictObject({ container: z.string(), reason: z.string() }))
}) satisfies z.ZodType<PlanReport>)

export const StepSchema = named('RebalanceStep', z.strictObject({ decision: DecisionSchema }))

export const DrainReportSchema = named('DrainReport', z.strictObject({
  done: z.boolean().describe('every container left this node and runs at a peer'),
  moved: z.array(z.strictObject({ container: z.string(), target: z.string(), targetName: z.string(), migration: z.string().optional() })),
  stayed: z.array(z.strictObject({ container: z.string(), reason: z.string() })),
  startedAt: z.number(),
  endedAt: z.number()
}) satisfies z.ZodType<DrainReport>)
