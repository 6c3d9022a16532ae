/**
 * Bandwidth limits: a token bucket per limit, refilled at `rate` bytes a
 * second and holding at most a tenth of a second's worth (so a limit is kept
 * over any window longer than that). A transfer takes from every bucket that
 * applies (its migration's and the node's) before it writes.
 */
export class TokenBucket {
  readonly rate: number
  readonly #burst: number
  #tokens: number
  #at = performance.now()
  /** Takers queue so one big take cannot be starved by many small ones. */
  #queue: Promise<void> = Promise.resolve()

  constructor (bytesPerSecond: number) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`bad rate ${bytesPerSecond}`)
    this.rate = bytesPerSecond
    this.#burst = Math.max(64 * 1024, bytesPerSecond / 10)
    this.#tokens = this.#burst
  }

  #refill (): void {
    const now = performance.now()
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.rate / 1000)
    this.#at = now
  }

  /** Wait until `bytes` may be sent. */
  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(async () => {
      this.#refill()
      this.#tokens -= bytes
      if (this.#tokens >= 0) return
      const waitMs = -this.#tokens * 1000 / this.rate
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, waitMs)
        signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
      })
    })
    this.#queue = turn.catch(() => {})
    await turn
  }
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 }

/** A size in bytes from `512M`, `2GiB`, `1.5g` or a plain number of bytes. */
export function parseSize (value: string | number): number {
  if (typeof value === 'number') {
    if (!(value >= 0) || !Number.isFinite(value)) throw new RangeError(`size ${value} is not a number of bytes`)
    return value
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?\s*$/i.exec(value)
  if (m == null) throw new RangeError(`"${value}" is not a size (e.g. 512M, 2GiB, 1.5g: bytes)`)
  return Math.round(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!)
}

/**
 * A rate in bytes a second from `10M`, `512k`, `1.5MiB`, `20MB/s` or a plain
 * number; 0 or an empty string mean no limit (undefined).
 */
export function parseRate (value: string | number | undefined): number | undefined {
  if (value == null || value === '' || value === 0 || value === '0') return undefined
  if (typeof value === 'number') {
    if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`bandwidth limit ${value} is not a positive number of bytes a second`)
    return value
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?(?:\/s)?\s*$/i.exec(value)
  if (m == null) throw new RangeError(`bandwidth limit "${value}" is not a rate (e.g. 10M, 512k, 1.5MiB: bytes a second)`)
  const rate = Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!
  return rate > 0 ? rate : undefined
}
