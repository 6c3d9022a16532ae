import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEFAULT_POLICY, plan, type ContainerView, type NodeView, type RebalancePolicy } from '../../node/rebalance/decide.ts'

const GiB = 1024 ** 3
const policy: RebalancePolicy = { ...DEFAULT_POLICY, weights: { memReserved: 1, memUsed: 0, cpu: 0, disk: 0, containers: 0 } }

function node (id: string, gib: number, labels: Record<string, string> = { 'goto.movable': 'true' }): NodeView {
  const containers: ContainerView[] = Array.from({ length: gib }, (_, i) => ({ name: `${id}-${i}`, running: true, labels, mem: GiB, cpu: 0, bytes: 1e8 }))
  return { id, name: id, eligible: true, memAlloc: 10 * GiB, memTotal: 12 * GiB, memUsed: 0, cpus: 4, load1: 0, diskTotal: 0, diskUsed: 0, maxContainers: 100, memInFlight: 0, incoming: 0, outgoing: 0, containers }
}

// loads 0.8, 0.5, 0.1, 0.4: mean 0.45, band 0.35–0.55; a is over, b above the mean within the band, c under
describe('plan: an over peer sheds first', () => {
  it('a node within the band holds while an over peer can shed into the under one', () => {
    const mesh = [node('a', 8), node('b', 5), node('c', 1), node('d', 4)]
    const b = plan('b', mesh, policy, 0)
    assert.equal(b.decision.action, 'hold')
    assert.match(b.decision.reason, /a is over and sheds first/)
    const a = plan('a', mesh, policy, 0)
    assert.equal(a.decision.action, 'move')
    assert.equal(a.decision.action === 'move' && a.decision.move.target.id, 'c')
  })

  it('pushes to the under peer when the over peer has nothing it may move', () => {
    for (const a of [node('a', 8, { 'goto.pinned': 'true' }), { ...node('a', 8), containers: node('a', 8).containers.map(c => ({ ...c, arrivedAt: 0 })) }]) {
      const b = plan('b', [a, node('b', 5), node('c', 1), node('d', 4)], policy, 60_000)
      assert.equal(b.decision.action, 'move', b.decision.reason)
      assert.equal(b.decision.action === 'move' && b.decision.move.target.id, 'c')
    }
  })

  it('takes a peer\'s own word on what it may shed: an over peer whose containers cool down does not hold the others back', () => {
    // as the agent sees a peer: bare containers (no arrival times), and the count the peer gossips
    const cooling = { ...node('a', 8), sheddable: 0 }
    const b = plan('b', [cooling, node('b', 5), node('c', 1), node('d', 4)], policy, 60_000)
    assert.equal(b.decision.action, 'move', b.decision.reason)
    const ready = { ...node('a', 8), sheddable: 2 }
    assert.match(plan('b', [ready, node('b', 5), node('c', 1), node('d', 4)], policy, 60_000).decision.reason, /a is over and sheds first/)
  })
})
