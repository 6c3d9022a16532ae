import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEFAULT_POLICY, type ContainerView, type NodeView } from '../../node/rebalance/decide.ts'
import { drain, type DrainOps, type DrainOutcome } from '../../node/rebalance/drain.ts'

const GiB = 1024 ** 3

function peer (id: string): NodeView {
  return { id, name: id, eligible: true, memAlloc: 16 * GiB, memTotal: 18 * GiB, memUsed: 0, cpus: 4, load1: 0, diskTotal: 0, diskUsed: 0, maxContainers: 100, memInFlight: 0, incoming: 0, outgoing: 0, containers: [] }
}

/**
 * One peer `t`; each migration commits (the container leaves `self`) and the
 * answer given is `answer(n)` for the n-th call; the container runs at `t`
 * `landAfter` ms after its commit.
 */
function ops (names: string[], answer: (n: number) => DrainOutcome, landAfter = 0, commits = true): DrainOps & { here: Set<string>, at: Map<string, number> } {
  let clock = 0
  let calls = 0
  const here = new Set(names)
  const at = new Map<string, number>()
  const container = (name: string): ContainerView => ({ name, running: true, labels: {}, mem: GiB, cpu: 0, bytes: 1e8 })
  return {
    here,
    at,
    containers: async () => [...here].map(container),
    nodes: () => [{ ...peer('self'), eligible: false }, peer('t')],
    migrate: async (name) => {
      clock += 1000
      if (commits) { here.delete(name); at.set(name, clock + landAfter) }
      return answer(calls++)
    },
    landed: async (name) => (at.get(name) ?? Infinity) <= clock && !here.has(name),
    locate: (name) => (at.get(name) ?? Infinity) <= clock ? 't' : undefined,
    sleep: async (ms) => { clock += ms },
    now: () => clock
  }
}

describe('drain', () => {
  it('waits for the last container to start at its target, and reports it moved', async () => {
    const o = ops(['a'], () => ({ ok: true, id: 'm1' }), 5000)
    const report = await drain('self', o, DEFAULT_POLICY, { deadline: 3600_000 })
    assert.equal(report.done, true, JSON.stringify(report.stayed))
    assert.deepEqual(report.moved.map(m => m.container), ['a'])
    assert.ok(report.endedAt >= 5000)
  })

  it('counts a container whose answer was lost after its commit as moved, once it runs at its target', async () => {
    const o = ops(['a', 'b'], n => n === 0 ? { ok: false, message: 'stream reset' } : { ok: true, id: `m${n}` }, 3000)
    const report = await drain('self', o, DEFAULT_POLICY, { deadline: 3600_000 })
    assert.equal(report.done, true, JSON.stringify(report.stayed))
    assert.deepEqual(report.moved.map(m => m.container).sort(), ['a', 'b'])
  })

  it('is not done when a container left after a lost answer but never starts at the target', async () => {
    const o = ops(['a'], () => ({ ok: false, code: 'GOTO_ERR_PEER_UNREACHABLE' }), Infinity)
    const report = await drain('self', o, DEFAULT_POLICY, { deadline: 600_000 })
    assert.equal(report.done, false)
    assert.deepEqual(report.stayed.map(s => s.container), ['a'])
  })
})
