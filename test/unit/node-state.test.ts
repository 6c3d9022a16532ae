import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { streamPair } from '@libp2p/utils'
import {
  decodeStateMessage, encodeStateMessage, exchangeState, answerStateExchange, MAX_MESSAGE_BYTES, MAX_CONTAINERS,
  type NodeState
} from '../../protocols/node-state/index.ts'

const capacity = { cpus: 2, load1: 0.1, memTotal: 100, memFree: 50, diskTotal: 100, diskFree: 40 }
const container = { id: 'a'.repeat(64), name: 'web-1', image: 'busybox', state: 'running' as const, created: 1, sizeRw: 0, sizeRootFs: 10, labels: { app: 'web' }, volumes: ['data'], movable: true }

function state (peerId: string, fields: Partial<NodeState> = {}): NodeState {
  return { v: 1, type: 'state', peerId, incarnation: 1, seq: 1, time: 0, name: peerId, addrs: ['/ip4/127.0.0.1/tcp/1'], state: 'active', capacity, runtime: 'none', containers: [container], ...fields }
}
const bytesOf = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))

describe('node-state codec', () => {
  it('round-trips a state and a heartbeat', () => {
    const s = state('peer-a')
    assert.deepEqual(decodeStateMessage(encodeStateMessage(s)), s)
    const hb = { v: 1 as const, type: 'hb' as const, peerId: 'peer-a', incarnation: 1, seq: 2, time: 3, state: 'draining' as const, capacity }
    assert.deepEqual(decodeStateMessage(encodeStateMessage(hb)), hb)
  })

  it('refuses what is not JSON, not UTF-8, or breaks the schema, with a clear error', () => {
    assert.throws(() => decodeStateMessage(new Uint8Array([0xff, 0xfe])), { code: 'GOTO_ERR_INVALID_STATE_MESSAGE' })
    assert.throws(() => decodeStateMessage(bytesOf('x').subarray(1)), { code: 'GOTO_ERR_INVALID_STATE_MESSAGE' })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), v: 2 })), { code: 'GOTO_ERR_INVALID_STATE_MESSAGE', message: /"v"/ })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), state: 'sleeping' })), { message: /"state"/ })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), extra: 1 })), { code: 'GOTO_ERR_INVALID_STATE_MESSAGE' })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), capacity: { ...capacity, memFree: -1 } })), { message: /capacity\.memFree/ })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), containers: [{ ...container, id: '../etc' }] })), { message: /containers\.0\.id/ })
    assert.throws(() => decodeStateMessage(bytesOf({ type: 'other', v: 1 })), { code: 'GOTO_ERR_INVALID_STATE_MESSAGE' })
  })

  it('refuses oversized messages and over-long lists', () => {
    assert.throws(() => decodeStateMessage(new Uint8Array(MAX_MESSAGE_BYTES + 1)), { code: 'GOTO_ERR_STATE_MESSAGE_TOO_LARGE' })
    const many = Array.from({ length: MAX_CONTAINERS + 1 }, (_, i) => ({ ...container, id: i.toString(16).padStart(12, '0'), labels: {}, volumes: [] }))
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), containers: many })), { message: /containers/ })
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), addrs: Array(33).fill('/ip4/1.2.3.4/tcp/1') })), { message: /addrs/ })
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']))
    assert.throws(() => decodeStateMessage(bytesOf({ ...state('a'), containers: [{ ...container, labels }] })), { message: /labels/ })
    const huge = state('a', { containers: Array.from({ length: 4000 }, (_, i) => ({ ...container, id: i.toString(16).padStart(64, '0'), name: 'n'.repeat(256) })) })
    assert.throws(() => encodeStateMessage(huge), { code: 'GOTO_ERR_STATE_MESSAGE_TOO_LARGE' })
  })
})

describe('/goto/state/1.0.0 exchange', () => {
  it('swaps full states and checks each names the peer at the other end', async () => {
    const [outbound, inbound] = await streamPair()
    let got: NodeState | undefined
    const hints = [{ peerId: 'peer-c', addrs: ['/ip4/127.0.0.3/tcp/1/p2p/peer-c'] }]
    const answering = answerStateExchange(inbound, 'peer-a', () => ({ state: state('peer-b'), peers: hints }), (side) => { got = side.state })
    const remote = await exchangeState(outbound, 'peer-b', { state: state('peer-a'), peers: [] })
    await answering
    assert.equal(remote.state.peerId, 'peer-b')
    assert.deepEqual(remote.peers, hints)
    assert.equal(got?.peerId, 'peer-a')
  })

  it('refuses a state that names another peer than the sender', async () => {
    const [outbound, inbound] = await streamPair()
    const answering = answerStateExchange(inbound, 'peer-a', () => ({ state: state('peer-b'), peers: [] }), () => { assert.fail('must not be taken') })
    const sending = exchangeState(outbound, 'peer-b', { state: state('peer-mallory'), peers: [] })
    await assert.rejects(answering, { code: 'GOTO_ERR_STATE_ORIGIN_MISMATCH' })
    await assert.rejects(sending)
  })

  it('refuses a frame over the size cap before reading it whole', async () => {
    const [outbound, inbound] = await streamPair()
    const answering = answerStateExchange(inbound, 'peer-a', () => ({ state: state('peer-b'), peers: [] }), () => { assert.fail('must not be taken') })
    // a varint length prefix announcing 2 MiB, then some bytes
    const prefix = [0x80, 0x80, 0x80, 0x01]
    outbound.send(new Uint8Array([...prefix, 1, 2, 3]))
    await assert.rejects(answering, (err: Error) => /length|too (long|large)|InvalidDataLength/i.test(`${err.name} ${err.message}`))
    outbound.abort(new Error('done'))
  })
})
