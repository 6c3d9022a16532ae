/** A log-sync frame does not decode, breaks the schema, or exceeds a cap. */
export class InvalidLogMessageError extends Error {
  override name = 'InvalidLogMessageError'
  code = 'GOTO_ERR_INVALID_LOG_MESSAGE'
}
