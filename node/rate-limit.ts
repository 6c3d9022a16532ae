/**
 * Request rate limits: one token bucket per key (a peer id, a client
 * address), refilled at `rate` a second up to `burst`. A request that finds
 * its bucket empty is refused at once, never queued, so a flood costs the
 * node a map lookup per request. The map holds at most `maxKeys` buckets,
 * the least recently used going first, so a flood of keys cannot grow it.
 *
 * @example
 * ```ts
 * const offers = new RateLimiter({ rate: 2, burst: 20 })
 * if (!offers.take(peerId)) refuse('RATE_LIMITED')
 * ```
 */
export interface RateLimitInit {
  /** Requests a second, once the burst is spent. */
  rate: number
  /** Requests at once. */
  burst: number
  /** Buckets kept at most. @default 4096 */
  maxKeys?: number
  /** The clock, in milliseconds. @default performance.now */
  now?: () => number
}

interface Bucket { tokens: number, at: number }

export class RateLimiter {
  readonly #rate: number
  readonly #burst: number
  readonly #maxKeys: number
  readonly #now: () => number
  /** Insertion order is recency order: a bucket used is moved to the end. */
  readonly #buckets = new Map<string, Bucket>()

  constructor (init: RateLimitInit) {
    if (!(init.rate > 0) || !(init.burst >= 1)) throw new RangeError(`bad rate limit ${init.rate}/s, burst ${init.burst}`)
    this.#rate = init.rate
    this.#burst = init.burst
    this.#maxKeys = init.maxKeys ?? 4096
    this.#now = init.now ?? (() => performance.now())
  }

  /** Takes one request from the key's bucket; false when it is empty. */
  take (key: string): boolean {
    const now = this.#now()
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now }
    this.#buckets.delete(key)
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#rate / 1000)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    this.#buckets.set(key, bucket)
    if (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!)
    return allowed
  }

  /** Seconds until the key's bucket holds a request again. */
  retryAfter (key: string): number {
    const bucket = this.#buckets.get(key)
    if (bucket == null) return 0
    const now = this.#now()
    const tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#rate / 1000)
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.#rate)
  }
}
