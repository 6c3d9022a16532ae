/**
 * The API's request rate limit: one bucket for the whole API, since every
 * caller is local and a runaway client or a token guesser is one process.
 * A request beyond it is answered 429 with `Retry-After`, before the token
 * is checked, so guessing tokens is bounded too.
 *
 * @example
 * ```ts
 * app.use(limitRequests({ rate: 50, burst: 100 }))
 * ```
 */
import type { MiddlewareHandler } from 'hono'
import { RateLimiter, type RateLimitInit } from '../node/rate-limit.ts'
import { problem } from './problem.ts'

/** Generous for people, scripts and a dashboard polling a few routes; tight for a loop gone wrong. */
export const API_RATE = { rate: 50, burst: 100 }

export function limitRequests (init: RateLimitInit = API_RATE): MiddlewareHandler {
  const limiter = new RateLimiter(init)
  return async (c, next) => {
    if (!limiter.take('api')) {
      const retry = limiter.retryAfter('api')
      return problem(c, 429, 'GOTO_ERR_RATE_LIMITED', `more than ${init.burst} requests at once or ${init.rate} a second; try again in ${retry} s`, { 'retry-after': String(retry) })
    }
    await next()
  }
}
