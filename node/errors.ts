/**
 * Errors of the agent. Each has a stable `code` (`GOTO_ERR_*`) that the API
 * and the CLI show beside a sentence a person can act on; code matches on
 * `name` or `code`, never on the message.
 */

export class GotoError extends Error {
  override name = 'GotoError'
  code = 'GOTO_ERR'
}

/** The config file, an environment variable or a flag holds a value we cannot use. */
export class ConfigError extends GotoError {
  override name = 'ConfigError'
  override code = 'GOTO_ERR_CONFIG'
}

/** The data dir is missing, incomplete, or its secrets are readable by others. */
export class DataDirError extends GotoError {
  override name = 'DataDirError'
  override code = 'GOTO_ERR_DATA_DIR'
}

/** A multiaddr given by a person or a peer does not parse or has no peer id. */
export class InvalidMultiaddrError extends GotoError {
  override name = 'InvalidMultiaddrError'
  override code = 'GOTO_ERR_INVALID_MULTIADDR'
}

/** The Docker Engine does not answer on the configured socket or URL. */
export class RuntimeUnavailableError extends GotoError {
  override name = 'RuntimeUnavailableError'
  override code = 'GOTO_ERR_DOCKER_UNREACHABLE'
}

/** The LevelDB store was written by another layout version. */
export class StoreVersionError extends GotoError {
  override name = 'StoreVersionError'
  override code = 'GOTO_ERR_STORE_VERSION'
}

/** A dial to a peer failed (refused, timed out, or the handshake failed). */
export class DialError extends GotoError {
  override name = 'DialError'
  override code = 'GOTO_ERR_DIAL'
}

/** The agent is not running, or is already leaving. */
export class NotRunningError extends GotoError {
  override name = 'NotRunningError'
  override code = 'GOTO_ERR_NOT_RUNNING'
}

/** A regular expression given by a person does not compile. */
export class InvalidPatternError extends GotoError {
  override name = 'InvalidPatternError'
  override code = 'GOTO_ERR_INVALID_PATTERN'
}
