/**
 * Where the API may be reached from. A loopback API is still reachable from a
 * browser on the same host through DNS rebinding (a page's own name, made to
 * resolve to 127.0.0.1), so every request's `Host` must be a loopback name or
 * one the node's config names; and the API binds beyond loopback only when the
 * config says so, since it serves plain HTTP (TLS belongs to a proxy in front).
 *
 * @example
 * ```ts
 * checkApiBind('0.0.0.0', { allowRemote: false })      // throws ConfigError
 * app.use(requireAllowedHost({ hosts: ['node1.example'] }))
 * ```
 */
import type { MiddlewareHandler } from 'hono'
import { ConfigError } from '../node/errors.ts'
import { problem } from './problem.ts'

export interface HostCheckInit {
  /** Names (without port) accepted in `Host` besides the loopback ones. @default [] */
  hosts?: string[]
}

/** A loopback name or address: `localhost`, `*.localhost`, 127.0.0.0/8, ::1. */
export function isLoopbackHost (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/** The name of a `Host` header, without its port and brackets kept off an IPv6 address. */
export function hostName (header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header)
  if (bracketed != null) return bracketed[1]!.toLowerCase()
  return header.replace(/:\d+$/, '').toLowerCase()
}

/** Refuses to start an API beyond loopback unless the config opts in. */
export function checkApiBind (host: string, options: { allowRemote: boolean }): void {
  if (isLoopbackHost(host) || options.allowRemote) return
  throw new ConfigError(`the API would listen on ${host}, beyond loopback, over plain HTTP; bind it to 127.0.0.1 and put a TLS proxy in front, or set "apiAllowRemote": true (GOTO_API_ALLOW_REMOTE=1) to accept the risk`)
}

/** Answers 421 to a request whose `Host` is neither loopback nor allowed. */
export function requireAllowedHost (init: HostCheckInit = {}): MiddlewareHandler {
  const allowed = new Set((init.hosts ?? []).map(h => hostName(h)))
  return async (c, next) => {
    const header = c.req.header('host') ?? new URL(c.req.url).host
    const name = hostName(header)
    if (!isLoopbackHost(name) && !allowed.has(name)) {
      return problem(c, 421, 'GOTO_ERR_HOST_NOT_ALLOWED', `this API does not answer to the host name "${name}"; add it to "apiHosts" in config.json if it is this node's`)
    }
    await next()
  }
}
