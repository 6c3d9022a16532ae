/**
 * The process entry of `goto-node`: run the CLI with this process's arguments
 * and exit with its code.
 */
import './threadpool.ts'
import { main } from './main.ts'

process.exitCode = await main(process.argv.slice(2))
