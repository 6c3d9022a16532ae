/**
 * Errors of the deploy tools. Each has a stable `code` (`GOTO_ERR_*`), shown
 * before a one-line sentence that says what to do; scripts match on the code.
 */

export class DeployError extends Error {
  override name = 'DeployError'
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

/** A flag is missing, unknown or malformed: exit code 2 and the usage line. */
export class UsageError extends DeployError {
  override name = 'UsageError'
  constructor (message: string) {
    super('GOTO_ERR_USAGE', message)
  }
}
