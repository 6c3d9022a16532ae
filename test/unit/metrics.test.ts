/**
 * `/metrics` as prom-client renders it, read back with a strict parser of the
 * text format: every family has its HELP and TYPE, names and escapes are valid,
 * histograms are cumulative and end in +Inf = _count. Then what each family
 * counts: the migration histograms, bytes and results from journal records,
 * and that they never go back across scrapes when records change; the audit
 * log's entries, the kinds this node appends and the rebalance decisions among
 * them; the replication lag against the vectors peers advertised.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { register as globalRegistry } from 'prom-client'
import { createMetrics, type MetricsSource } from '../../api/metrics.ts'
import { createAuditLog } from '../../node/audit/log.ts'
import { lagBehind, type AdvertisedVector } from '../../node/audit/replication.ts'
import type { MigrationRecord } from '../../node/migration/journal.ts'
import { parseExposition, sampleValue, type Family } from '../harness/prometheus-text.ts'

const transfer = (movedBytes: number, heldBytes: number, wireBytes: number, refused: number): MigrationRecord['transfer'] =>
  ({ chunks: 0, bytes: 0, held: 0, heldBytes, moved: 0, movedBytes, wireBytes, refused, retries: 0 })

/** A record created at 0 s and, when `activatedAfter` is given, activated that many seconds later (else aborted). */
function record (role: 'source' | 'target', activatedAfter: number | undefined, extra: Partial<MigrationRecord> = {}): MigrationRecord {
  const createdAt = new Date(0).toISOString()
  const phases = [{ phase: 'planned', at: createdAt }]
  phases.push(activatedAfter != null
    ? { phase: 'activated', at: new Date(activatedAfter * 1000).toISOString() }
    : { phase: 'aborted', at: new Date(1000).toISOString() })
  return { id: crypto.randomUUID(), role, phase: activatedAfter != null ? 'activated' : 'aborted', phases, createdAt, dryRun: false, ...extra } as unknown as MigrationRecord
}

/** A source over `state`, which a test changes between scrapes. */
function sourceOf (state: { records?: MigrationRecord[], held?: Record<string, number>, appended?: Map<string, number>, advertised?: AdvertisedVector[], name?: string }): MetricsSource {
  const capacity = { cpus: 4, load1: 0.5, memTotal: 8e9, memFree: 2e9, diskTotal: 1e11, diskFree: 5e10 }
  return {
    info: () => ({ peerId: 'p', name: state.name ?? 'n', version: '0', meshId: 'm', startedAt: new Date(0).toISOString(), capacity }) as never,
    peers: () => [],
    containers: () => [],
    migrations: async () => state.records ?? [],
    held: async () => state.held ?? {},
    appended: () => state.appended ?? new Map(),
    refused: () => 0,
    advertised: () => state.advertised ?? []
  }
}

const scrape = async (source: MetricsSource, metrics = createMetrics(source, { defaultMetrics: false })): Promise<Map<string, Family>> =>
  parseExposition(await metrics.text())

describe('metrics', () => {
  it('parses as the text format, with HELP and TYPE for every family, the runtime metrics prefixed goto_, and labels escaped', async () => {
    const odd = 'a "quoted" \\ back\nslash'
    const metrics = createMetrics(sourceOf({ name: odd, records: [record('source', 4, { downtimeMs: 300, transfer: transfer(10, 0, 10, 0) })] }))
    const text = await metrics.text()
    const families = parseExposition(text)
    assert.ok(families.size > 30, `${families.size} families`)
    for (const family of families.values()) {
      assert.match(family.name, /^goto_/)
      assert.notEqual(family.help, '', family.name)
    }
    assert.equal(families.get('goto_migration_duration_seconds')?.type, 'histogram')
    assert.equal(families.get('goto_migration_bytes_total')?.type, 'counter')
    assert.equal(families.get('goto_peers')?.type, 'gauge')
    // prom-client's runtime metrics, in this agent's registry and not the process-wide one
    assert.ok(families.has('goto_process_resident_memory_bytes') || families.has('goto_process_cpu_user_seconds_total'))
    assert.ok(families.has('goto_nodejs_eventloop_lag_seconds'))
    assert.equal((await globalRegistry.getMetricsAsJSON()).length, 0)
    assert.equal(families.get('goto_info')?.samples[0]?.labels.name, odd)
    assert.ok(text.includes('name="a \\"quoted\\" \\\\ back\\nslash"'))
  })

  it('the strict reader refuses what Prometheus would, so the test above means something', () => {
    const ok = '# HELP x_seconds h\n# TYPE x_seconds histogram\nx_seconds_bucket{le="1"} 1\nx_seconds_bucket{le="+Inf"} 2\nx_seconds_sum 3\nx_seconds_count 2\n'
    assert.equal(parseExposition(ok).get('x_seconds')?.samples.length, 4)
    const bad: Array<[string, RegExp]> = [
      [ok.replace('le="+Inf"} 2', 'le="+Inf"} 3'), /is not _count/],
      [ok.replace('x_seconds_bucket{le="+Inf"} 2\n', ''), /not le="\+Inf"/],
      [ok.replace('le="1"} 1', 'le="1"} 5'), /not cumulative/],
      [ok.replace('x_seconds_sum 3\n', ''), /no _sum/],
      ['# TYPE g gauge\ng 1\n', /lacks # HELP/],
      ['# HELP g h\n# TYPE g gauge\ng{a="x\\y"} 1\n', /unknown escape/],
      ['# HELP g h\n# TYPE g gauge\ng{a-b="x"} 1\n', /bad label name/],
      ['# HELP g h\n# TYPE g gauge\ng 1\ng 2\n', /twice/],
      ['# HELP g h\n# TYPE g gauge\ng one\n', /not a float/],
      ['# HELP g h\n# TYPE g gauge\ng 1\n# HELP h h\n# TYPE h gauge\nh 1\n# HELP g h\n', /appears twice/],
      ['# HELP 1g h\n# TYPE 1g gauge\n', /bad metric name/],
      ['# HELP g h\n# TYPE g gauge\ng 1', /line feed/]
    ]
    for (const [text, error] of bad) assert.throws(() => parseExposition(text), error, text)
  })

  it('puts durations and downtimes in cumulative buckets, with their sum and count', async () => {
    const families = await scrape(sourceOf({
      records: [
        record('source', 4, { downtimeMs: 300 }),
        record('source', 45, { downtimeMs: 1500 }),
        record('source', undefined, { downtimeMs: 99_000 }),
        record('target', 3),
        record('source', 1, { dryRun: true, downtimeMs: 10 })
      ]
    }))
    const v = (name: string, labels = {}): number => sampleValue(families, name, labels)
    assert.equal(v('goto_migration_duration_seconds_bucket', { role: 'source', le: '2' }), 0)
    assert.equal(v('goto_migration_duration_seconds_bucket', { role: 'source', le: '5' }), 1)
    assert.equal(v('goto_migration_duration_seconds_bucket', { role: 'source', le: '60' }), 2)
    assert.equal(v('goto_migration_duration_seconds_bucket', { role: 'source', le: '+Inf' }), 2)
    assert.equal(v('goto_migration_duration_seconds_sum', { role: 'source' }), 49)
    assert.equal(v('goto_migration_duration_seconds_count', { role: 'target' }), 1)
    assert.equal(v('goto_migration_downtime_seconds_bucket', { le: '0.25' }), 0)
    assert.equal(v('goto_migration_downtime_seconds_bucket', { le: '0.5' }), 1)
    assert.equal(v('goto_migration_downtime_seconds_bucket', { le: '+Inf' }), 2)
    assert.equal(v('goto_migration_downtime_seconds_sum'), 1.8)
    assert.equal(v('goto_migration_downtime_seconds_count'), 2)
    assert.equal(v('goto_migrations_ended_total', { role: 'source', result: 'activated' }), 2)
    assert.equal(v('goto_migrations_ended_total', { role: 'source', result: 'aborted' }), 1)
    assert.equal(v('goto_migrations_ended_total', { role: 'target', result: 'activated' }), 1)
    assert.equal(v('goto_migrations_ended_total', { role: 'target', result: 'rolled-back' }), 0)
    assert.equal(v('goto_migrations', { role: 'source', phase: 'activated' }), 3)
  })

  it('sums the bytes sent, received, on the wire and deduplicated, and the chunks refused', async () => {
    const families = await scrape(sourceOf({
      records: [
        record('source', 4, { transfer: transfer(100, 40, 70, 0) }),
        record('source', undefined, { transfer: transfer(5, 1, 4, 0) }),
        record('target', 3, { transfer: transfer(80, 30, 60, 2) })
      ]
    }))
    const v = (name: string, labels = {}): number => sampleValue(families, name, labels)
    assert.equal(v('goto_migration_bytes_total', { direction: 'sent' }), 105)
    assert.equal(v('goto_migration_bytes_total', { direction: 'received' }), 80)
    assert.equal(v('goto_migration_wire_bytes_total', { role: 'source' }), 74)
    assert.equal(v('goto_migration_deduplicated_bytes_total', { role: 'source' }), 41)
    assert.equal(v('goto_migration_deduplicated_bytes_total', { role: 'target' }), 30)
    assert.equal(v('goto_migration_chunks_refused_total'), 2)
  })

  it('never takes a sample back across scrapes: a rollback adds a result, shrunk or vanished records subtract nothing', async () => {
    const running = record('source', undefined, { phase: 'transferring', transfer: transfer(50, 0, 50, 0) } as Partial<MigrationRecord>)
    running.phases = [{ phase: 'planned', at: running.createdAt }]
    const done = record('source', 10, { downtimeMs: 800, transfer: transfer(200, 0, 150, 0) })
    const state = { records: [running, done] }
    const metrics = createMetrics(sourceOf(state), { defaultMetrics: false })
    const read = async (): Promise<(name: string, labels?: Record<string, string>) => number> => {
      const families = await scrape(sourceOf(state), metrics)
      return (name, labels = {}) => sampleValue(families, name, labels)
    }
    let v = await read()
    assert.equal(v('goto_migration_bytes_total', { direction: 'sent' }), 250)
    assert.equal(v('goto_migration_downtime_seconds_count'), 1)

    // the running one moves on; the done one is rolled back
    running.transfer = transfer(120, 0, 90, 0)
    done.phase = 'rolled-back'
    done.phases = [...done.phases, { phase: 'rolled-back', at: new Date(20_000).toISOString() }]
    v = await read()
    assert.equal(v('goto_migration_bytes_total', { direction: 'sent' }), 320)
    assert.equal(v('goto_migration_downtime_seconds_count'), 1)
    assert.equal(v('goto_migration_duration_seconds_count', { role: 'source' }), 1)
    assert.equal(v('goto_migrations_ended_total', { role: 'source', result: 'activated' }), 1)
    assert.equal(v('goto_migrations_ended_total', { role: 'source', result: 'rolled-back' }), 1)

    // a transfer that starts over reports less, and a record is gone: the counters stay
    running.transfer = transfer(30, 0, 20, 0)
    state.records = [running]
    v = await read()
    assert.equal(v('goto_migration_bytes_total', { direction: 'sent' }), 320)
    assert.equal(v('goto_migration_wire_bytes_total', { role: 'source' }), 240)
    assert.equal(v('goto_migration_downtime_seconds_count'), 1)
    assert.equal(v('goto_migrations', { role: 'source', phase: 'transferring' }), 1)
    assert.throws(() => v('goto_migrations', { role: 'source', phase: 'rolled-back' }), /0 samples/)
  })

  it('counts the log entries held by origin, those this node appends by kind, and the rebalance decisions among them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'goto-metrics-'))
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    after(async () => {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    })
    await db.open()
    const key = await generateKeyPair('Ed25519')
    const origin = peerIdFromPrivateKey(key).toString()
    const log = createAuditLog(db, origin, key)
    const source: MetricsSource = { ...sourceOf({}), held: async () => await log.vector(), appended: () => log.appended }
    const metrics = createMetrics(source, { defaultMetrics: false })

    for (const kind of ['node.joined', 'rebalance.move', 'rebalance.move', 'rebalance.refused', 'drain.started', 'migration.planned', 'rebalancer.note']) {
      await log.append(kind, { details: { test: true } })
    }
    let families = parseExposition(await metrics.text())
    const v = (name: string, labels = {}): number => sampleValue(families, name, labels)
    assert.equal(v('goto_audit_entries', { origin }), 7)
    assert.equal(v('goto_audit_appended_total', { kind: 'rebalance.move' }), 2)
    assert.equal(v('goto_audit_appended_total', { kind: 'migration.planned' }), 1)
    assert.equal(v('goto_rebalance_decisions_total', { kind: 'rebalance.move' }), 2)
    assert.equal(v('goto_rebalance_decisions_total', { kind: 'rebalance.refused' }), 1)
    assert.equal(v('goto_rebalance_decisions_total', { kind: 'drain.started' }), 1)
    assert.deepEqual(families.get('goto_rebalance_decisions_total')?.samples.map(s => s.labels.kind).sort(), ['drain.started', 'rebalance.move', 'rebalance.refused'])

    await log.append('rebalance.move')
    families = parseExposition(await metrics.text())
    assert.equal(v('goto_rebalance_decisions_total', { kind: 'rebalance.move' }), 3)
    assert.equal(v('goto_audit_entries', { origin }), 8)
  })

  it('measures the replication lag against the version vectors peers advertised', async () => {
    assert.deepEqual(lagBehind({ a: 5, b: 3 }, { a: 7, b: 2, c: 2 }), { a: 2, c: 2 })
    const now = Date.now()
    const families = await scrape(sourceOf({
      held: { a: 5, b: 3 },
      advertised: [
        { peer: 'p1', vector: { a: 7, b: 3, c: 2 }, at: now - 4000 },
        { peer: 'p2', vector: { a: 6, b: 1 }, at: now }
      ]
    }))
    const v = (name: string, labels = {}): number => sampleValue(families, name, labels)
    assert.equal(v('goto_audit_peer_lag_entries', { peer: 'p1' }), 4)
    assert.equal(v('goto_audit_peer_lag_entries', { peer: 'p2' }), 1)
    assert.ok(v('goto_audit_peer_vector_age_seconds', { peer: 'p1' }) >= 4)
    assert.equal(v('goto_audit_origin_lag_entries', { origin: 'a' }), 2)
    assert.equal(v('goto_audit_origin_lag_entries', { origin: 'b' }), 0)
    assert.equal(v('goto_audit_origin_lag_entries', { origin: 'c' }), 2)
  })
})
