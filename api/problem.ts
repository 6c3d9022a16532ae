/**
 * Errors as RFC 9457 problem details. Every `GOTO_ERR_*` code maps to an HTTP
 * status; the body carries the code, so clients match on it, and a sentence a
 * person can act on.
 */
import { HTTPException } from 'hono/http-exception'
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'

export const PROBLEM_TYPE_BASE = 'https://go-to.dev/problems/'

const STATUS_OF_CODE: Record<string, ContentfulStatusCode> = {
  GOTO_ERR_UNAUTHORIZED: 401,
  GOTO_ERR_NOT_FOUND: 404,
  GOTO_ERR_BAD_REQUEST: 400,
  GOTO_ERR_INVALID_MULTIADDR: 400,
  GOTO_ERR_INVALID_PATTERN: 400,
  GOTO_ERR_INVALID_TIME: 400,
  GOTO_ERR_DIAL: 502,
  GOTO_ERR_NOT_RUNNING: 503,
  GOTO_ERR_UNKNOWN_CONTAINER: 404,
  GOTO_ERR_UNKNOWN_TARGET: 404,
  GOTO_ERR_UNKNOWN_MIGRATION: 404,
  GOTO_ERR_AMBIGUOUS_TARGET: 400,
  GOTO_ERR_HOST_PATH: 422,
  GOTO_ERR_TARGET_UNAVAILABLE: 409,
  GOTO_ERR_MIGRATION_IN_PROGRESS: 409,
  GOTO_ERR_ALREADY_COMMITTED: 409,
  GOTO_ERR_BAD_STATE: 409,
  GOTO_ERR_NO_ROLLBACK_POINT: 409,
  GOTO_ERR_ROLLBACK_FAILED: 502
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  code: string
}

export function problem (c: Context, status: ContentfulStatusCode, code: string, detail: string, headers: Record<string, string> = {}): Response {
  const body: Problem = {
    type: PROBLEM_TYPE_BASE + code.replace(/^GOTO_ERR_/, '').toLowerCase().replaceAll('_', '-'),
    title: code,
    status,
    detail,
    code
  }
  return c.body(JSON.stringify(body), status, { 'content-type': 'application/problem+json', ...headers })
}

/** Throw from a handler to answer with a problem of this code. */
export class ApiError extends HTTPException {
  readonly code: string
  constructor (status: ContentfulStatusCode, code: string, message: string) {
    super(status, { message })
    this.code = code
  }
}

export function toProblem (err: unknown, c: Context): Response {
  if (err instanceof ApiError) return problem(c, err.status as ContentfulStatusCode, err.code, err.message)
  if (err instanceof HTTPException) return problem(c, err.status as ContentfulStatusCode, 'GOTO_ERR_HTTP', err.message)
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && code.startsWith('GOTO_ERR')) {
    return problem(c, STATUS_OF_CODE[code] ?? 500, code, (err as Error).message)
  }
  return problem(c, 500, 'GOTO_ERR_INTERNAL', 'internal error; the agent log has the details')
}
