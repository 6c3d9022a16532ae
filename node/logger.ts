/**
 * A small namespaced logger. Lines go to stderr as
 * `2026-11-27T02:38:22.000Z INFO goto:mesh message key=value`.
 * `GOTO_LOG_LEVEL` (debug, info, warn, error, silent) sets the threshold.
 * Secrets never reach a logger: callers pass ids and counts, not tokens.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export type LogFields = Record<string, string | number | boolean | undefined | null>

export interface Logger {
  readonly name: string
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
  /** A child logger: `goto:mesh` → `goto:mesh:gossip`. */
  child(scope: string): Logger
}

export interface LoggerInit {
  /** @default process.env.GOTO_LOG_LEVEL ?? 'info' */
  level?: LogLevel
  /** @default a writer to process.stderr */
  write?: (line: string) => void
}

function parseLevel (value: string | undefined): LogLevel {
  return value != null && value in RANK ? value as LogLevel : 'info'
}

function formatFields (fields: LogFields | undefined): string {
  if (fields == null) return ''
  let out = ''
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue
    const text = String(value)
    out += ` ${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`
  }
  return out
}

export function createLogger (name: string, init: LoggerInit = {}): Logger {
  const threshold = RANK[init.level ?? parseLevel(process.env.GOTO_LOG_LEVEL)]
  const write = init.write ?? ((line: string) => { process.stderr.write(line + '\n') })
  const emit = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return
    write(`${new Date().toISOString()} ${level.toUpperCase()} ${name} ${message}${formatFields(fields)}`)
  }
  return {
    name,
    debug: (m, f) => { emit('debug', m, f) },
    info: (m, f) => { emit('info', m, f) },
    warn: (m, f) => { emit('warn', m, f) },
    error: (m, f) => { emit('error', m, f) },
    child: (scope) => createLogger(`${name}:${scope}`, init)
  }
}

/** The message of anything thrown, for a log field. */
export function errorMessage (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message
  }
  return String(err)
}
