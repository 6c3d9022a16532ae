import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MeshView, type StatusChange } from '../../node/mesh/view.ts'
import type { NodeState, Heartbeat } from '../../protocols/node-state/index.ts'

const timing = { heartbeatMs: 1000, suspectAfterMs: 3000, goneAfterMs: 2000, forgetAfterMs: 60_000 }
const capacity = { cpus: 2, load1: 0.1, memTotal: 100, memFree: 50, diskTotal: 100, diskFree: 40 }

function state (peerId: string, fields: Partial<NodeState> = {}): NodeState {
  return { v: 1, type: 'state', peerId, incarnation: 1000, seq: 1, time: 0, name: peerId, addrs: [], state: 'active', capacity, runtime: 'none', containers: [], ...fields }
}
function hb (peerId: string, fields: Partial<Heartbeat> = {}): Heartbeat {
  return { v: 1, type: 'hb', peerId, incarnation: 1000, seq: 1, time: 0, state: 'active', capacity, ...fields }
}
function recorder (view: MeshView): string[] {
  const seen: string[] = []
  view.addEventListener('peer:status', (e: CustomEvent<StatusChange>) => { seen.push(`${e.detail.peerId}:${e.detail.from}->${e.detail.to}`) })
  return seen
}

describe('mesh view', () => {
  it('takes a new peer as alive and only newer states after', () => {
    const view = new MeshView(timing)
    assert.deepEqual(view.applyState(state('a'), 0), { accepted: true, isNew: true })
    assert.equal(view.get('a')?.status, 'alive')
    assert.equal(view.applyState(state('a', { seq: 1 }), 10).accepted, false)
    assert.equal(view.applyState(state('a', { seq: 0 }), 10).accepted, false)
    assert.equal(view.applyState(state('a', { seq: 2, name: 'renamed' }), 10).accepted, true)
    assert.equal(view.get('a')?.state.name, 'renamed')
    // a later incarnation wins even with a lower seq (the node restarted)
    assert.equal(view.applyState(state('a', { incarnation: 2000, seq: 0 }), 20).accepted, true)
    assert.equal(view.applyState(state('a', { incarnation: 1000, seq: 99 }), 30).accepted, false)
  })

  it('walks alive → suspect → gone on silence, and back to alive when heard', () => {
    const view = new MeshView(timing)
    const seen = recorder(view)
    view.applyState(state('a'), 0)
    view.tick(3000)
    assert.equal(view.get('a')?.status, 'alive')
    view.tick(3001)
    assert.equal(view.get('a')?.status, 'suspect')
    view.tick(5001)
    assert.equal(view.get('a')?.status, 'suspect')
    view.tick(5002)
    assert.equal(view.get('a')?.status, 'gone')
    assert.equal(view.applyHeartbeat(hb('a'), 6000), false)
    assert.equal(view.get('a')?.status, 'alive')
    assert.deepEqual(seen, ['a:new->alive', 'a:alive->suspect', 'a:suspect->gone', 'a:gone->alive'])
  })

  it('makes a peer suspect at once when its connection drops, and gone after goneAfter', () => {
    const view = new MeshView(timing)
    view.applyState(state('a'), 0)
    view.connected('a', 0)
    view.disconnected('a', 100)
    assert.equal(view.get('a')?.status, 'suspect')
    view.tick(2100)
    assert.equal(view.get('a')?.status, 'suspect')
    view.tick(2101)
    assert.equal(view.get('a')?.status, 'gone')
  })

  it('shows a leave as left, never as a failure, and forgets it later', () => {
    const view = new MeshView(timing)
    const seen = recorder(view)
    view.applyState(state('a'), 0)
    view.connected('a', 0)
    view.applyState(state('a', { seq: 2, state: 'leaving' }), 100)
    view.disconnected('a', 110)
    view.tick(50_000)
    assert.equal(view.get('a')?.status, 'left')
    // stale heartbeats of the same run do not bring it back
    view.applyHeartbeat(hb('a', { seq: 1 }), 50_100)
    assert.equal(view.get('a')?.status, 'left')
    view.tick(60_200)
    assert.equal(view.get('a'), undefined)
    assert.deepEqual(seen, ['a:new->alive', 'a:alive->left', 'a:left->removed'])
  })

  it('brings a left peer back when it returns with a new incarnation', () => {
    const view = new MeshView(timing)
    view.applyState(state('a', { state: 'leaving' }), 0)
    assert.equal(view.get('a')?.status, 'left')
    view.applyState(state('a', { incarnation: 5000, seq: 0 }), 10)
    assert.equal(view.get('a')?.status, 'alive')
  })

  it('asks for the full state when a heartbeat is ahead of what it holds', () => {
    const view = new MeshView(timing)
    assert.equal(view.applyHeartbeat(hb('unknown'), 0), true)
    view.applyState(state('a', { seq: 3 }), 0)
    assert.equal(view.applyHeartbeat(hb('a', { seq: 3 }), 10), false)
    assert.equal(view.applyHeartbeat(hb('a', { seq: 4 }), 20), true)
    assert.equal(view.applyHeartbeat(hb('a', { incarnation: 1, seq: 9 }), 30), false, 'an older run is ignored')
    assert.equal(view.get('a')?.lastHeard, 20)
  })

  it('takes capacity from heartbeats', () => {
    const view = new MeshView(timing)
    view.applyState(state('a'), 0)
    view.applyHeartbeat(hb('a', { capacity: { ...capacity, memFree: 7 } }), 10)
    assert.equal(view.get('a')?.capacity.memFree, 7)
  })
})
