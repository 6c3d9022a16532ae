import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { problem } from './problem.ts'

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * Bearer-token middleware. Both sides are hashed first so the comparison runs
 * in constant time whatever the length of what was sent.
 */
export function requireToken (options: { token: string }): MiddlewareHandler {
  const expected = digest(options.token)
  return async (c, next) => {
    const header = c.req.header('authorization') ?? ''
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    if (match == null || !timingSafeEqual(digest(match[1] ?? ''), expected)) {
      return problem(c, 401, 'GOTO_ERR_UNAUTHORIZED',
        match == null ? 'this call needs "Authorization: Bearer <token>"; the token is in the data dir\'s api.token' : 'the bearer token is wrong',
        { 'www-authenticate': 'Bearer realm="goto-node"' })
    }
    await next()
  }
}
