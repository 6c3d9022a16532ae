import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'

describe('the rollback point is kept for the configured retention, then pruned', { timeout: 300_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'retain', config: { migration: { rollbackRetentionMs: 3000 } } })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'the mesh')
  })
  after(async () => { await cluster?.stop() })

  it('prunes the stopped original and its volumes when the retention runs out', async () => {
    const e0 = cluster.engines[0]!
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'short', '-v', 'short-v:/v', BASE_IMAGE, 'sleep', '100000'])
    const res = await cluster.agents[0]!.cli(['migrate', '-s', 'short', 'host1', '--json'])
    assert.equal(res.code, 0, res.stderr)
    const record = JSON.parse(res.stdout)
    assert.match(record.rollbackName, /^short-goto-rollback-/)
    assert.match(await e0.docker(['ps', '-a', '--format', '{{.Names}}']), /short-goto-rollback-/)
    await until(async () => !(await e0.docker(['ps', '-a', '--format', '{{.Names}}'])).includes('short-goto-rollback-'), 15_000, 'the prune')
    assert.doesNotMatch(await e0.docker(['volume', 'ls', '-q']), /short-v/)
    const log = (await cluster.agents[0]!.call('GET', `/v1/log?migration=${record.id}`)).body.entries as any[]
    assert.ok(log.some(e => e.kind === 'migration.pruned'))
    const rollback = await cluster.agents[0]!.cli(['rollback', record.id])
    assert.equal(rollback.code, 1)
    assert.match(rollback.stderr, /GOTO_ERR_NO_ROLLBACK_POINT/)
    // the moved container is untouched
    assert.equal(JSON.parse(await cluster.engines[1]!.docker(['inspect', 'short']))[0].State.Running, true)
  })
})
