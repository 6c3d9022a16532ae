/**
 * The process entry of `go-to`: run the original commands with this
 * process's arguments and exit with their code.
 */
import { goTo } from './go-to.ts'

process.exitCode = await goTo(process.argv.slice(2))
