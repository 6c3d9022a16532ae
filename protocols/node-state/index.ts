/**
 * @packageDocumentation
 *
 * The node-state protocol: the NodeState and Heartbeat messages gossiped on a
 * mesh's state topic, their codec with size caps, and the direct
 * `/goto/state/1.0.0` exchange.
 *
 * @example
 * ```ts
 * import { encodeStateMessage, decodeStateMessage } from './protocols/node-state/index.ts'
 * const bytes = encodeStateMessage(state)          // throws when over MAX_MESSAGE_BYTES
 * const message = decodeStateMessage(bytes)        // throws InvalidStateMessageError on bad input
 * ```
 */
export * from './constants.ts'
export * from './errors.ts'
export * from './node-state.ts'
export * from './exchange.ts'
