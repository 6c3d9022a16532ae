import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'

describe('cancel, consistency and concurrency', { timeout: 600_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 3, label: 'many', config: { migration: { rollbackRetentionMs: 3_600_000 } } })
    await until(async () => {
      const views = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as any[]))
      return views.every(v => v.filter(p => p.status === 'alive').length === 2)
    }, 15_000, 'the mesh')
  })
  after(async () => { await cluster?.stop() })

  it('a cancel before the commit leaves both sides as before', async () => {
    const e0 = cluster.engines[0]!
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'slow', '-v', 'slow-data:/data', BASE_IMAGE, 'sh', '-c', 'head -c 300000000 /dev/urandom > /data/big; exec sleep 100000'])
    await until(async () => (await e0.docker(['exec', 'slow', 'stat', '-c', '%s', '/data/big'])) === '300000000', 60_000, 'the data')
    // without pre-copy the bulk crosses while the container is frozen: a cancel then must unfreeze it
    const started = await cluster.agents[0]!.call('POST', '/v1/migrations', { container: 'slow', target: 'host1', async: true, precopy: false })
    assert.equal(started.status, 202)
    const id = started.body.id
    await until(async () => (await cluster.agents[0]!.call('GET', `/v1/migrations/${id}`)).body.phase === 'transferring', 30_000, 'the transfer', 20)
    const res = await cluster.agents[0]!.cli(['migration', 'cancel', id])
    assert.equal(res.code, 0, res.stderr + res.stdout)
    assert.match(res.stdout, /is aborted/)
    const record = (await cluster.agents[0]!.call('GET', `/v1/migrations/${id}`)).body
    assert.equal(record.error.code, 'GOTO_ERR_CANCELLED', JSON.stringify(record.error))
    assert.equal(JSON.parse(await e0.docker(['inspect', 'slow']))[0].State.Status, 'running')
    await until(async () => (await cluster.agents[1]!.call('GET', `/v1/migrations/${id}`)).body?.phase === 'aborted', 10_000, 'the target to clean up')
    const e1 = cluster.engines[1]!
    assert.equal(await e1.docker(['ps', '-aq']), '')
    assert.doesNotMatch(await e1.docker(['volume', 'ls', '-q']), /slow-data/)
    assert.doesNotMatch(await e1.docker(['images', '--format', '{{.Repository}}']), /goto-migrate/)
    // a cancel after the end is refused with a reason
    const late = await cluster.agents[0]!.cli(['migration', 'cancel', id])
    assert.equal(late.code, 0)
    await e0.docker(['rm', '-f', '-v', 'slow'])
  })

  it('three migrations at once among three hosts all finish, one application-consistent', async () => {
    const names = ['ring-a', 'ring-b', 'ring-c']
    for (const [i, name] of names.entries()) {
      await cluster.engines[i]!.docker(['run', '-d', '--network', 'none', '--name', name, '-v', `${name}-v:/v`, BASE_IMAGE, 'sh', '-c', `[ -f /v/r ] || { echo ${name} > /v/who; head -c 30000000 /dev/urandom > /v/r; }; exec sleep 100000`])
    }
    const sums = await Promise.all(names.map(async (name, i) => {
      await until(async () => (await cluster.engines[i]!.docker(['exec', name, 'stat', '-c', '%s', '/v/r'])) === '30000000', 30_000, `${name}'s data`)
      return await cluster.engines[i]!.docker(['exec', name, 'md5sum', '/v/r'])
    }))
    const results = await Promise.all(names.map(async (name, i) => {
      const target = `host${(i + 1) % 3}`
      return await cluster.agents[i]!.cli(['migrate', '-s', name, ...(i === 1 ? ['--consistency', 'stop', '--stop-timeout', '2'] : []), target])
    }))
    for (const [i, res] of results.entries()) {
      assert.equal(res.code, 0, `${names[i]}: ${res.stderr}`)
      assert.match(res.stdout, new RegExp(`migrated ${names[i]} to host${(i + 1) % 3}`))
    }
    for (const [i, name] of names.entries()) {
      const engine = cluster.engines[(i + 1) % 3]!
      assert.equal(JSON.parse(await engine.docker(['inspect', name]))[0].State.Running, true)
      assert.equal(await engine.docker(['exec', name, 'cat', '/v/who']), name)
      assert.equal(await engine.docker(['exec', name, 'md5sum', '/v/r']), sums[i], `${name}'s volume arrived intact`)
      assert.match(await cluster.engines[i]!.docker(['ps', '-a', '--format', '{{.Names}} {{.State}}']), new RegExp(`${name}-goto-rollback-\\S+ exited`))
    }
    const { body } = await cluster.agents[1]!.call('GET', '/v1/migrations')
    const mine = (body.migrations as any[]).find(m => m.container === 'ring-b' && m.role === 'source')
    assert.equal(mine.consistency, 'stop')
    assert.ok(mine.downtimeMs > 0)
  })
})
