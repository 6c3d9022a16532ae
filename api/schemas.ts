/**
 * The request schemas of the API, in one place: the routes check bodies and
 * parameters with them, and the OpenAPI document is generated from them, so
 * the two cannot disagree. A field added here is checked and documented at once.
 */
import { z } from 'zod'
import { ApiError } from './problem.ts'

/** The body as JSON. */
export async function readJson (req: { json: () => Promise<unknown> }): Promise<unknown> {
  try {
    return await req.json()
  } catch {
    throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', 'the body is not JSON')
  }
}

/** Check a body with its schema; the first issue becomes a 400 naming the field. */
export function parseBody<T> (schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue == null || issue.path.length === 0 ? 'body' : `body.${issue.path.join('.')}`
    throw new ApiError(400, 'GOTO_ERR_BAD_REQUEST', `${where}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

export const JoinBody = z.strictObject({
  addr: z.string().min(1).max(1024).describe('a multiaddr of a member, with /p2p/<peer id>')
})

export const MigrateBody = z.strictObject({
  container: z.string().min(1).max(256).describe('the container on this node: name or id'),
  target: z.string().min(1).max(256).describe('the target: peer id, node name or IP'),
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'a Docker container name').optional().describe('its name on the target (default: the same)'),
  consistency: z.enum(['freeze', 'stop']).optional().describe('freeze (pause, crash-consistent; default) or stop (graceful stop, application-consistent)'),
  stopTimeout: z.number().int().min(0).max(3600).optional().describe('seconds a graceful stop may take'),
  dryRun: z.boolean().optional().describe('plan, offer and admission only'),
  allowBindMounts: z.boolean().optional().describe('move a container that bind-mounts host paths'),
  bwlimit: z.union([z.number().positive(), z.string().max(32)]).optional().describe('bytes a second for this migration: a number, or a rate such as "10M" or "512k"'),
  precopy: z.boolean().optional().describe('false skips the round that sends the bulk while the container still runs'),
  async: z.boolean().optional().describe('answer 202 with the planned record at once')
})

export const DrainBody = z.strictObject({
  deadline: z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'a span like 90s, 15m or 1h').optional().describe('give up on what has not moved by then (default 15m)')
})

export const MigrationId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a migration id (UUID)')

/** The bounds of `GET /v1/log`'s paging. */
export const LOG_LIMIT_MAX = 10_000
export const LOG_LIMIT_DEFAULT = 1000
