/**
 * Faults at every phase of a migration — the source agent killed, the
 * target agent killed, the connection cut — each ending in DESIGN.md's
 * invariants: never running in two places; before the commit the source runs
 * as before and the target keeps nothing; after it the migration completes
 * once the agents are back. Faults are injected with GOTO_FAILPOINTS.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { AgentProc } from '../harness/agent.ts'

interface Case {
  point: string
  action: 'crash' | 'cut'
  /** Whether the fault falls after the commit decision. */
  committed: boolean
}

const CASES: Case[] = [
  { point: 'source:offered', action: 'crash', committed: false },
  { point: 'source:frozen', action: 'crash', committed: false },
  { point: 'source:transfer', action: 'crash', committed: false },
  { point: 'source:prepared', action: 'crash', committed: false },
  { point: 'source:committed', action: 'crash', committed: true },
  { point: 'target:admitted', action: 'crash', committed: false },
  { point: 'target:receiving', action: 'crash', committed: false },
  { point: 'target:prepared', action: 'crash', committed: false },
  { point: 'target:committed', action: 'crash', committed: true },
  { point: 'target:activated', action: 'crash', committed: true },
  { point: 'source:frozen', action: 'cut', committed: false },
  { point: 'source:transfer', action: 'cut', committed: false },
  { point: 'target:receiving', action: 'cut', committed: false },
  { point: 'target:prepared', action: 'cut', committed: false },
  { point: 'source:committed', action: 'cut', committed: true },
  { point: 'target:committed', action: 'cut', committed: true }
]

describe('faults at every phase keep the invariants', { timeout: 1_200_000 }, () => {
  let cluster: Cluster
  let n = 0

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'faults' })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'the mesh')
  })
  after(async () => { await cluster?.stop() })

  async function running (engineIndex: number): Promise<string[]> {
    // paused counts: a frozen copy is still a copy
    const out = await cluster.engines[engineIndex]!.docker(['ps', '--format', '{{.Names}}'])
    return out.split('\n').filter(Boolean)
  }

  async function restartWith (index: number, env: NodeJS.ProcessEnv): Promise<AgentProc> {
    const agent = cluster.agents[index]!
    await agent.stop()
    cluster.agents[index] = await agent.restart(env)
    return cluster.agents[index]!
  }

  async function meshUp (): Promise<void> {
    await until(async () => {
      const views = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as any[]))
      return views.every(v => v.some(p => p.status === 'alive'))
    }, 20_000, 'both agents to see each other')
  }

  let current: Case
  const sums = new Map<string, string>()
  for (const c of CASES) {
    it(`${c.action} at ${c.point}: ${c.committed ? 'completes once the agents are back' : 'the source runs as before, the target keeps nothing'}`, async () => {
      current = c
      const name = `f${++n}`
      const faulty = c.point.startsWith('source') ? 0 : 1
      const e0 = cluster.engines[0]!
      await e0.docker(['run', '-d', '--network', 'none', '--name', name, '-v', `${name}-data:/data`, BASE_IMAGE, 'sh', '-c', '[ -f /layer ] || { head -c 3000000 /dev/urandom > /data/blob && head -c 3000000 /dev/urandom > /layer; }; exec sleep 100000'])
      await until(async () => (await e0.docker(['exec', name, 'sh', '-c', 'stat -c %s /layer'])) === '3000000', 10_000, 'the data')
      sums.set(name, await e0.docker(['exec', name, 'md5sum', '/data/blob', '/layer']))
      await restartWith(faulty, { GOTO_FAILPOINTS: `${c.point}=${c.action}` })
      await meshUp()

      // watch for two running copies the whole time
      let watching = true
      const violations: string[] = []
      const watcher = (async () => {
        while (watching) {
          const [here, there] = await Promise.all([running(0), running(1)]).catch(() => [[], []] as string[][])
          const sourceRuns = here.some(x => x === name || x.startsWith(`${name}-goto-rollback-`))
          if (sourceRuns && there.includes(name)) violations.push(`${here.join(',')} | ${there.join(',')}`)
          await new Promise(resolve => setTimeout(resolve, 50))
        }
      })()

      try {
        await migrateThroughFault(name, faulty)
      } catch (err) {
        // what each agent said about it, for the run's log
        for (const agent of cluster.agents) {
          const lines = agent.log().split('\n').filter(l => /migration|chunk|commit|activat|error|warn/i.test(l)).slice(-25)
          process.stderr.write(`--- ${agent.name}\n${lines.join('\n')}\n`)
        }
        throw err
      } finally {
        watching = false
        await watcher
      }
      assert.deepEqual(violations, [], 'never running in two places')
    })
  }

  async function migrateThroughFault (name: string, faulty: number): Promise<void> {
    {
      const c = current
      const e0 = cluster.engines[0]!
      const e1 = cluster.engines[1]!
      const started = await cluster.agents[0]!.call('POST', '/v1/migrations', { container: name, target: 'host1', async: true })
      assert.equal(started.status, 202, JSON.stringify(started.body))
      const id: string = started.body.id

      if (c.action === 'crash') {
        const code = await cluster.agents[faulty]!.exited()
        assert.equal(code, null, 'killed by SIGKILL')
        cluster.agents[faulty] = await cluster.agents[faulty]!.restart({})
        await meshUp()
      }
      // a cut fires once per process; the agents stay up and reconnect by themselves

      // both sides reach a final phase
      const final = async (agent: AgentProc): Promise<string | undefined> => {
        const res = await agent.call('GET', `/v1/migrations/${id}`)
        return res.status === 200 && ['activated', 'aborted'].includes(res.body.phase) ? res.body.phase : undefined
      }
      const { value: sourcePhase } = await until(async () => await final(cluster.agents[0]!), 60_000, 'the source to finish')
      const targetRecord = await cluster.agents[1]!.call('GET', `/v1/migrations/${id}`)
      if (targetRecord.status === 200) {
        await until(async () => await final(cluster.agents[1]!), 60_000, 'the target to finish')
      }
      await new Promise(resolve => setTimeout(resolve, 300))

      if (c.committed) {
        assert.equal(sourcePhase, 'activated')
        assert.equal(JSON.parse(await e1.docker(['inspect', name]))[0].State.Running, true, 'runs on the target')
        assert.ok(!(await running(0)).some(x => x.startsWith(name)), 'the original is stopped')
        assert.equal(await e1.docker(['exec', name, 'md5sum', '/data/blob', '/layer']), sums.get(name), 'volume and layer arrived intact')
      } else {
        assert.equal(sourcePhase, 'aborted')
        const original = JSON.parse(await e0.docker(['inspect', name]))[0]
        assert.equal(original.State.Status, 'running', 'the source runs as before (not paused)')
        assert.equal(original.HostConfig.RestartPolicy.Name, 'no')
        assert.doesNotMatch(await e1.docker(['ps', '-a', '--format', '{{.Names}}']), new RegExp(`^${name}$`, 'm'), 'no container left on the target')
        assert.doesNotMatch(await e1.docker(['volume', 'ls', '-q']), new RegExp(`${name}-data`), 'no volume left on the target')
        assert.doesNotMatch(await e1.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']), new RegExp(`goto-migrate/${name}:`), 'no image left on the target')
        assert.doesNotMatch(await e0.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']), new RegExp(`goto-migrate/${name}:`), 'no snapshot left on the source')
      }
    }
  }
})
