/**
 * `go-to`: the original design's command line — `show-log [-s] [-t]`,
 * `list-containers [regexp]`, `migrate [-async] -s <source_name>
 * [-t <target_name>] <target_host_or_ip>`, `rollback <migration_id>` — run by
 * the same commands as `goto-node`, against the local agent. The original
 * wrote `-async` with one dash; it means `--async`.
 *
 * @example
 * ```sh
 * go-to migrate -async -s web-1 10.0.0.2
 * ```
 */
import { commands, runProgram, type Command, type Program } from './main.ts'

/** The original commands and their original usage lines. */
const ORIGINAL: Record<string, string> = {
  'show-log': 'go-to show-log [-s SINCE] [-t TILL] [--json]',
  'list-containers': 'go-to list-containers [regexp] [--json]',
  migrate: 'go-to migrate [-async] -s <source_name> [-t <target_name>] <target_host_or_ip>',
  rollback: 'go-to rollback <migration_id>'
}

function original (name: string, usage: string): [string, Command] {
  const command = commands[name]
  if (command == null) throw new Error(`goto-node has no command ${name}`)
  return [name, { ...command, usage }]
}

export const GO_TO: Program = {
  name: 'go-to',
  about: 'the original Go-To commands, on the local goto-node agent',
  commands: Object.fromEntries(Object.entries(ORIGINAL).map(([name, usage]) => original(name, usage)))
}

export async function goTo (argv: string[]): Promise<number> {
  return await runProgram(GO_TO, argv.map(arg => arg === '-async' ? '--async' : arg))
}
