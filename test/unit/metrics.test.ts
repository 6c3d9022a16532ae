/**
 * The migration histograms and byte counters of `GET /v1/metrics`, computed
 * from journal records: which records count, in which bucket, summed how.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { metricsText, type MetricsSource } from '../../api/metrics.ts'
import type { MigrationRecord } from '../../node/migration/journal.ts'

const transfer = (movedBytes: number, heldBytes: number, wireBytes: number, refused: number): MigrationRecord['transfer'] =>
  ({ chunks: 0, bytes: 0, held: 0, heldBytes, moved: 0, movedBytes, wireBytes, refused, retries: 0 })

/** A record created at 0 s and, when `activatedAfter` is given, activated that many seconds later. */
function record (role: 'source' | 'target', activatedAfter: number | undefined, extra: Partial<MigrationRecord> = {}): MigrationRecord {
  const createdAt = new Date(0).toISOString()
  const phases = [{ phase: 'planned', at: createdAt }]
  if (activatedAfter != null) phases.push({ phase: 'activated', at: new Date(activatedAfter * 1000).toISOString() })
  return { id: String(Math.random()), role, phase: activatedAfter != null ? 'activated' : 'aborted', phases, createdAt, dryRun: false, ...extra } as unknown as MigrationRecord
}

const text = async (records: MigrationRecord[]): Promise<string> => await metricsText({
  info: () => ({ peerId: 'p', name: 'n', version: '0', meshId: 'm', startedAt: new Date(0).toISOString(), capacity: { cpus: 1, load1: 0, memTotal: 1, memFree: 1, diskTotal: 1, diskFree: 1 } }),
  peers: () => [],
  containers: () => [],
  migrations: async () => records,
  refused: () => 0
} as unknown as MetricsSource)

describe('migration metrics', () => {
  it('puts durations and downtimes in cumulative buckets, with their sum and count', async () => {
    const out = await text([
      record('source', 4, { downtimeMs: 300 }),
      record('source', 45, { downtimeMs: 1500 }),
      record('source', undefined, { downtimeMs: 99_000 }),
      record('target', 3),
      record('source', 1, { dryRun: true, downtimeMs: 10 })
    ])
    assert.match(out, /^# TYPE goto_migration_duration_seconds histogram$/m)
    assert.match(out, /^goto_migration_duration_seconds_bucket\{role="source",le="2"\} 0$/m)
    assert.match(out, /^goto_migration_duration_seconds_bucket\{role="source",le="5"\} 1$/m)
    assert.match(out, /^goto_migration_duration_seconds_bucket\{role="source",le="60"\} 2$/m)
    assert.match(out, /^goto_migration_duration_seconds_bucket\{role="source",le="\+Inf"\} 2$/m)
    assert.match(out, /^goto_migration_duration_seconds_sum\{role="source"\} 49$/m)
    assert.match(out, /^goto_migration_duration_seconds_count\{role="target"\} 1$/m)
    assert.match(out, /^goto_migration_downtime_seconds_bucket\{le="0.25"\} 0$/m)
    assert.match(out, /^goto_migration_downtime_seconds_bucket\{le="0.5"\} 1$/m)
    assert.match(out, /^goto_migration_downtime_seconds_bucket\{le="\+Inf"\} 2$/m)
    assert.match(out, /^goto_migration_downtime_seconds_sum 1.8$/m)
    assert.match(out, /^goto_migration_downtime_seconds_count 2$/m)
  })

  it('sums the bytes sent, received, on the wire and deduplicated, and the chunks refused', async () => {
    const out = await text([
      record('source', 4, { transfer: transfer(100, 40, 70, 0) }),
      record('source', undefined, { transfer: transfer(5, 1, 4, 0) }),
      record('target', 3, { transfer: transfer(80, 30, 60, 2) })
    ])
    assert.match(out, /^# TYPE goto_migration_bytes_total counter$/m)
    assert.match(out, /^goto_migration_bytes_total\{direction="sent"\} 105$/m)
    assert.match(out, /^goto_migration_bytes_total\{direction="received"\} 80$/m)
    assert.match(out, /^goto_migration_wire_bytes_total\{role="source"\} 74$/m)
    assert.match(out, /^goto_migration_deduplicated_bytes_total\{role="source"\} 41$/m)
    assert.match(out, /^goto_migration_deduplicated_bytes_total\{role="target"\} 30$/m)
    assert.match(out, /^goto_migration_chunks_refused_total 2$/m)
  })
})
