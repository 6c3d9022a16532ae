/**
 * The CloudWatch publisher against a local endpoint on 127.0.0.1 that decodes
 * the real requests the pinned SDK sends (AWS JSON 1.0, gzip from 10 KiB):
 * names, values, units, dimensions and timestamps; an outage after which every
 * datum arrives once, oldest first; a restart that loses and repeats nothing
 * acknowledged. A real LevelDB in a temp dir holds the queue.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { Level } from 'level'
import { createCloudWatchPublisher, migrationDatums, type CloudWatchOptions, type CloudWatchPublisher } from '../../node/metrics/cloudwatch.ts'
import type { MigrationRecord } from '../../node/migration/journal.ts'
import { createMetrics, type MetricsSource } from '../../api/metrics.ts'
import { createAgent } from '../../node/agent.ts'
import { DEFAULT_GOSSIP } from '../../node/config.ts'
import { initDataDir } from '../../node/data-dir.ts'

process.env.AWS_ACCESS_KEY_ID = 'test'
process.env.AWS_SECRET_ACCESS_KEY = 'test'
process.env.AWS_REGION = 'us-east-1'

interface WireDatum { MetricName: string, Value: number, Unit: string, Timestamp: number, StorageResolution: number, Dimensions: Array<{ Name: string, Value: string }> }

/** A PutMetricData endpoint: keeps every datum it acknowledged; `failing` answers 500. */
class FakeCloudWatch {
  server: Server = createServer((req, res) => {
    if (this.hanging) { this.requests++; return }
    this.#handle(req).then(([status, body]) => { res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify(body)) },
      (err: unknown) => { this.errors.push(err); res.writeHead(400).end() })
  })
  /** Requests that were not PutMetricData as the test expects it. */
  errors: unknown[] = []
  received: WireDatum[] = []
  /** Datums of each acknowledged request. */
  batches: number[] = []
  requests = 0
  gzipped = 0
  failing = false
  /** Take requests and never answer them. */
  hanging = false
  namespaces = new Set<string>()

  async #handle (req: IncomingMessage): Promise<[number, unknown]> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    this.requests++
    // the wire protocol of the pinned SDK: fail loudly if it changes
    assert.equal(req.method, 'POST')
    assert.equal(req.url, '/')
    assert.equal(req.headers['x-amz-target'], 'GraniteServiceVersion20100801.PutMetricData')
    assert.equal(req.headers['content-type'], 'application/x-amz-json-1.0')
    assert.match(String(req.headers.authorization), /^AWS4-HMAC-SHA256 Credential=test\//)
    let body = Buffer.concat(chunks)
    if (req.headers['content-encoding'] === 'gzip') {
      body = gunzipSync(body)
      this.gzipped++
    }
    if (this.failing) return [500, { __type: 'InternalServiceError', message: 'down for the test' }]
    const input = JSON.parse(body.toString('utf8')) as { Namespace: string, MetricData: WireDatum[] }
    this.namespaces.add(input.Namespace)
    this.received.push(...input.MetricData)
    this.batches.push(input.MetricData.length)
    return [200, {}]
  }

  get url (): string { return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}` }
}

const cw = new FakeCloudWatch()

/** Wait for `check`; a request the endpoint could not take as PutMetricData fails it at once. */
const until = async (what: string, check: () => boolean, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms
  while (!check()) {
    if (cw.errors.length > 0) throw cw.errors[0] as Error
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('CloudWatch publisher', () => {
  let dir: string
  let db: Level<string, unknown>
  const publishers: CloudWatchPublisher[] = []
  const publisher = (extra: Partial<CloudWatchOptions> = {}): CloudWatchPublisher => {
    const p = createCloudWatchPublisher({
      db,
      node: 'alpha',
      mesh: 'mesh1',
      endpoint: cw.url,
      intervalMs: 200,
      retryMinMs: 50,
      retryMaxMs: 200,
      sample: () => ({ peersAlive: 2, containersRunning: 3, memFree: 1024, diskFree: 4096 }),
      ...extra
    })
    publishers.push(p)
    return p
  }

  before(async () => {
    await new Promise<void>(resolve => cw.server.listen(0, '127.0.0.1', resolve))
  })
  beforeEach(async () => {
    for (const p of publishers.splice(0)) await p.stop()
    if (db != null) await db.close()
    if (dir != null) await rm(dir, { recursive: true, force: true })
    dir = await mkdtemp(join(tmpdir(), 'goto-cw-'))
    db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    await db.open()
    cw.received = []
    cw.batches = []
    cw.failing = false
    cw.hanging = false
  })
  after(async () => {
    for (const p of publishers.splice(0)) await p.stop()
    await db.close()
    await rm(dir, { recursive: true, force: true })
    cw.server.closeAllConnections()
    cw.server.close()
    assert.deepEqual(cw.errors, [], 'every request was PutMetricData in AWS JSON 1.0')
  })

  it('samples the gauges every interval with units, dimensions, resolution and the time measured', async () => {
    const t0 = Date.now()
    const p = publisher({ highResolution: true, namespace: 'GoToTest' })
    p.start()
    await until('two samples', () => cw.received.filter(d => d.MetricName === 'PeersAlive').length >= 2)
    assert.deepEqual([...cw.namespaces], ['GoToTest'])
    const byName = new Map(cw.received.map(d => [d.MetricName, d]))
    assert.deepEqual([...byName.keys()].sort(), ['ContainersRunning', 'DiskFreeBytes', 'MemFreeBytes', 'PeersAlive'])
    assert.deepEqual(
      [...byName.values()].map(d => [d.MetricName, d.Value, d.Unit]).sort(),
      [['ContainersRunning', 3, 'Count'], ['DiskFreeBytes', 4096, 'Bytes'], ['MemFreeBytes', 1024, 'Bytes'], ['PeersAlive', 2, 'Count']])
    for (const d of cw.received) {
      assert.deepEqual(d.Dimensions, [{ Name: 'Node', Value: 'alpha' }, { Name: 'Mesh', Value: 'mesh1' }])
      assert.equal(d.StorageResolution, 1)
      // epoch seconds with the milliseconds as a fraction
      assert.equal(typeof d.Timestamp, 'number')
      assert.ok(d.Timestamp * 1000 >= t0 && d.Timestamp * 1000 <= Date.now(), String(d.Timestamp))
    }
    assert.deepEqual(p.stats().dropped, 0)
  })

  it('sends a migration\'s datums once, with the record\'s values', async () => {
    const p = publisher({ intervalMs: 3_600_000 })
    p.start()
    const ended = [{ phase: 'activated', at: new Date().toISOString() }]
    const record = { id: 'm1', role: 'source', phase: 'activated', phases: ended, dryRun: false, downtimeMs: 850, transfer: { movedBytes: 5000, heldBytes: 7000 } } as unknown as MigrationRecord
    await p.onMigration(record)
    await p.onMigration(record)
    await p.onMigration({ ...record, id: 'm2', phase: 'aborted' })
    await p.onMigration({ ...record, id: 'm3', role: 'target' })
    // touched again long after its end (a rollback point pruned after a restart): not counted again
    await p.onMigration({ ...record, id: 'm4', phases: [{ phase: 'activated', at: new Date(Date.now() - 3_600_000).toISOString() }] })
    await until('five datums', () => cw.received.length >= 5)
    await p.flush()
    assert.deepEqual(cw.received.map(d => [d.MetricName, d.Value, d.Unit]), [
      ['MigrationsActivated', 1, 'Count'], ['MigrationDowntime', 850, 'Milliseconds'], ['BytesSent', 5000, 'Bytes'],
      ['BytesDeduplicated', 7000, 'Bytes'], ['MigrationsAborted', 1, 'Count']])
    assert.equal(cw.received[0]?.StorageResolution, 60)
    assert.deepEqual(migrationDatums({ ...record, phase: 'transferring' } as unknown as MigrationRecord), [])
  })

  it('holds every datum through an outage, then sends each once, oldest first, gzipped when large', async () => {
    const p = publisher({ intervalMs: 3_600_000 })
    cw.failing = true
    p.start()
    const t0 = Date.now() - 60_000
    const values = Array.from({ length: 1500 }, (_, i) => i)
    // recorded newest first: the queue still sends by time
    for (const i of [...values].reverse()) await p.record([{ name: 'PeersAlive', value: i, at: t0 + i }])
    await until('retries', () => p.stats().retries >= 3)
    assert.equal(cw.received.length, 0)
    cw.failing = false
    await until('every datum', () => cw.received.length >= values.length)
    await p.flush()
    assert.deepEqual(cw.received.map(d => d.Value), values)
    assert.deepEqual(cw.received.map(d => Math.round(d.Timestamp * 1000)), values.map(i => t0 + i))
    assert.ok(cw.gzipped > 0, 'a request over 10 KiB is gzipped')
    assert.ok(cw.batches.length >= 2 && cw.batches.every(n => n <= 1000), `batches of ${cw.batches.join(', ')}`)
    assert.equal(p.stats().sent, values.length)
  })

  it('drops and counts datums CloudWatch would refuse', async () => {
    const p = publisher({ intervalMs: 3_600_000 })
    p.start()
    const now = Date.now()
    // more stale datums than one read of the queue: the sender reads on past them
    await p.record(Array.from({ length: 2100 }, () => ({ name: 'PeersAlive' as const, value: 0, at: now - 20 * 24 * 3600_000 })))
    await p.record([
      { name: 'PeersAlive', value: 1, at: now - 15 * 24 * 3600_000 },
      { name: 'PeersAlive', value: 2, at: now + 3 * 3600_000 },
      { name: 'PeersAlive', value: Number.NaN },
      { name: 'PeersAlive', value: 4 }
    ])
    await until('the good datum', () => cw.received.length >= 1)
    await p.flush()
    assert.deepEqual(cw.received.map(d => d.Value), [4])
    assert.equal(p.stats().dropped, 2103)
  })

  it('after a restart, sends what was queued and nothing acknowledged again', async () => {
    const first = publisher({ intervalMs: 3_600_000 })
    first.start()
    const t0 = Date.now() - 10_000
    await first.record([{ name: 'PeersAlive', value: 1, at: t0 }, { name: 'PeersAlive', value: 2, at: t0 + 1 }])
    await until('the first two', () => cw.received.length >= 2)
    await first.flush()
    cw.failing = true
    await first.record([{ name: 'PeersAlive', value: 3, at: t0 + 2 }, { name: 'PeersAlive', value: 4, at: t0 + 3 }])
    await first.flush()
    await first.stop()
    publishers.splice(0)
    await db.close()

    db = new Level<string, unknown>(dir, { valueEncoding: 'json' })
    await db.open()
    cw.failing = false
    const second = publisher({ intervalMs: 3_600_000 })
    await second.record([{ name: 'PeersAlive', value: 5, at: t0 + 4 }])
    second.start()
    await until('the rest', () => cw.received.length >= 5)
    await second.flush()
    assert.deepEqual(cw.received.map(d => d.Value), [1, 2, 3, 4, 5])
  })

  it('shows its counters in the Prometheus text while it runs', async () => {
    const source = (stats?: { sent: number, dropped: number, retries: number }): MetricsSource => ({
      info: () => ({ peerId: 'p', name: 'alpha', version: '0', meshId: 'm', startedAt: new Date(0).toISOString(), capacity: { cpus: 1, load1: 0, memTotal: 1, memFree: 1, diskTotal: 1, diskFree: 1 } }) as never,
      peers: () => [],
      containers: () => [],
      migrations: async () => [],
      held: async () => ({}),
      appended: () => new Map(),
      refused: () => 0,
      cloudwatch: () => stats
    })
    const metricsText = async (from: MetricsSource): Promise<string> => await createMetrics(from, { defaultMetrics: false }).text()
    const on = await metricsText(source({ sent: 7, dropped: 2, retries: 3 }))
    assert.match(on, /^# TYPE goto_cloudwatch_dropped_total counter\ngoto_cloudwatch_dropped_total 2$/m)
    assert.match(on, /^goto_cloudwatch_retries_total 3$/m)
    assert.match(on, /^goto_cloudwatch_sent_total 7$/m)
    assert.doesNotMatch(await metricsText(source()), /goto_cloudwatch/)
  })

  it('runs in an agent whose config turns it on, named by the node and the mesh', async () => {
    const dataDir = join(dir, 'agent')
    await initDataDir(dataDir)
    const agent = await createAgent({
      dataDir,
      name: 'cw-node',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      api: { host: '127.0.0.1', port: 0 },
      dockerHost: 'none',
      bootstrap: [],
      allowPeers: [],
      gossip: DEFAULT_GOSSIP,
      migration: { policy: {} },
      metrics: { cloudwatch: { enabled: true, endpoint: cw.url, intervalMs: 200 } }
    })
    await agent.start()
    try {
      await until('the agent\'s gauges', () => cw.received.some(d => d.MetricName === 'PeersAlive'))
      const datum = cw.received.find(d => d.MetricName === 'PeersAlive')
      assert.deepEqual(datum?.Dimensions, [{ Name: 'Node', Value: 'cw-node' }, { Name: 'Mesh', Value: agent.info().meshId }])
      assert.equal(datum?.Value, 0)
      await until('the sent count', () => (agent.cloudWatchStats()?.sent ?? 0) > 0)
    } finally {
      await agent.stop()
    }
    assert.equal(agent.cloudWatchStats(), undefined)
  })

  it('stops at once while a request hangs, and keeps its datums for the next start', async () => {
    cw.hanging = true
    const first = publisher({ intervalMs: 3_600_000 })
    first.start()
    const before = cw.requests
    await first.record([{ name: 'PeersAlive', value: 9 }])
    await until('the hung request', () => cw.requests > before)
    const t0 = Date.now()
    await first.stop()
    assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`)
    assert.equal(first.stats().sent, 0)
    cw.hanging = false
    const second = publisher({ intervalMs: 3_600_000 })
    second.start()
    await until('the datum', () => cw.received.length >= 1)
    assert.deepEqual(cw.received.map(d => d.Value), [9])
  })
})
