/**
 * The mesh evens itself out, on four real engines and agents, with time
 * compressed through config (a decision a second, a two-second node
 * cooldown): a skewed mesh ends within the watermarks with no container
 * moved twice; it then stays put; a target that fills up behind a source's
 * back refuses and the source picks another; and a drain empties a node,
 * losing nothing, before it leaves.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { AgentProc } from '../harness/agent.ts'
import type { Engine } from '../harness/engine.ts'

const MiB = 1024 * 1024

const CONFIG = {
  migration: { precopy: false },
  rebalance: {
    intervalMs: 1000,
    weights: { memReserved: 1 },
    high: 0.1,
    low: 0.1,
    movable: 'labelled',
    containerCooldownMs: 600_000,
    nodeCooldownMs: 2000,
    returnAfterMs: 3_600_000,
    capacity: { memoryBytes: '1GiB' }
  }
}

interface Plan {
  node: string
  status: { paused: boolean, moving?: string }
  decision: { action: string, reason: string, targetName?: string, container?: string }
  mean: number
  band: [number, number]
  loads: Array<{ name: string, load: number, containers: number }>
}

async function run (engine: Engine, name: string, options: { reserve?: number, movable?: boolean, pinned?: boolean } = {}): Promise<void> {
  const args = ['run', '-d', '--network', 'none', '--name', name]
  if (options.reserve != null) args.push('--memory-reservation', `${options.reserve}m`)
  if (options.movable !== false) args.push('--label', 'goto.movable=true')
  if (options.pinned === true) args.push('--label', 'goto.pinned=true')
  await engine.docker([...args, BASE_IMAGE, 'sh', '-c', `echo ${name} > /id && exec sleep 100000`])
}

/** Running containers of every engine, by name, with the hosts they run on. */
async function placement (cluster: Cluster): Promise<Map<string, string[]>> {
  const where = new Map<string, string[]>()
  for (const [i, engine] of cluster.engines.entries()) {
    const names = (await engine.docker(['ps', '--format', '{{.Names}}'])).split('\n').filter(n => n !== '' && !n.includes('-goto-rollback-'))
    for (const n of names) where.set(n, [...where.get(n) ?? [], `host${i}`])
  }
  return where
}

async function moves (agent: AgentProc): Promise<Array<{ details: { container: string, target: string, targetName: string, reason: string }, origin: string, time: string }>> {
  return (await agent.call('GET', '/v1/log?kind=rebalance.move')).body.entries
}

describe('the mesh balances itself', { timeout: 900_000 }, () => {
  let cluster: Cluster
  let agents: AgentProc[]
  const NAMES = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']

  before(async () => {
    cluster = await startCluster({ hosts: 4, label: 'rebalance', config: CONFIG, env: { GOTO_HEARTBEAT_MS: '500' } })
    agents = cluster.agents
    await until(async () => {
      for (const a of agents) if ((await a.call('GET', '/v1/peers')).body.peers.filter((p: any) => p.status === 'alive').length !== 3) return false
      return true
    }, 30_000, 'a mesh of four')
    const e0 = cluster.engines[0]!
    await run(e0, 'pinned', { reserve: 128, pinned: true })
    await run(e0, 'plain', { reserve: 64, movable: false })
    for (const name of NAMES) await run(e0, name, { reserve: 128 })
  })
  after(async () => { await cluster?.stop() })

  it('a skewed mesh ends within the watermarks, each container moved at most once', async () => {
    // host0 starts at 7·128 + 64 MiB of 1 GiB reserved, the others at 0
    const settled = await until(async () => {
      const plans = await Promise.all(agents.map(async a => (await a.call('GET', '/v1/rebalance')).body as Plan))
      if (plans.some(p => p.status.moving != null || p.decision.action !== 'hold')) return false
      const p = plans[0]!
      if (p.loads.length !== 4 || p.loads.some(l => l.load < p.band[0] - 1e-6 || l.load > p.band[1] + 1e-6)) return false
      return p
    }, 300_000, 'a balanced mesh', 1000)
    const where = await placement(cluster)
    for (const name of [...NAMES, 'pinned', 'plain']) assert.equal(where.get(name)?.length, 1, `${name} runs once: ${String(where.get(name))}`)
    assert.deepEqual(where.get('pinned'), ['host0'])
    assert.deepEqual(where.get('plain'), ['host0'], 'a container not labelled movable stays')
    const made = await moves(agents[0]!)
    assert.ok(made.length >= 3, `moves: ${made.length}`)
    const perContainer = new Map<string, number>()
    for (const m of made) perContainer.set(m.details.container, (perContainer.get(m.details.container) ?? 0) + 1)
    for (const [name, n] of perContainer) assert.equal(n, 1, `${name} moved ${n} times within its cooldown`)
    for (const m of made) assert.match(m.details.reason, /over the high watermark|above the mean with a peer under/)
    const dry = await agents[0]!.cli(['rebalance', '--dry-run'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /would\s+hold/)
    assert.match(dry.stdout, /kept\s+pinned: pinned/)
    assert.match(dry.stdout, /kept\s+plain: not labelled goto.movable=true/)
    assert.equal(settled.value.loads.length, 4)
    // and Prometheus sees the decisions the log holds
    const res = await fetch(`${agents[0]!.api}/metrics`, { headers: { authorization: `Bearer ${agents[0]!.token}` } })
    const moved = made.filter(m => m.origin === agents[0]!.peerId).length
    assert.match(await res.text(), new RegExp(`^goto_rebalance_decisions_total\\{kind="rebalance\\.move"\\} ${moved}$`, 'm'))
  })

  it('once balanced, nothing moves back and forth under steady load', async () => {
    const before_ = await placement(cluster)
    const count = (await moves(agents[0]!)).length
    await new Promise(resolve => setTimeout(resolve, 8000))
    assert.equal((await moves(agents[0]!)).length, count, 'no move in eight decision rounds')
    assert.deepEqual(await placement(cluster), before_)
    // and the commands say what is wrong with a wrong use
    const wrong = await agents[0]!.cli(['rebalance', 'jump'])
    assert.equal(wrong.code, 2)
    assert.match(wrong.stderr, /"jump" is not pause or resume/)
    const stray = await agents[0]!.cli(['leave', '--deadline', '5m'])
    assert.equal(stray.code, 2)
    assert.match(stray.stderr, /--deadline goes with --drain/)
    const bad = await agents[0]!.cli(['leave', '--drain', '--deadline', 'soon'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /"soon" is not a span/)
    assert.equal((await agents[0]!.call('GET', '/v1/node')).body.state, 'active', 'a refused drain leaves the node as it was')
  })

  it('a target that fills up while a decision is in flight refuses, and the source picks another', async () => {
    for (const a of agents) assert.equal((await a.cli(['rebalance', 'pause'])).code, 0)
    // host0 gets heavier, and every peer but one (l) a container that may not move: l is the clear first choice
    const l = agents[1]!
    for (const name of ['n1', 'n2', 'n3']) await run(cluster.engines[0]!, name, { reserve: 128 })
    for (const a of agents.slice(2)) await run(cluster.engines[a.index]!, `extra-${a.name}`, { reserve: 128, movable: false })
    await until(async () => {
      const loads = (await agents[0]!.call('GET', '/v1/rebalance')).body.loads as Plan['loads']
      return loads.find(x => x.name === 'host0')?.containers === 5 && agents.slice(2).every(a => loads.find(x => x.name === a.name)?.containers === 3)
    }, 10_000, 'host0 seeing the new containers')
    assert.equal((await l.cli(['rebalance', 'resume'])).code, 0)
    // freeze the lightest agent, then fill its engine: the mesh still sees it light
    l.kill('SIGSTOP')
    let refusedBy: string | undefined
    try {
      await run(cluster.engines[l.index]!, 'filler', { reserve: 700, movable: false })
      const before_ = (await moves(agents[0]!)).length
      for (const a of agents.filter(a => a !== l)) assert.equal((await a.cli(['rebalance', 'resume'])).code, 0)
      // host0's next decision, from its stale view, picks the frozen node
      const first = await until(async () => (await moves(agents[0]!)).slice(before_).find(m => m.origin === agents[0]!.peerId), 15_000, 'host0 to decide')
      assert.equal(first.value.details.targetName, l.name, 'the stale view sends it to the frozen node')
      await new Promise(resolve => setTimeout(resolve, 1500))
    } finally {
      l.kill('SIGCONT')
    }
    const refused = await until(async () => {
      const entries = (await agents[0]!.call('GET', '/v1/log?kind=rebalance.refused')).body.entries
      return entries.find((e: any) => e.details.targetName === l.name)
    }, 60_000, 'the refusal')
    refusedBy = refused.value.details.code
    assert.ok(['OVERLOADED', 'INSUFFICIENT_MEMORY'].includes(refusedBy ?? ''), refusedBy)
    // and the source moves the container elsewhere
    const elsewhere = await until(async () => {
      const made = await moves(agents[0]!)
      const last = made.filter(m => ['n1', 'n2', 'n3'].includes(m.details.container) && m.details.targetName !== l.name)
      if (last.length === 0) return false
      const where = await placement(cluster)
      return last.some(m => where.get(m.details.container)?.[0] === m.details.targetName) ? last : false
    }, 120_000, 'a move to another target')
    assert.ok(elsewhere.value.length >= 1)
    const onL = (await cluster.engines[l.index]!.docker(['ps', '-a', '--format', '{{.Names}}'])).split('\n')
    for (const name of ['n1', 'n2', 'n3']) assert.ok(!onL.includes(name), `${name} never landed on ${l.name}`)
    const where = await placement(cluster)
    for (const name of [...NAMES, 'n1', 'n2', 'n3']) assert.equal(where.get(name)?.length, 1, `${name} runs once`)
  })

  it('leave --drain empties a node, loses nothing, then the node leaves', async () => {
    // wait for the moves of the last test to settle, then drain the node that holds the most movable containers
    await until(async () => {
      const plans = await Promise.all(agents.filter(a => a.proc.exitCode == null).map(async a => (await a.call('GET', '/v1/rebalance')).body as Plan))
      return plans.every(p => p.status.moving == null)
    }, 120_000, 'no move in flight', 500)
    for (const a of agents) await a.cli(['rebalance', 'pause'])
    const where = await placement(cluster)
    const byHost = (h: string): string[] => [...where].filter(([, hosts]) => hosts[0] === h).map(([n]) => n)
    // not host0 (its pinned container stays) nor the node of the 700 MiB filler (no peer has room for it)
    const candidate = agents.slice(1).filter(a => !byHost(a.name).includes('filler')).sort((a, b) => byHost(b.name).length - byHost(a.name).length)[0]!
    const leaving = byHost(candidate.name)
    assert.ok(leaving.length >= 1, `${candidate.name} holds containers`)
    // a file written now must arrive with its container
    for (const name of leaving) await cluster.engines[candidate.index]!.docker(['exec', name, 'sh', '-c', `echo drained-${name} > /marker`])
    const watcher = agents[0]!
    let sawDraining = false
    const watching = (async () => {
      while (candidate.proc.exitCode == null) {
        const peers = (await watcher.call('GET', '/v1/peers').catch(() => ({ body: { peers: [] } }))).body.peers
        if (peers.some((p: any) => p.name === candidate.name && p.state === 'draining')) sawDraining = true
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    })()
    const res = await candidate.cli(['leave', '--drain', '--deadline', '3m'])
    await watching
    assert.equal(res.code, 0, res.stdout + res.stderr)
    for (const name of leaving) assert.match(res.stdout, new RegExp(`moved\\s+${name} -> host\\d`))
    assert.match(res.stdout, /drained: \d+ moved; the node has left the mesh/)
    assert.ok(sawDraining, 'the mesh saw the node draining')
    await until(async () => candidate.proc.exitCode != null, 30_000, 'the drained agent to exit')
    const after_ = await placement(cluster)
    for (const name of leaving) {
      const hosts = after_.get(name) ?? []
      assert.equal(hosts.length, 1, `${name} runs exactly once: ${String(hosts)}`)
      assert.notEqual(hosts[0], candidate.name)
      const engine = cluster.engines[Number(hosts[0]!.slice(4))]!
      assert.equal(await engine.docker(['exec', name, 'cat', '/marker']), `drained-${name}`)
      assert.equal(await engine.docker(['exec', name, 'cat', '/id']), name)
    }
    const stillThere = (await cluster.engines[candidate.index]!.docker(['ps', '--format', '{{.Names}}'])).split('\n').filter(n => n !== '')
    assert.deepEqual(stillThere, [], 'nothing runs on the drained node')
    const finished = (await watcher.call('GET', '/v1/log?kind=drain.finished')).body.entries
    assert.equal(finished.at(-1)?.details.done, true)
  })
})
