/**
 * `/goto/state/1.0.0`: two peers swap full states over one stream. The dialler
 * writes its state, the listener answers with its own; each checks that the
 * state it got names the peer at the other end of the Noise session.
 * Used on every new connection (so a join is seen at once) and on leave (so a
 * leave is seen as a leave, not as a failure).
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { EXCHANGE_TIMEOUT_MS, MAX_MESSAGE_BYTES } from './constants.ts'
import { InvalidStateMessageError, StateOriginMismatchError } from './errors.ts'
import { decodeStateMessage, encodeStateMessage, type NodeState } from './node-state.ts'

export interface ExchangeOptions {
  signal?: AbortSignal
}

function withTimeout (signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
  return signal != null ? AbortSignal.any([signal, timeout]) : timeout
}

async function readState (lp: ReturnType<typeof lpStream>, remotePeer: string, signal: AbortSignal): Promise<NodeState> {
  const message = decodeStateMessage((await lp.read({ signal })).subarray())
  if (message.type !== 'state') throw new InvalidStateMessageError(`expected a full state, got "${message.type}"`)
  if (message.peerId !== remotePeer) {
    throw new StateOriginMismatchError(`state names peer ${message.peerId} but came from ${remotePeer}`)
  }
  return message
}

/** Dialler's side: send ours, receive theirs. */
export async function exchangeState (stream: Stream, remotePeer: string, local: NodeState, options: ExchangeOptions = {}): Promise<NodeState> {
  const signal = withTimeout(options.signal)
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
  try {
    await lp.write(encodeStateMessage(local), { signal })
    const remote = await readState(lp, remotePeer, signal)
    await stream.close({ signal })
    return remote
  } catch (err: any) {
    stream.abort(err)
    throw err
  }
}

/** Listener's side: receive theirs, hand it over, answer with ours. */
export async function answerStateExchange (
  stream: Stream,
  remotePeer: string,
  local: () => NodeState,
  onRemote: (state: NodeState) => void,
  options: ExchangeOptions = {}
): Promise<void> {
  const signal = withTimeout(options.signal)
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
  try {
    const remote = await readState(lp, remotePeer, signal)
    onRemote(remote)
    await lp.write(encodeStateMessage(local()), { signal })
    await stream.close({ signal })
  } catch (err: any) {
    stream.abort(err)
    throw err
  }
}
