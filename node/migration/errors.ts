/** A migration failed or was refused, with a stable `GOTO_ERR_…` code. */
import { GotoError } from '../errors.ts'

export class MigrationError extends GotoError {
  override name = 'MigrationError'
  override code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}
