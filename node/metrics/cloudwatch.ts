/**
 * The CloudWatch publisher: this node's gauges every `intervalMs`, and one set
 * of datums for each migration it sent that ended (activated or aborted), sent
 * to CloudWatch with PutMetricData under dimensions Node and Mesh.
 *
 * Every datum goes first into a durable queue, the `cwqueue` sublevel of the
 * agent's store, keyed by its timestamp then a sequence, so the queue reads
 * back oldest first. One sender at a time takes the oldest datums, sends them
 * in batches within PutMetricData's limits and deletes them only once the
 * answer is OK; on an error it waits (exponential backoff, capped) and tries
 * the same datums again. Datums CloudWatch would refuse — older than 14 days,
 * more than 2 h ahead, not finite — are dropped and counted.
 *
 * Delivery is at least once: a datum acknowledged is deleted and never sent
 * again, even after a crash; a batch whose answer was lost (a crash or a
 * timeout after CloudWatch took it) is sent again. Each retry is counted.
 */
import { CloudWatchClient, PutMetricDataCommand, type MetricDatum, type StandardUnit } from '@aws-sdk/client-cloudwatch'
import type { Level } from 'level'
import type { MigrationRecord } from '../migration/journal.ts'

/** The metrics the publisher sends, with their units. */
export const CLOUDWATCH_METRICS = {
  PeersAlive: 'Count',
  ContainersRunning: 'Count',
  MemFreeBytes: 'Bytes',
  DiskFreeBytes: 'Bytes',
  MigrationsActivated: 'Count',
  MigrationsAborted: 'Count',
  MigrationDowntime: 'Milliseconds',
  BytesSent: 'Bytes',
  BytesDeduplicated: 'Bytes'
} as const satisfies Record<string, StandardUnit>

export type MetricName = keyof typeof CLOUDWATCH_METRICS

/** PutMetricData's limits: datums a request, bytes of a request. */
export const MAX_DATUMS = 1000
export const MAX_REQUEST_BYTES = 1_000_000
/** How long one PutMetricData may take before it counts as failed. */
export const REQUEST_TIMEOUT_MS = 30_000
/** How far back and ahead CloudWatch takes a timestamp. */
export const MAX_AGE_MS = 14 * 24 * 3600_000
export const MAX_AHEAD_MS = 2 * 3600_000

/** One measurement as queued: `at` is when it was measured (ms since the epoch). */
export interface QueuedDatum { name: MetricName, value: number, at: number }

/** The gauges read at each interval. */
export interface GaugeSample { peersAlive: number, containersRunning: number, memFree: number, diskFree: number }

export interface CloudWatchOptions {
  /** The agent's store; the queue is its `cwqueue` sublevel. It must be open. */
  db: Level<string, unknown>
  node: string
  mesh: string
  namespace?: string
  region?: string
  endpoint?: string
  /** Storage resolution 1 s instead of 60 s. */
  highResolution?: boolean
  /** @default 60_000 */
  intervalMs?: number
  /** First wait after a failed send, doubled each time up to `retryMaxMs`. @default 1000 */
  retryMinMs?: number
  /** @default 60_000 */
  retryMaxMs?: number
  sample: () => GaugeSample
}

export interface CloudWatchStats { sent: number, dropped: number, retries: number }

export interface CloudWatchPublisher {
  start(): void
  /** Stop sampling and sending; the queue keeps what was not sent. */
  stop(): Promise<void>
  /** Queue datums measured now (or at `at`). */
  record(datums: Array<Omit<QueuedDatum, 'at'> & { at?: number }>): Promise<void>
  /** Queue the datums of a migration record if it is a source's that just ended. */
  onMigration(record: MigrationRecord): Promise<void>
  /** Send until the queue is empty or a send fails. */
  flush(): Promise<void>
  stats(): CloudWatchStats
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0')

/** A migration counts when it reaches its end; an update this long after that is not its end. */
const RECENT_END_MS = 10 * 60_000

/** Whether CloudWatch would take this datum now. */
export function acceptable (d: QueuedDatum, now: number): boolean {
  return Number.isFinite(d.value) && d.at >= now - MAX_AGE_MS && d.at <= now + MAX_AHEAD_MS
}

/** The datums of a migration this node sent, once it ended; none otherwise. */
export function migrationDatums (record: MigrationRecord): Array<Omit<QueuedDatum, 'at'>> {
  if (record.role !== 'source' || record.dryRun) return []
  if (record.phase === 'aborted') return [{ name: 'MigrationsAborted', value: 1 }]
  if (record.phase !== 'activated') return []
  const datums: Array<Omit<QueuedDatum, 'at'>> = [{ name: 'MigrationsActivated', value: 1 }]
  if (record.downtimeMs != null) datums.push({ name: 'MigrationDowntime', value: record.downtimeMs })
  if (record.transfer != null) {
    datums.push({ name: 'BytesSent', value: record.transfer.movedBytes }, { name: 'BytesDeduplicated', value: record.transfer.heldBytes })
  }
  return datums
}

export function createCloudWatchPublisher (options: CloudWatchOptions): CloudWatchPublisher {
  const queue = options.db.sublevel<string, QueuedDatum>('cwqueue', { valueEncoding: 'json' })
  // one attempt a send, so that each retry is the publisher's and counted; a hung request gives up
  const client = new CloudWatchClient({ region: options.region, endpoint: options.endpoint, maxAttempts: 1, requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS } })
  // stop() cuts a request in flight: its datums stay queued for the next start
  const aborting = new AbortController()
  const namespace = options.namespace ?? 'GoTo'
  const dimensions = [{ Name: 'Node', Value: options.node }, { Name: 'Mesh', Value: options.mesh }]
  const resolution = options.highResolution === true ? 1 : 60
  const intervalMs = options.intervalMs ?? 60_000
  const retryMinMs = options.retryMinMs ?? 1000
  const retryMaxMs = options.retryMaxMs ?? 60_000
  // the sequence orders datums of one millisecond; the run id keeps it unique across restarts
  const run = pad(Date.now() % 1e13, 13)
  let seq = 0
  const stats: CloudWatchStats = { sent: 0, dropped: 0, retries: 0 }
  const ended = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  let retryTimer: NodeJS.Timeout | undefined
  let backoff = 0
  let sending: Promise<boolean> | undefined
  let again = false
  let running = false

  const toWire = (d: QueuedDatum): MetricDatum => ({
    MetricName: d.name,
    Dimensions: dimensions,
    Timestamp: new Date(d.at),
    Value: d.value,
    Unit: CLOUDWATCH_METRICS[d.name],
    StorageResolution: resolution
  })

  /** Bytes a datum takes in the request body, over-estimated. */
  const wireSize = (d: QueuedDatum): number => JSON.stringify(toWire(d)).length + 64

  /** The oldest acceptable datums that fit one request; refused ones are deleted and counted. */
  async function nextBatch (): Promise<{ batch: Array<[string, QueuedDatum]>, dropped: number }> {
    const now = Date.now()
    const batch: Array<[string, QueuedDatum]> = []
    const refused: string[] = []
    let bytes = 256
    for await (const [key, datum] of queue.iterator({ limit: MAX_DATUMS * 2 })) {
      if (!acceptable(datum, now)) { refused.push(key); continue }
      bytes += wireSize(datum)
      if (batch.length === MAX_DATUMS || bytes > MAX_REQUEST_BYTES) break
      batch.push([key, datum])
    }
    if (refused.length > 0) {
      await queue.batch(refused.map(key => ({ type: 'del' as const, key })))
      stats.dropped += refused.length
    }
    return { batch, dropped: refused.length }
  }

  /** Send batches until the queue is empty (true) or a send fails or is aborted (false). */
  async function drain (): Promise<boolean> {
    for (;;) {
      const { batch, dropped } = await nextBatch()
      if (batch.length === 0) {
        if (dropped > 0) continue
        return true
      }
      try {
        const command = new PutMetricDataCommand({ Namespace: namespace, MetricData: batch.map(([, d]) => toWire(d)) })
        await client.send(command, { abortSignal: aborting.signal })
      } catch {
        return false
      }
      await queue.batch(batch.map(([key]) => ({ type: 'del' as const, key })))
      stats.sent += batch.length
    }
  }

  /** One sender at a time; a failure schedules a retry after the backoff. */
  async function send (): Promise<boolean> {
    if (sending != null) {
      // datums queued after the running drain looked: it goes round once more
      again = true
      return await sending
    }
    sending = (async () => {
      let ok: boolean
      do {
        again = false
        ok = await drain()
      } while (ok && again)
      return ok
    })().finally(() => { sending = undefined })
    const ok = await sending
    if (ok) {
      backoff = 0
    } else if (running && retryTimer == null) {
      backoff = backoff === 0 ? retryMinMs : Math.min(backoff * 2, retryMaxMs)
      retryTimer = setTimeout(() => {
        retryTimer = undefined
        stats.retries++
        void send()
      }, backoff)
    }
    return ok
  }

  const publisher: CloudWatchPublisher = {
    start () {
      running = true
      timer = setInterval(() => { void publisher.record(gauges(options.sample())).catch(() => {}) }, intervalMs)
      void send()
    },
    async stop () {
      running = false
      clearInterval(timer)
      clearTimeout(retryTimer)
      retryTimer = undefined
      aborting.abort()
      await sending
      client.destroy()
    },
    async record (datums) {
      const now = Date.now()
      const ops = datums.map(d => {
        const datum: QueuedDatum = { name: d.name, value: d.value, at: d.at ?? now }
        return { type: 'put' as const, key: `${pad(datum.at, 15)}!${run}!${pad(seq++, 9)}`, value: datum }
      })
      await queue.batch(ops)
      // a retry is already scheduled while the endpoint fails: no send before it
      if (running && retryTimer == null) void send()
    },
    async onMigration (record) {
      if (ended.has(record.id)) return
      // a record ended long ago and touched again (its rollback point pruned, after a restart) counted then
      if (Date.parse(record.phases.at(-1)?.at ?? '') < Date.now() - RECENT_END_MS) return
      const datums = migrationDatums(record)
      if (datums.length === 0) return
      ended.add(record.id)
      await publisher.record(datums)
    },
    async flush () {
      await send()
    },
    stats: () => ({ ...stats })
  }
  return publisher
}

function gauges (s: GaugeSample): Array<Omit<QueuedDatum, 'at'>> {
  return [
    { name: 'PeersAlive', value: s.peersAlive },
    { name: 'ContainersRunning', value: s.containersRunning },
    { name: 'MemFreeBytes', value: s.memFree },
    { name: 'DiskFreeBytes', value: s.diskFree }
  ]
}
