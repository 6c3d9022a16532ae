/**
 * The shared frame of the deploy command lines (`deploy/aws/cli.ts`,
 * `deploy/azure/cli.ts`, `deploy/vpn/cli.ts`): commands of one or two words,
 * `--help` on each, exit codes 0 done, 1 failed, 2 usage error, and every error
 * as one line `PROGRAM COMMAND: GOTO_ERR_…: sentence`.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli('goto-aws', { check: { … } }, process.argv.slice(2), processIo())
 * ```
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { DeployError, UsageError } from './errors.ts'

export type Options = NonNullable<ParseArgsConfig['options']>
export type Values = Record<string, string | boolean | string[] | undefined>

/** Where a command writes and what environment it reads; tests pass their own. */
export interface Io {
  out(line: string): void
  err(line: string): void
  env: NodeJS.ProcessEnv
}

export interface Command {
  summary: string
  usage: string
  /** Option lines shown by --help. */
  details: string
  options: Options
  /** How many positionals: [min, max]. */
  positionals: [number, number]
  run(values: Values, positionals: string[], io: Io): Promise<number>
}

export function processIo (): Io {
  return {
    out: line => { process.stdout.write(line + '\n') },
    err: line => { process.stderr.write(line + '\n') },
    env: process.env
  }
}

/** A string flag's value, or undefined. */
export const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined

/** A repeatable flag's values, or []. */
export const list = (v: unknown): string[] => Array.isArray(v) ? v as string[] : []

/** A string flag that must be there. */
export function required (values: Values, name: string): string {
  const v = str(values[name])
  if (v == null || v === '') throw new UsageError(`--${name} is required`)
  return v
}

/** A positive integer flag with a default. */
export function integer (values: Values, name: string, fallback: number): number {
  const v = str(values[name])
  if (v == null) return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, not "${v}"`)
  return n
}

function helpText (program: string, about: string, commands: Record<string, Command>): string {
  const width = Math.max(...Object.keys(commands).map(k => k.length))
  return [
    `${program}: ${about}`,
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    `"${program} COMMAND --help" tells more. Exit codes: 0 done, 1 failed, 2 usage error.`
  ].join('\n')
}

function commandHelp (program: string, name: string, c: Command): string {
  return `${program} ${name}: ${c.summary}\n\nusage: ${c.usage}\n\n${c.details}`
}

/** Run one command line; resolves to the exit code. */
export async function runCli (program: string, about: string, commands: Record<string, Command>, argv: string[], io: Io): Promise<number> {
  const [first, second] = argv
  if (first == null || first === 'help' || first === '--help' || first === '-h') {
    io.out(helpText(program, about, commands))
    return 0
  }
  const name = second != null && commands[`${first} ${second}`] != null ? `${first} ${second}` : first
  const command = commands[name]
  if (command == null) {
    io.err(`${program}: GOTO_ERR_USAGE: unknown command "${first}"\n\n${helpText(program, about, commands)}`)
    return 2
  }
  const rest = argv.slice(name.split(' ').length)
  try {
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
    } catch (err: any) {
      throw new UsageError(err.message)
    }
    if (parsed.values.help === true) {
      io.out(commandHelp(program, name, command))
      return 0
    }
    const [min, max] = command.positionals
    if (parsed.positionals.length < min) throw new UsageError('missing argument')
    if (parsed.positionals.length > max) throw new UsageError(`unexpected argument "${parsed.positionals[max] ?? ''}"`)
    return await command.run(parsed.values as Values, parsed.positionals, io)
  } catch (err: any) {
    if (err instanceof UsageError) {
      io.err(`${program} ${name}: ${err.code}: ${err.message}\nusage: ${command.usage}`)
      return 2
    }
    const code = err instanceof DeployError ? err.code : 'GOTO_ERR_UNEXPECTED'
    io.err(`${program} ${name}: ${code}: ${oneLine(err?.message ?? String(err))}`)
    if (io.env.GOTO_DEBUG === '1' && err?.stack != null) io.err(err.stack)
    return 1
  }
}

/** Cloud APIs answer with multi-line messages; an error here is one line. */
export function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
