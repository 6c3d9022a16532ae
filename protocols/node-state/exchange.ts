/**
 * `/goto/state/1.0.0`: two peers swap full states over one stream, each with
 * the live members it knows (push-pull, as memberlist does on join). The
 * dialler writes first, the listener answers; each checks that the state it
 * got names the peer at the other end of the Noise session. Member hints are
 * only addresses to dial: a dial to `/p2p/<id>` proves who answers.
 * Used on every new connection (so a join is seen at once and the mesh closes
 * in one round) and on leave (so a leave is seen as a leave, not a failure).
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { EXCHANGE_TIMEOUT_MS, MAX_MESSAGE_BYTES } from './constants.ts'
import { StateOriginMismatchError } from './errors.ts'
import { decodeExchange, encodeExchange, type Exchange, type NodeState, type PeerHint } from './node-state.ts'

export interface ExchangeOptions {
  signal?: AbortSignal
}

export interface ExchangeSide {
  state: NodeState
  peers: PeerHint[]
}

function withTimeout (signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
  return signal != null ? AbortSignal.any([signal, timeout]) : timeout
}

const message = (side: ExchangeSide): Exchange => ({ v: 1, type: 'exchange', state: side.state, peers: side.peers })

async function readSide (lp: ReturnType<typeof lpStream>, remotePeer: string, signal: AbortSignal): Promise<ExchangeSide> {
  const got = decodeExchange((await lp.read({ signal })).subarray())
  if (got.state.peerId !== remotePeer) {
    throw new StateOriginMismatchError(`state names peer ${got.state.peerId} but came from ${remotePeer}`)
  }
  return { state: got.state, peers: got.peers }
}

/** Dialler's side: send ours, receive theirs. */
export async function exchangeState (stream: Stream, remotePeer: string, local: ExchangeSide, options: ExchangeOptions = {}): Promise<ExchangeSide> {
  const signal = withTimeout(options.signal)
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
  try {
    await lp.write(encodeExchange(message(local)), { signal })
    const remote = await readSide(lp, remotePeer, signal)
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
  local: () => ExchangeSide,
  onRemote: (remote: ExchangeSide) => void,
  options: ExchangeOptions = {}
): Promise<void> {
  const signal = withTimeout(options.signal)
  const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
  try {
    const remote = await readSide(lp, remotePeer, signal)
    onRemote(remote)
    await lp.write(encodeExchange(message(local())), { signal })
    await stream.close({ signal })
  } catch (err: any) {
    stream.abort(err)
    throw err
  }
}
