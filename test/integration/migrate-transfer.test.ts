/**
 * The chunked transfer on real engines: a corrupted chunk and a broken
 * stream are each repaired without failing the migration; a transfer cut at
 * several points resumes from the chunks already stored; a migration back
 * after a small change sends only what changed.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { AgentProc } from '../harness/agent.ts'

describe('chunked transfer', { timeout: 900_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'transfer' })
    await meshUp()
  })
  after(async () => { await cluster?.stop() })

  async function meshUp (): Promise<void> {
    await until(async () => {
      const views = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as any[]))
      return views.every(v => v.some(p => p.status === 'alive'))
    }, 20_000, 'both agents to see each other')
  }

  async function restartWith (index: number, env: NodeJS.ProcessEnv): Promise<AgentProc> {
    const agent = cluster.agents[index]!
    await agent.stop()
    cluster.agents[index] = await agent.restart(env)
    await meshUp()
    return cluster.agents[index]!
  }

  /** A container whose layer holds `layerMb` and whose volume holds `volumeMb` of random bytes. */
  async function container (engine: number, name: string, layerMb: number, volumeMb: number): Promise<string> {
    const e = cluster.engines[engine]!
    await e.docker(['run', '-d', '--network', 'none', '--name', name, '-v', `${name}-data:/data`, BASE_IMAGE, 'sh', '-c',
      // the data is written once: the command runs again wherever the container starts
      `[ -f /ready ] || { head -c ${layerMb}m /dev/urandom > /layer.bin && head -c ${volumeMb}m /dev/urandom > /data/vol.bin && touch /ready; }; exec sleep 100000`])
    await until(async () => await e.docker(['exec', name, 'ls', '/ready']).then(() => true, () => false), 30_000, `${name} to write its data`)
    return await sums(engine, name)
  }

  async function sums (engine: number, name: string): Promise<string> {
    return await cluster.engines[engine]!.docker(['exec', name, 'md5sum', '/layer.bin', '/data/vol.bin'])
  }

  async function migrate (from: number, name: string, to: string, extra: Record<string, unknown> = {}): Promise<{ source: any, target: any }> {
    const res = await cluster.agents[from]!.call('POST', '/v1/migrations', { container: name, target: to, ...extra })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    const other = cluster.agents[from === 0 ? 1 : 0]!
    const { value: target } = await until(async () => {
      const r = await other.call('GET', `/v1/migrations/${res.body.id as string}`)
      return r.status === 200 && ['activated', 'aborted'].includes(r.body.phase) ? r.body : undefined
    }, 60_000, 'the target to finish')
    return { source: res.body, target }
  }

  async function auditKinds (agent: AgentProc, migration: string): Promise<string[]> {
    const { body } = await agent.call('GET', `/v1/log?migration=${migration}`)
    return (body.entries as any[]).filter(e => e.origin === agent.peerId).map(e => e.kind)
  }

  it('a corrupted chunk is refused, counted, logged and fetched again', async () => {
    const before = await container(0, 'corrupt-1', 4, 2)
    await restartWith(0, { GOTO_FAILPOINTS: 'source:corrupt-chunk=on' })
    const { source, target } = await migrate(0, 'corrupt-1', 'host1')
    assert.equal(source.phase, 'activated', JSON.stringify(source.error))
    assert.equal(target.transfer.refused, 1)
    assert.ok((await auditKinds(cluster.agents[1]!, source.id)).includes('security.bad-chunk'))
    assert.equal(await sums(1, 'corrupt-1'), before, 'the data arrived intact')
  })

  it('a broken chunk stream is reopened on its own; the migration does not fail', async () => {
    const before = await container(0, 'broken-1', 4, 2)
    await restartWith(0, { GOTO_FAILPOINTS: 'source:break-chunk-stream=on' })
    const { source, target } = await migrate(0, 'broken-1', 'host1')
    assert.equal(source.phase, 'activated', JSON.stringify(source.error))
    assert.ok(target.transfer.retries >= 1, `retries ${target.transfer.retries as number}`)
    assert.equal(await sums(1, 'broken-1'), before)
  })

  it('compresses what shrinks, and keeps to a bandwidth limit', async () => {
    const e0 = cluster.engines[0]!
    // 6 MiB of text: zstd shrinks it to almost nothing
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'text-1', BASE_IMAGE, 'sh', '-c',
      '[ -f /ready ] || { i=0; while [ $i -lt 98304 ]; do echo "line $i of a log that compresses well, padded to sixty-four" ; i=$((i+1)); done > /log.txt; touch /ready; }; exec sleep 100000'])
    await until(async () => await e0.docker(['exec', 'text-1', 'ls', '/ready']).then(() => true, () => false), 60_000, 'the text')
    const fast = await migrate(0, 'text-1', 'host1', { precopy: false })
    assert.equal(fast.source.phase, 'activated')
    assert.ok(fast.source.transfer.wireBytes < fast.source.transfer.movedBytes / 3, `wire ${fast.source.transfer.wireBytes as number} for ${fast.source.transfer.movedBytes as number}`)

    // 4 MiB of random bytes at 2 MB/s: at least a second and a half however fast the link
    await container(0, 'slow-1', 4, 0)
    const t0 = performance.now()
    const slow = await migrate(0, 'slow-1', 'host1', { precopy: false, bwlimit: '2M' })
    const ms = performance.now() - t0
    assert.equal(slow.source.phase, 'activated')
    assert.equal(slow.source.bwlimit, 2e6)
    assert.ok(ms >= (slow.source.transfer.wireBytes / 2e6 - 0.2) * 1000, `${Math.round(ms)} ms for ${slow.source.transfer.wireBytes as number} bytes at 2 MB/s`)
    const bad = await cluster.agents[0]!.call('POST', '/v1/migrations', { container: 'slow-1', target: 'host1', bwlimit: 'fast' })
    assert.equal(bad.status, 400)
  })

  it('a transfer cut at two points resumes from the chunks stored: each chunk crosses at most once more than needed', async (t) => {
    const before = await container(0, 'resume-1', 48, 16)
    const runs: Array<{ source: any, target: any }> = []
    for (const failpoints of ['target:chunk-stored=cut@150', 'target:chunk-stored=cut@150', '']) {
      await restartWith(1, { GOTO_FAILPOINTS: failpoints })
      // without pre-copy the cut falls in the one round, and the counts read simply
      runs.push(await migrate(0, 'resume-1', 'host1', { precopy: false }))
    }
    assert.deepEqual(runs.map(r => r.source.phase), ['aborted', 'aborted', 'activated'])
    assert.equal(await sums(1, 'resume-1'), before)
    assert.equal(JSON.parse(await cluster.engines[0]!.docker(['inspect', 'resume-1-goto-rollback-' + (runs[2]!.source.id as string).slice(0, 8)]))[0].State.Running, false)
    const [one, two, three] = runs.map(r => r.target.transfer)
    // what a cut run stored is held, not sent, on the next
    assert.ok(one.moved >= 150 && two.moved >= 150, `stored ${one.moved as number}, ${two.moved as number}; ${runs.map(r => JSON.stringify(r.source.error)).join(', ')}`)
    assert.ok(two.held >= one.moved - 8, `run 2 held ${two.held as number} of the ${one.moved as number} run 1 stored`)
    assert.ok(three.held >= one.moved + two.moved - 16, `run 3 held ${three.held as number}`)
    // chunks served over all runs: what the last needed, plus at most the chunks in flight at each cut
    // (4 streams × 32 a request) and the few the snapshots do not share (image config, tar headers)
    const served = runs.reduce((sum, r) => sum + (r.source.transfer.moved as number), 0)
    const needed = three.chunks as number
    t.diagnostic(`chunks needed ${needed}; stored per run ${one.moved as number}, ${two.moved as number}, ${three.moved as number}; served in all ${served}`)
    assert.ok(served <= needed + 2 * 128 + 2 * 8, `served ${served} for ${needed} needed`)
    assert.ok(three.moved <= needed - one.moved - two.moved + 2 * 128 + 16, `run 3 fetched ${three.moved as number}`)
  })

  it('a migration back after a small change sends only the changed chunks', async (t) => {
    await container(0, 'back-1', 32, 16)
    const there = await migrate(0, 'back-1', 'host1')
    assert.equal(there.source.phase, 'activated')
    // change 1 MiB in the middle of the layer's file and 256 KiB of the volume's
    await cluster.engines[1]!.docker(['exec', 'back-1', 'sh', '-c',
      'head -c 1048576 /dev/urandom | dd of=/layer.bin bs=1048576 seek=10 conv=notrunc 2>/dev/null && head -c 262144 /dev/urandom | dd of=/data/vol.bin bs=262144 seek=20 conv=notrunc 2>/dev/null'])
    const changed = await sums(1, 'back-1')
    const back = await migrate(1, 'back-1', 'host0')
    assert.equal(back.source.phase, 'activated', JSON.stringify(back.source.error))
    assert.equal(await sums(0, 'back-1'), changed)
    const stats = back.target.transfer
    t.diagnostic(`way back: ${stats.movedBytes as number} of ${stats.bytes as number} bytes sent, ${stats.moved as number} of ${stats.chunks as number} chunks`)
    // 1.25 MiB changed of about 48 MiB: the rest was held by host 0 from the way out
    assert.ok(stats.movedBytes >= 1.25 * 1024 * 1024, `moved ${stats.movedBytes as number}`)
    assert.ok(stats.movedBytes < 0.1 * stats.bytes, `moved ${stats.movedBytes as number} of ${stats.bytes as number}`)
    // the stale rollback point of the way out is gone; the way back keeps its own
    assert.equal((await cluster.agents[0]!.call('GET', `/v1/migrations/${there.source.id as string}`)).body.rollbackName, undefined)
    assert.ok((await auditKinds(cluster.agents[0]!, there.source.id)).includes('migration.pruned'))
  })
})
