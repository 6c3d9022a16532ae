/**
 * The rebalancing rules and the drain loop, on meshes written by hand: which
 * move a node picks and why, when it holds, what a target refuses, and a
 * drain through refusals, lost answers and a deadline.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { admit, DEFAULT_POLICY, loadOf, plan, placeFor, type ContainerView, type NodeView, type RebalancePolicy } from '../../node/rebalance/decide.ts'
import { drain, type DrainOps, type DrainOutcome } from '../../node/rebalance/drain.ts'
import { resolveConfig } from '../../node/config.ts'

const GiB = 1024 ** 3
const MiB = 1024 ** 2
const policy: RebalancePolicy = { ...DEFAULT_POLICY, weights: { memReserved: 1, memUsed: 0, cpu: 0, disk: 0, containers: 0 }, movable: 'all' }

function box (name: string, mem: number, extra: Partial<ContainerView> = {}): ContainerView {
  return { name, running: true, labels: {}, mem, cpu: 0, bytes: 100 * MiB, ...extra }
}

function node (id: string, containers: ContainerView[], extra: Partial<NodeView> = {}): NodeView {
  return {
    id,
    name: id,
    eligible: true,
    memAlloc: 10 * GiB,
    memTotal: 16 * GiB,
    memUsed: 4 * GiB,
    cpus: 4,
    load1: 0.5,
    diskTotal: 100 * GiB,
    diskUsed: 10 * GiB,
    maxContainers: 100,
    memInFlight: 0,
    incoming: 0,
    outgoing: 0,
    containers,
    ...extra
  }
}

/** Apply a move to the views, as the mesh would see it after. */
function apply (nodes: NodeView[], from: string, to: string, name: string, at: number): void {
  const source = nodes.find(n => n.id === from) as NodeView
  const target = nodes.find(n => n.id === to) as NodeView
  const c = source.containers.find(x => x.name === name) as ContainerView
  source.containers = source.containers.filter(x => x !== c)
  target.containers.push({ ...c, arrivedAt: at, cameFrom: from })
}

describe('rebalance: plan', () => {
  it('an over node moves the container that evens the mesh most, to the lightest peer', () => {
    const nodes = [
      node('a', [box('a1', 2 * GiB), box('a2', 2 * GiB), box('a3', 3 * GiB), box('a4', 1 * GiB)]),
      node('b', [box('b1', 1 * GiB)]),
      node('c', [box('c1', 3 * GiB)])
    ]
    const p = plan('a', nodes, policy, 0)
    assert.equal(p.decision.action, 'move')
    if (p.decision.action !== 'move') return
    // a at 0.8, b 0.1, c 0.3; mean 0.4: a 3 GiB container to b evens it best
    assert.equal(p.decision.move.container.name, 'a3')
    assert.equal(p.decision.move.target.id, 'b')
    assert.match(p.decision.reason, /over the high watermark/)
    assert.ok(Math.abs(p.mean - 0.4) < 1e-9)
  })

  it('among moves within a tenth of the best gain, takes the one that carries fewest bytes', () => {
    const nodes = [
      node('a', [box('big', 2 * GiB, { bytes: 900 * MiB }), box('small', 2 * GiB, { bytes: 10 * MiB }), box('y', 2 * GiB)]),
      node('b', [])
    ]
    const p = plan('a', nodes, policy, 0)
    assert.equal(p.decision.action === 'move' && p.decision.move.container.name, 'small')
  })

  it('holds within the watermarks, while a move of its own is in flight, and in its node cooldown', () => {
    const even = [node('a', [box('a1', 3 * GiB)]), node('b', [box('b1', 2.5 * GiB)])]
    const hold = plan('a', even, policy, 0)
    assert.equal(hold.decision.action, 'hold')
    assert.match(hold.decision.reason, /within the watermarks/)
    const skewed = (): NodeView[] => [node('a', [box('a1', 4 * GiB), box('a2', 4 * GiB)]), node('b', [])]
    assert.equal(plan('a', skewed(), policy, 0).decision.action, 'move')
    const busy = skewed()
    ;(busy[0] as NodeView).outgoing = 1
    assert.match(plan('a', busy, policy, 0).decision.reason, /in flight/)
    assert.match(plan('a', skewed(), policy, 30_000, { lastMoveAt: 0 }).decision.reason, /moved a container 30 s ago/)
    assert.equal(plan('a', skewed(), policy, policy.nodeCooldownMs + 1, { lastMoveAt: 0 }).decision.action, 'move')
    assert.match(plan('a', skewed(), { ...policy, enabled: false }, 0).decision.reason, /off in this node's config/)
  })

  it('keeps pinned, unlabelled (by default) and cooling containers, and says why', () => {
    const nodes = [
      node('a', [
        box('pinned', 4 * GiB, { labels: { 'goto.pinned': 'true' } }),
        box('plain', 2 * GiB),
        box('fresh', 2 * GiB, { labels: { 'goto.movable': 'true' }, arrivedAt: 1000, cameFrom: 'c' })
      ]),
      node('b', [])
    ]
    const p = plan('a', nodes, DEFAULT_POLICY, 60_000)
    assert.equal(p.decision.action, 'hold')
    assert.deepEqual(p.skipped.map(s => [s.container, s.reason.split(';')[0]]), [
      ['pinned', 'pinned'],
      ['plain', 'not labelled goto.movable=true'],
      ['fresh', 'arrived 59 s ago']
    ])
    const later = plan('a', nodes, DEFAULT_POLICY, 1000 + DEFAULT_POLICY.containerCooldownMs)
    assert.equal(later.decision.action === 'move' && later.decision.move.container.name, 'fresh')
  })

  it('never sends a container back to the node it came from within returnAfterMs, and skips busy or full targets', () => {
    const back = [node('a', [box('a1', 4 * GiB, { arrivedAt: 0, cameFrom: 'b' }), box('a2', 2 * GiB, { labels: { 'goto.pinned': 'true' } })]), node('b', [])]
    const now = policy.containerCooldownMs + 1
    assert.equal(plan('a', back, policy, now).decision.action, 'hold')
    assert.equal(plan('a', back, policy, policy.returnAfterMs + 1).decision.action, 'move')
    const busy = [node('a', [box('a1', 4 * GiB), box('a2', 4 * GiB)]), node('b', [], { incoming: 1 })]
    assert.match(plan('a', busy, policy, 0).decision.reason, /every peer below the mean is taking a move or moved one lately/)
    const cooling = [node('a', [box('a1', 4 * GiB), box('a2', 4 * GiB)]), node('b', [], { lastMoveAt: 100_000 })]
    assert.equal(plan('a', cooling, policy, 100_000 + policy.nodeCooldownMs - 1).decision.action, 'hold', 'a peer in its node cooldown would refuse')
    assert.equal(plan('a', cooling, policy, 100_000 + policy.nodeCooldownMs).decision.action, 'move')
    const full = [node('a', [box('a1', 8 * GiB)]), node('b', [], { memAlloc: 1 * GiB })]
    assert.equal(plan('a', full, policy, 0).decision.action, 'hold')
  })

  it('on a steady mesh, every node deciding in turn ends quiet with no container back where it was', () => {
    const sizes = [3, 1, 2, 4, 1, 2, 3, 1, 1, 2, 4, 3]
    const nodes = [
      node('a', sizes.slice(0, 8).map((s, i) => box(`a${i}`, s * GiB / 2))),
      node('b', sizes.slice(8).map((s, i) => box(`b${i}`, s * GiB / 2))),
      node('c', []),
      node('d', [box('d0', GiB / 2)])
    ]
    const before = Math.max(...nodes.map(n => loadOf(n, policy.weights))) - Math.min(...nodes.map(n => loadOf(n, policy.weights)))
    const quick: RebalancePolicy = { ...policy, nodeCooldownMs: 0, containerCooldownMs: 0 }
    const visits = new Map<string, string[]>()
    let moves = 0
    for (let round = 0, quiet = false; !quiet; round++) {
      assert.ok(round < 100, 'it ends')
      quiet = true
      for (const n of nodes) {
        const p = plan(n.id, nodes, quick, round * 1000)
        if (p.decision.action !== 'move') continue
        const m = p.decision.move
        const path = visits.get(m.container.name) ?? [n.id]
        assert.ok(!path.includes(m.target.id), `${m.container.name} goes back to ${m.target.id}`)
        visits.set(m.container.name, [...path, m.target.id])
        apply(nodes, n.id, m.target.id, m.container.name, round * 1000)
        moves++
        quiet = false
      }
    }
    const after = nodes.map(n => loadOf(n, policy.weights))
    const mean = after.reduce((s, x) => s + x, 0) / after.length
    assert.ok(moves > 0)
    assert.ok(Math.max(...after) - Math.min(...after) < before)
    for (const l of after) assert.ok(l <= mean + policy.high + 1e-9, `${l} over ${mean}`)
  })
})

describe('rebalance: a peer that gossips impossible figures', () => {
  it('is left out of the mean and never chosen, so it cannot make every node hold', () => {
    const liar = node('liar', [box('x', 1e300)], { memAlloc: 1 })
    const honest = [node('a', [box('a1', 4 * GiB), box('a2', 4 * GiB)]), node('b', [])]
    const p = plan('a', [...honest, liar], policy, 0)
    assert.equal(p.decision.action === 'move' && p.decision.move.target.id, 'b')
    assert.equal(p.loads.liar, undefined)
    assert.ok(Math.abs(p.mean - 0.4) < 1e-9)
    assert.equal('target' in placeFor(box('w', GiB), 'a', [liar, { ...node('a', []), eligible: false }], policy), false)
  })
})

describe('rebalance: admit', () => {
  const mesh = (): NodeView[] => [node('t', [box('t1', 2 * GiB)]), node('s', [box('s1', 6 * GiB)])]
  const offer = (mem: number, purpose: 'manual' | 'rebalance' | 'drain' = 'rebalance'): { name: string, mem: number, cpu: number, bytes: number, purpose: typeof purpose } => ({ name: 'x', mem, cpu: 0, bytes: MiB, purpose })

  it('takes a move that fits and keeps it under the high watermark', () => {
    const [t, s] = mesh() as [NodeView, NodeView]
    assert.equal(admit(t, [t, s], offer(1 * GiB), policy, 0), undefined)
  })

  it('refuses a second move while one is in flight, and within its node cooldown', () => {
    const [t, s] = mesh() as [NodeView, NodeView]
    assert.equal(admit({ ...t, incoming: 1 }, [t, s], offer(1 * GiB), policy, 0)?.code, 'TARGET_BUSY')
    assert.equal(admit({ ...t, incoming: 1 }, [t, s], offer(1 * GiB, 'drain'), policy, 0)?.code, 'TARGET_BUSY')
    assert.equal(admit(t, [t, s], offer(1 * GiB), policy, 10_000, 0)?.code, 'TARGET_BUSY')
    assert.equal(admit(t, [t, s], offer(1 * GiB, 'drain'), policy, 10_000, 0), undefined)
  })

  it('refuses what its reservations cannot hold, counting moves in flight, for every purpose', () => {
    const [t, s] = mesh() as [NodeView, NodeView]
    const filling = { ...t, memInFlight: 7 * GiB }
    for (const purpose of ['manual', 'rebalance', 'drain'] as const) {
      assert.equal(admit(filling, [filling, s], offer(2 * GiB, purpose), policy, 0)?.code, 'INSUFFICIENT_MEMORY', purpose)
    }
    assert.equal(admit(t, [t, s], offer(3 * GiB, 'manual'), policy, 0), undefined)
  })

  it('refuses a rebalance move that would lift it over its high watermark, not a drain', () => {
    const [t, s] = mesh() as [NodeView, NodeView]
    const verdict = admit(t, [t, s], offer(5 * GiB), policy, 0)
    assert.equal(verdict?.code, 'OVERLOADED')
    assert.match(verdict?.reason ?? '', /above its high watermark/)
    assert.equal(admit(t, [t, s], offer(5 * GiB, 'drain'), policy, 0), undefined)
  })
})

describe('rebalance: drain', () => {
  /** A small mesh in memory: the drained node 'd' and two peers; moves take effect at once unless told. */
  function sim (opts: { refuse?: (target: string, name: string, attempt: number) => string | undefined, loseAnswer?: (name: string) => boolean, landAfter?: number, deadline?: number }) {
    let now = 0
    const nodes = [
      node('d', [box('w1', 1 * GiB), box('w2', 1 * GiB), box('db', 2 * GiB, { running: false }), box('pin', 1 * GiB, { labels: { 'goto.pinned': 'true' } })]),
      node('p1', [box('x', 3 * GiB)]),
      node('p2', [])
    ]
    const calls: string[] = []
    const attempts = new Map<string, number>()
    const landedAt = new Map<string, number>()
    const ops: DrainOps = {
      containers: async () => structuredClone((nodes[0] as NodeView).containers),
      nodes: () => structuredClone(nodes).map((n, i) => i === 0 ? { ...n, eligible: false } : n),
      migrate: async (name, target) => {
        now += 1000
        const attempt = (attempts.get(`${name}→${target}`) ?? 0) + 1
        attempts.set(`${name}→${target}`, attempt)
        calls.push(`${name}→${target}`)
        const refused = opts.refuse?.(target, name, attempt)
        if (refused != null) return { ok: false, code: refused, message: 'no' }
        apply(nodes, 'd', target, name, now)
        landedAt.set(name, now + (opts.landAfter ?? 0))
        if (opts.loseAnswer?.(name) === true) return { ok: false, code: 'GOTO_ERR_PEER_UNREACHABLE', message: 'the answer was lost' }
        return { ok: true, id: `m-${name}` }
      },
      landed: async (name, target) => now >= (landedAt.get(name) ?? Infinity) && nodes.find(n => n.id === target)?.containers.some(c => c.name === name) === true,
      locate: (name) => now >= (landedAt.get(name) ?? Infinity) ? nodes.slice(1).find(n => n.containers.some(c => c.name === name))?.id : undefined,
      sleep: async (ms) => { now += ms },
      now: () => now
    }
    return { ops, nodes, calls, run: async () => await drain('d', ops, policy, { deadline: opts.deadline ?? 60_000, retryMs: 1000 }) }
  }

  it('moves every container but the pinned one, running or stopped, and reports the pinned one', async () => {
    const { run, nodes } = sim({})
    const report = await run()
    assert.equal(report.done, false)
    assert.deepEqual(report.moved.map(m => m.container).sort(), ['db', 'w1', 'w2'])
    assert.deepEqual(report.stayed, [{ container: 'pin', reason: 'pinned (goto.pinned=true)' }])
    assert.deepEqual((nodes[0] as NodeView).containers.map(c => c.name), ['pin'])
  })

  it('a target that refuses is ruled out for that container and another takes it', async () => {
    const { run, calls, nodes } = sim({ refuse: (target) => target === 'p2' ? 'INSUFFICIENT_MEMORY' : undefined })
    const report = await run()
    assert.deepEqual(report.moved.map(m => m.targetName).sort(), ['p1', 'p1', 'p1'])
    assert.equal(calls.filter(c => c.endsWith('→p2')).length, 3, 'each container asked p2 once')
    assert.equal((nodes[1] as NodeView).containers.length, 4)
  })

  it('a busy target is waited for, not ruled out', async () => {
    const { run } = sim({ refuse: (_t, _n, attempt) => attempt <= 2 ? 'TARGET_BUSY' : undefined })
    const report = await run()
    assert.equal(report.moved.length, 3)
  })

  it('a move whose answer was lost after it committed is not started again', async () => {
    const { run, calls, nodes } = sim({ loseAnswer: (name) => name === 'w1' })
    const report = await run()
    assert.equal(calls.filter(c => c.startsWith('w1→')).length, 1)
    assert.equal(nodes.flatMap(n => n.containers).filter(c => c.name === 'w1').length, 1)
    // gone from the node after the failure, it is looked for at the target and found
    assert.deepEqual(report.moved.map(m => m.container).sort(), ['db', 'w1', 'w2'])
    assert.equal(report.stayed.some(s => s.container === 'w1'), false)
  })

  it('claims a move only once the container is seen at its target, and gives up at the deadline', async () => {
    const slow = await sim({ landAfter: 3000 }).run()
    assert.equal(slow.moved.length, 3)
    const never = sim({ landAfter: Infinity, deadline: 20_000 })
    const report = await never.run()
    assert.equal(report.moved.length, 0)
    assert.equal(report.done, false)
    assert.deepEqual(report.stayed.map(s => s.container).sort(), ['db', 'pin', 'w1', 'w2'])
    assert.match(report.stayed.find(s => s.container === 'w1')?.reason ?? '', /not seen at/)
  })

  /** One container on the drained node 'd' and one peer 'p': every try fails with `outcome` and the container leaves 'd' all the same. */
  function leavesAfterFailure (name: string, outcome: DrainOutcome, locate: DrainOps['locate']): DrainOps {
    let now = 0
    const here = new Set([name])
    return {
      containers: async () => [...here].map(n => box(n, GiB)),
      nodes: () => [{ ...node('d', []), eligible: false }, node('p', [])],
      migrate: async (n) => { now += 1000; here.delete(n); return outcome },
      landed: async () => false,
      locate,
      sleep: async (ms) => { now += ms },
      now: () => now
    }
  }

  it('a container that leaves after a failed try and shows up nowhere is reported after a grace, not waited on till the deadline', async () => {
    // refused, and meanwhile someone removes it by hand
    const ops = leavesAfterFailure('gone', { ok: false, code: 'TARGET_BUSY', message: 'busy' }, () => undefined)
    const report = await drain('d', ops, policy, { deadline: 3_600_000, retryMs: 1000 })
    assert.equal(report.done, false)
    assert.deepEqual(report.stayed, [{ container: 'gone', reason: 'left this node after a failed move, and no peer shows it' }])
    assert.ok(report.endedAt < 60_000, `ended at ${report.endedAt}`)
  })

  it('a container that left after a failed try and never starts at the peer holding it is in the report at the deadline', async () => {
    // the answer is lost after the commit, and the copy at p never starts
    const ops = leavesAfterFailure('stuck', { ok: false, code: 'GOTO_ERR_PEER_UNREACHABLE', message: 'lost' }, (_name, running) => running ? undefined : 'p')
    const report = await drain('d', ops, policy, { deadline: 120_000, retryMs: 1000 })
    assert.equal(report.done, false)
    assert.deepEqual(report.moved, [])
    assert.match(report.stayed.find(s => s.container === 'stuck')?.reason ?? '', /a peer holds it but it was not running there/)
  })

  it('placeFor picks the peer that ends least loaded, and says to wait when every one with room is busy', () => {
    const nodes = [node('d', [box('w', GiB)]), node('p1', [box('x', 3 * GiB)]), node('p2', [box('y', 1 * GiB)])]
    const place = placeFor(box('w', GiB), 'd', nodes, policy)
    assert.equal('target' in place && place.target.id, 'p2')
    const busy = placeFor(box('w', GiB), 'd', nodes.map(n => ({ ...n, incoming: 1 })), policy)
    assert.deepEqual(busy, { wait: true, reason: 'every peer with room is taking another move' })
  })
})

describe('rebalance: config', () => {
  it('reads the rebalance section over the defaults, sizes as text, and refuses what it does not know', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'goto-rebalance-'))
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ rebalance: { high: 0.2, movable: 'all', weights: { memReserved: 1 }, capacity: { memoryBytes: '2GiB', containers: 8 } } }))
      const config = await resolveConfig({ dataDir: dir }, {})
      assert.equal(config.rebalance?.high, 0.2)
      assert.equal(config.rebalance?.low, DEFAULT_POLICY.low)
      assert.equal(config.rebalance?.movable, 'all')
      assert.deepEqual(config.rebalance?.weights, { memReserved: 1, memUsed: 0, cpu: 0, disk: 0, containers: 0 })
      assert.deepEqual(config.rebalance?.capacity, { memoryBytes: 2 * GiB, containers: 8 })
      assert.equal((await resolveConfig({ dataDir: dir }, { GOTO_REBALANCE: '0' })).rebalance?.enabled, false)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ rebalance: { hihg: 0.2 } }))
      await assert.rejects(resolveConfig({ dataDir: dir }, {}), /rebalance.*hihg/)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ rebalance: { capacity: { memoryBytes: 'lots' } } }))
      await assert.rejects(resolveConfig({ dataDir: dir }, {}), /rebalance\.capacity\.memoryBytes: "lots" is not a size/)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ rebalance: { weights: { cpu: 0 } } }))
      await assert.rejects(resolveConfig({ dataDir: dir }, {}), /at least one weight above 0/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
