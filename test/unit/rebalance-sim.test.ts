import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEFAULT_POLICY, loadOf, loadWith } from '../../node/rebalance/decide.ts'
import { generateMesh, GiB, greedy, lowerBound, optimum, shiftOn, simulate, simulateDrain } from '../../bench/lib/mesh-sim.ts'

const policy = DEFAULT_POLICY

describe('rebalancing on a simulated mesh (the real plan() and admit())', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}, 20 nodes: safe, and quiet within the band`, () => {
      const mesh = generateMesh(seed, 20, policy)
      const r = simulate(mesh, 'ours', policy, seed)
      assert.equal(r.capacityViolations, 0)
      assert.equal(r.doubleBooked, 0)
      assert.equal(r.aba, 0)
      assert.equal(r.cooldownViolations, 0)
      assert.equal(r.movesAfterBalanced, 0)
      assert.ok(r.maxOutPerSource <= 1 && r.maxInPerTarget <= 1, `in flight: ${r.maxOutPerSource} from a source, ${r.maxInPerTarget} to a target`)
      assert.ok(r.quietRound != null, 'went quiet')
      assert.ok(r.moves > 0 && r.stddevAfter < r.stddevBefore && r.stddevAfter <= 0.1, `stddev ${r.stddevBefore} → ${r.stddevAfter}`)
      assert.equal(r.completed, r.moves)
      // the same seed, the same run
      assert.deepEqual(simulate(mesh, 'ours', policy, seed), r)
    })
  }

  it('counts what it is meant to catch: the descheduler-like baseline double-books, ping-pongs and ignores cooldowns', () => {
    const r = simulate(generateMesh(1, 20, policy), 'descheduler', policy, 1)
    assert.ok(r.doubleBooked > 0 && r.aba > 0 && r.cooldownViolations > 0 && r.maxInPerTarget > 1, JSON.stringify({ ...r, series: undefined }))
    assert.equal(simulate(generateMesh(1, 20, policy), 'none', policy, 1).moves, 0)
  })

  it('models loads linearly: shiftOn() is loadWith() − loadOf()', () => {
    const mesh = generateMesh(4, 10, policy)
    for (const n of mesh.nodes) {
      for (const c of mesh.nodes.flatMap(x => x.containers).slice(0, 40)) {
        assert.ok(Math.abs(shiftOn(n, c, policy) - (loadWith(n, c, 1, policy.weights) - loadOf(n, policy.weights))) < 1e-12)
      }
    }
  })

  it('lower bound ≤ exact optimum ≤ greedy central, on 6-node meshes', () => {
    for (const seed of [1, 2, 3, 4]) {
      const mesh = generateMesh(seed, 6, policy, { sizes: [[16, 1]], mem: [1 * GiB, 4 * GiB], hot: 0.34 })
      const lb = lowerBound(mesh, policy).lb
      const opt = optimum(mesh, policy, 6)
      assert.ok(opt != null, `seed ${seed}: optimum found`)
      const g = greedy(mesh, policy)
      assert.ok(lb <= opt && opt <= g.moves, `seed ${seed}: ${lb} ≤ ${opt} ≤ ${g.moves}`)
    }
  })
})

describe('drains on a simulated mesh (the real drain(), faults injected)', () => {
  it('lose nothing, duplicate nothing, and say done only when it is', async () => {
    let pinned = 0
    let pinnedStayed = 0
    let faults = 0
    for (let seed = 1; seed <= 20; seed++) {
      const d = await simulateDrain(seed, policy)
      assert.equal(d.lost, 0, `seed ${seed}: lost`)
      assert.equal(d.duplicated, 0, `seed ${seed}: duplicated`)
      assert.equal(d.falseDone, 0, `seed ${seed}: done too early`)
      assert.equal(d.unaccounted, 0, `seed ${seed}: in neither moved nor stayed`)
      assert.equal(d.report.done, d.report.stayed.length === 0)
      pinned += d.pinned
      pinnedStayed += d.pinnedStayed
      faults += Object.values(d.faults).reduce((s, v) => s + v, 0)
    }
    assert.equal(pinnedStayed, pinned)
    assert.ok(faults > 20, 'faults were injected')
  })
})
