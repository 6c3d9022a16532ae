/** A message on the state topic or stream does not decode or breaks the schema. */
export class InvalidStateMessageError extends Error {
  override name = 'InvalidStateMessageError'
  code = 'GOTO_ERR_INVALID_STATE_MESSAGE'
}

/** A message is larger than MAX_MESSAGE_BYTES. */
export class StateMessageTooLargeError extends Error {
  override name = 'StateMessageTooLargeError'
  code = 'GOTO_ERR_STATE_MESSAGE_TOO_LARGE'
}

/** A state names another peer than the one that sent or signed it. */
export class StateOriginMismatchError extends Error {
  override name = 'StateOriginMismatchError'
  code = 'GOTO_ERR_STATE_ORIGIN_MISMATCH'
}
