/**
 * `/metrics` on real agents moves as a migration runs: scraped on the source
 * and the target before, while a rate-limited migration is in flight, and
 * after. Every scrape must parse strictly; the bytes grow while it runs and
 * never go back; at the end each side counts the migration as activated, in
 * its duration histogram and, on the source, its downtime.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { AgentProc } from '../harness/agent.ts'
import { parseExposition, sampleValue, type Family } from '../harness/prometheus-text.ts'

const VOLUME_BYTES = 12_000_000

/** One scrape of `/metrics`, parsed strictly, and a reader of its samples. */
async function scrape (agent: AgentProc): Promise<{ families: Map<string, Family>, v: (name: string, labels?: Record<string, string>) => number }> {
  const res = await fetch(`${agent.api}/metrics`, { headers: { authorization: `Bearer ${agent.token}` } })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  const families = parseExposition(await res.text())
  return { families, v: (name, labels = {}) => sampleValue(families, name, labels) }
}

/** Migrations of `role` this scrape shows in a phase that is not final. */
const inFlight = (families: Map<string, Family>, role: string): number =>
  (families.get('goto_migrations')?.samples ?? [])
    .filter(s => s.labels.role === role && !['activated', 'aborted', 'rolled-back', 'dry-run'].includes(s.labels.phase ?? ''))
    .reduce((sum, s) => sum + s.value, 0)

describe('/metrics during a migration', { timeout: 300_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'metrics' })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'the mesh')
    await cluster.engines[0]!.docker(['run', '-d', '--network', 'none', '--name', 'metered', '-v', 'metered-data:/data', BASE_IMAGE,
      'sh', '-c', `head -c ${VOLUME_BYTES} /dev/urandom > /data/blob; exec sleep 100000`])
    await until(async () => (await cluster.engines[0]!.docker(['exec', 'metered', 'stat', '-c', '%s', '/data/blob'])) === String(VOLUME_BYTES), 30_000, 'the data')
  })
  after(async () => { await cluster?.stop() })

  it('shows the bytes grow while it runs, then the migration counted on both sides', async () => {
    const [source, target] = cluster.agents as [AgentProc, AgentProc]
    const first = { source: await scrape(source), target: await scrape(target) }
    const sent0 = first.source.v('goto_migration_bytes_total', { direction: 'sent' })
    const received0 = first.target.v('goto_migration_bytes_total', { direction: 'received' })
    assert.equal(first.source.v('goto_migrations_ended_total', { role: 'source', result: 'activated' }), 0)
    assert.equal(first.source.v('goto_migration_duration_seconds_count', { role: 'source' }), 0)

    // 4 MB/s over some 16 MB (the image and the volume): a few seconds to watch
    const started = await source.call('POST', '/v1/migrations', { container: 'metered', target: 'host1', async: true, bwlimit: '4M' })
    assert.equal(started.status, 202, JSON.stringify(started.body))
    const id: string = started.body.id

    const received: number[] = [received0]
    const sent: number[] = [sent0]
    let movingInFlight = false
    let phase = ''
    while (!['activated', 'aborted'].includes(phase)) {
      const [s, t] = await Promise.all([scrape(source), scrape(target)])
      sent.push(s.v('goto_migration_bytes_total', { direction: 'sent' }))
      received.push(t.v('goto_migration_bytes_total', { direction: 'received' }))
      // a scrape taken while the target still holds the migration unfinished, with bytes already counted
      if (inFlight(t.families, 'target') > 0 && received.at(-1)! > received0) movingInFlight = true
      phase = (await source.call('GET', `/v1/migrations/${id}`)).body.phase
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    assert.equal(phase, 'activated')
    assert.ok(movingInFlight, `no scrape saw bytes received while the migration ran: ${received.join(' ')}`)
    for (const series of [sent, received]) {
      for (let i = 1; i < series.length; i++) assert.ok(series[i]! >= series[i - 1]!, `went back: ${series.join(' ')}`)
    }

    // the target answers the source's commit before it journals its own activation: wait for both
    const { value: last } = await until(async () => {
      const [s, t] = await Promise.all([scrape(source), scrape(target)])
      return t.v('goto_migrations_ended_total', { role: 'target', result: 'activated' }) === 1 ? { source: s, target: t } : undefined
    }, 20_000, 'the target to count the migration')
    assert.ok(last.source.v('goto_migration_bytes_total', { direction: 'sent' }) >= sent0 + VOLUME_BYTES)
    assert.ok(last.target.v('goto_migration_bytes_total', { direction: 'received' }) >= received0 + VOLUME_BYTES)
    assert.ok(last.source.v('goto_migration_wire_bytes_total', { role: 'source' }) > 0)
    assert.equal(last.source.v('goto_migrations_ended_total', { role: 'source', result: 'activated' }), 1)
    assert.equal(last.source.v('goto_migrations_ended_total', { role: 'source', result: 'aborted' }), 0)
    assert.equal(last.source.v('goto_migration_duration_seconds_count', { role: 'source' }), 1)
    assert.ok(last.source.v('goto_migration_duration_seconds_sum', { role: 'source' }) >= 2, 'a rate-limited move takes seconds')
    assert.equal(last.source.v('goto_migration_downtime_seconds_count'), 1)
    assert.equal(last.target.v('goto_migration_duration_seconds_count', { role: 'target' }), 1)
    assert.equal(last.source.v('goto_migrations', { role: 'source', phase: 'activated' }), 1)
    // the source's log entries of it reached the target's copy of the log; each side pulled the
    // other's log on connecting, so each holds the other's version vector to measure its lag against
    assert.ok(last.target.v('goto_audit_entries', { origin: source.peerId }) > 0)
    for (const [side, peer] of [[last.source, target], [last.target, source]] as const) {
      assert.ok(side.v('goto_audit_peer_lag_entries', { peer: peer.peerId }) >= 0)
      assert.ok(side.v('goto_audit_peer_vector_age_seconds', { peer: peer.peerId }) < 600)
    }
    assert.equal(last.source.v('goto_audit_appended_total', { kind: 'migration.planned' }), 1)
    assert.equal(last.source.v('goto_audit_appended_total', { kind: 'migration.activated' }), 1)
  })
})
