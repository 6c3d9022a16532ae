import { GotoError } from '../errors.ts'

export class InvalidTimeError extends GotoError {
  override name = 'InvalidTimeError'
  override code = 'GOTO_ERR_INVALID_TIME'
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** An ISO 8601 time, or a span back from now (`90s`, `15m`, `1h`, `2d`, `1w`), as epoch ms. */
export function parseTime (value: string, what: string, now = Date.now()): number {
  const span = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(value.trim())
  if (span != null) return now - Number(span[1]) * (UNITS[span[2] ?? 's'] ?? 1000)
  const t = Date.parse(value)
  if (Number.isNaN(t)) throw new InvalidTimeError(`${what}: "${value}" is neither an ISO 8601 time nor a span like 30m, 1h or 2d`)
  return t
}

/** A span (`90s`, `15m`, `1h`, `2d`) as ms. */
export function parseDuration (value: string, what: string): number {
  const span = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(value.trim())
  if (span == null) throw new InvalidTimeError(`${what}: "${value}" is not a span like 90s, 15m or 1h`)
  return Number(span[1]) * (UNITS[span[2] ?? 's'] ?? 1000)
}
