/** A frame or message on the migration stream does not decode, breaks the schema, or exceeds a cap. */
export class InvalidMigrateMessageError extends Error {
  override name = 'InvalidMigrateMessageError'
  code = 'GOTO_ERR_INVALID_MIGRATE_MESSAGE'
}

/** The peer sent a message the session's state does not allow now. */
export class UnexpectedMessageError extends Error {
  override name = 'UnexpectedMessageError'
  code = 'GOTO_ERR_UNEXPECTED_MESSAGE'
}

/** A signature over an offer or manifest does not hold for the sending peer's key. */
export class BadSignatureError extends Error {
  override name = 'BadSignatureError'
  code = 'GOTO_ERR_BAD_SIGNATURE'
}
