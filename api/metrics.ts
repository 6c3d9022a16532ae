/**
 * `GET /metrics` (and `/v1/metrics`): the agent's state in the Prometheus text
 * format (version 0.0.4), through `prom-client` with one registry per agent,
 * never the library's global one, so several agents can share a process.
 *
 * Gauges read the agent at each scrape (`collect`): this node's capacity, the
 * mesh view by status and by announced state, containers per node, the
 * migrations this node holds by role and phase, the audit log's entries held
 * by origin and how far they lag behind what peers advertised. Counters and
 * histograms only grow: the migration histograms, bytes and results are read
 * from the journal at each scrape, but each record is observed once and each
 * byte count advances by what it grew since the last scrape, so a record that
 * later changes (an activated migration rolled back) never takes a sample
 * back. The journal keeps its records, so after a restart the first scrape
 * counts them all again, as the totals they are. Log entries appended by kind,
 * the rebalance decisions among them, refused entries and the CloudWatch
 * publisher's counts are since start.
 *
 * The process and Node.js metrics of `prom-client` (CPU, resident memory, heap,
 * event-loop lag, GC, handles, open file descriptors) are on, prefixed `goto_`:
 * the agent is a long-lived daemon, and a leak or a blocked event loop is the
 * first thing to rule out when a migration is slow; the prefix keeps them apart
 * from another Node.js process scraped under the same job. They cost about
 * forty series; `defaultMetrics: false` leaves them out.
 *
 * @example
 * ```yaml
 * # prometheus.yml: the path is Prometheus' default; the token is the agent's API token
 * scrape_configs:
 *   - job_name: goto
 *     authorization: { credentials_file: /var/lib/goto/api.token }
 *     static_configs: [{ targets: ['127.0.0.1:7070'] }]
 * ```
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { NodeInfo, MeshContainer, PeerInfo } from '../node/agent.ts'
import type { AdvertisedVector } from '../node/audit/replication.ts'
import { lagBehind } from '../node/audit/replication.ts'
import type { MigrationRecord } from '../node/migration/journal.ts'
import type { CloudWatchStats } from '../node/metrics/cloudwatch.ts'

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** What the metrics are read from; each is called at scrape time only. */
export interface MetricsSource {
  info: () => NodeInfo
  peers: () => PeerInfo[]
  containers: () => MeshContainer[]
  migrations: () => Promise<MigrationRecord[]>
  /** The audit log's version vector: origin → entries held (each origin's chain is held without gaps). */
  held: () => Promise<Record<string, number>>
  /** Entries this node appended to its audit log since start, by kind. */
  appended: () => ReadonlyMap<string, number>
  /** Log entries from peers refused since start. */
  refused: () => number
  /** The version vectors peers sent when they last pulled this node's log. */
  advertised?: () => AdvertisedVector[]
  /** The CloudWatch publisher's counts; undefined when it is off. */
  cloudwatch?: () => CloudWatchStats | undefined
}

export interface MetricsInit {
  /** prom-client's process and Node.js metrics, prefixed `goto_`. @default true */
  defaultMetrics?: boolean
}

export interface Metrics {
  readonly registry: Registry
  /** Read what changed since the last scrape and render the text format. */
  text: () => Promise<string>
}

/** Upper bounds of the histograms' buckets, in seconds. */
export const DURATION_BUCKETS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
export const DOWNTIME_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** Audit kinds counted as rebalance decisions (issue 7 writes them: `rebalance.move`, `drain.started`, …). */
export const REBALANCE_KINDS = /^(rebalance|drain)\./

const ROLES = ['source', 'target'] as const
const STATUSES = ['alive', 'suspect', 'gone', 'left'] as const
const NODE_STATES = ['active', 'draining', 'leaving'] as const
/** The final phases a real migration can reach; a dry run is not counted. */
const RESULTS = ['activated', 'aborted', 'rolled-back'] as const

/** Seconds from a record's creation to its activation; undefined unless it activated. */
function durationOf (r: MigrationRecord): number | undefined {
  const activated = r.phases.find(p => p.phase === 'activated')
  return activated == null ? undefined : Math.max(0, Date.parse(activated.at) - Date.parse(r.createdAt)) / 1000
}

/** Set a gauge's series anew: series whose labels are gone disappear. */
function setAll<T extends string> (gauge: Gauge<T>, samples: Array<[Partial<Record<T, string>>, number]>): void {
  gauge.reset()
  for (const [labels, value] of samples) gauge.set(labels, value)
}

/** Count items by the labels `key` gives each. */
function countBy<T, L extends string> (items: T[], key: (item: T) => Record<L, string>): Array<[Record<L, string>, number]> {
  const counts = new Map<string, [Record<L, string>, number]>()
  for (const item of items) {
    const labels = key(item)
    const id = JSON.stringify(labels)
    const entry = counts.get(id) ?? [labels, 0]
    entry[1]++
    counts.set(id, entry)
  }
  return [...counts.values()]
}

export function createMetrics (source: MetricsSource, init: MetricsInit = {}): Metrics {
  const registry = new Registry()
  const registers = [registry]

  /**
   * Counters fed from totals read at scrape time advance by what each total
   * grew since the last scrape, never back: `key` names one total.
   */
  const counted = new Map<string, number>()
  const advance = <T extends string>(counter: Counter<T>, labels: Partial<Record<T, string>>, key: string, total: number): void => {
    const before = counted.get(key) ?? 0
    if (total > before) {
      counter.inc(labels, total - before)
      counted.set(key, total)
    }
  }
  /** Records (or record and phase) already put in a histogram or a result counter. */
  const observed = new Set<string>()
  const once = (key: string): boolean => {
    if (observed.has(key)) return false
    observed.add(key)
    return true
  }

  // this node and its host, read at each scrape
  const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[], collect: (g: Gauge<T>) => void): Gauge<T> =>
    new Gauge<T>({ name, help, labelNames, registers, collect () { collect(this) } })
  gauge('goto_info', 'this agent: peer id, name, version, mesh', ['peer_id', 'name', 'version', 'mesh'], g => {
    const info = source.info()
    setAll(g, [[{ peer_id: info.peerId, name: info.name, version: info.version, mesh: info.meshId }, 1]])
  })
  gauge('goto_start_time_seconds', 'when the agent started (Unix time)', [], g => { g.set(Date.parse(source.info().startedAt) / 1000) })
  gauge('goto_cpus', 'CPUs of this host', [], g => { g.set(source.info().capacity.cpus) })
  gauge('goto_load1', 'one-minute load average of this host', [], g => { g.set(source.info().capacity.load1) })
  gauge('goto_memory_bytes', 'memory of this host', ['kind'], g => {
    const cap = source.info().capacity
    setAll(g, [[{ kind: 'total' }, cap.memTotal], [{ kind: 'free' }, cap.memFree]])
  })
  gauge('goto_disk_bytes', 'disk of this host\'s container store', ['kind'], g => {
    const cap = source.info().capacity
    setAll(g, [[{ kind: 'total' }, cap.diskTotal], [{ kind: 'free' }, cap.diskFree]])
  })
  gauge('goto_peers', 'peers in the mesh view, by status', ['status'], g => {
    const peers = source.peers()
    setAll(g, STATUSES.map(status => [{ status }, peers.filter(p => p.status === status).length]))
  })
  gauge('goto_peers_by_state', 'live peers (alive or suspect) in the mesh view, by the state they announce', ['state'], g => {
    const live = source.peers().filter(p => p.status === 'alive' || p.status === 'suspect')
    setAll(g, NODE_STATES.map(state => [{ state }, live.filter(p => p.state === state).length]))
  })
  gauge('goto_containers', 'containers of the mesh, by node and state', ['node', 'state'], g => {
    setAll(g, countBy(source.containers(), c => ({ node: c.node, state: c.state })))
  })

  // the migrations, from the journal (read once a scrape, in text())
  const migrations = new Gauge({ name: 'goto_migrations', help: 'migrations this node holds, by role and phase', labelNames: ['role', 'phase'], registers })
  const ended = new Counter({ name: 'goto_migrations_ended_total', help: 'migrations this node took part in that reached a final phase, by role and that phase (activated, aborted, rolled-back); one activated then rolled back counts in both', labelNames: ['role', 'result'], registers })
  const duration = new Histogram({ name: 'goto_migration_duration_seconds', help: 'from creation to activation, of the migrations this node activated, by role', labelNames: ['role'], buckets: DURATION_BUCKETS, registers })
  const downtime = new Histogram({ name: 'goto_migration_downtime_seconds', help: 'from the freeze to the target\'s start, of the migrations this node sent', buckets: DOWNTIME_BUCKETS, registers })
  const bytes = new Counter({ name: 'goto_migration_bytes_total', help: 'snapshot bytes this node sent (source) and fetched (target)', labelNames: ['direction'], registers })
  const wire = new Counter({ name: 'goto_migration_wire_bytes_total', help: 'bytes on the wire after compression, by role', labelNames: ['role'], registers })
  const deduplicated = new Counter({ name: 'goto_migration_deduplicated_bytes_total', help: 'snapshot bytes never sent because the target held them, by role', labelNames: ['role'], registers })
  const chunksRefused = new Counter({ name: 'goto_migration_chunks_refused_total', help: 'chunks that failed their hash on arrival and were fetched again', registers })
  for (const role of ROLES) {
    for (const result of RESULTS) ended.inc({ role, result }, 0)
    duration.zero({ role })
    wire.inc({ role }, 0)
    deduplicated.inc({ role }, 0)
  }
  bytes.inc({ direction: 'sent' }, 0)
  bytes.inc({ direction: 'received' }, 0)

  const readMigrations = (records: MigrationRecord[]): void => {
    setAll(migrations, countBy(records, r => ({ role: r.role, phase: r.phase })))
    for (const r of records) {
      if (r.dryRun) continue
      const id = `${r.id}|${r.role}`
      for (const result of RESULTS) {
        if (r.phases.some(p => p.phase === result) && once(`ended|${id}|${result}`)) ended.inc({ role: r.role, result })
      }
      const took = durationOf(r)
      if (took != null && once(`duration|${id}`)) duration.observe({ role: r.role }, took)
      if (r.role === 'source' && took != null && r.downtimeMs != null && once(`downtime|${id}`)) downtime.observe(r.downtimeMs / 1000)
      const t = r.transfer
      if (t == null) continue
      advance(bytes, { direction: r.role === 'source' ? 'sent' : 'received' }, `bytes|${id}`, t.movedBytes)
      advance(wire, { role: r.role }, `wire|${id}`, t.wireBytes)
      advance(deduplicated, { role: r.role }, `held|${id}`, t.heldBytes)
      if (r.role === 'target') advance(chunksRefused, {}, `refused|${id}`, t.refused)
    }
  }

  // the audit log
  const entries = new Gauge({ name: 'goto_audit_entries', help: 'audit log entries this node holds, by origin (peer id)', labelNames: ['origin'], registers })
  const appended = new Counter({ name: 'goto_audit_appended_total', help: 'audit log entries this node wrote since start, by kind', labelNames: ['kind'], registers })
  const decisions = new Counter({ name: 'goto_rebalance_decisions_total', help: 'rebalance and drain decisions this node wrote to its audit log since start, by kind (rebalance.*, drain.*)', labelNames: ['kind'], registers })
  const refused = new Counter({ name: 'goto_audit_refused_total', help: 'audit log entries from peers refused since start', registers })
  const originLag = new Gauge({ name: 'goto_audit_origin_lag_entries', help: 'entries of an origin that a peer held, by the version vector it last sent, and this node lacks (the largest over the peers)', labelNames: ['origin'], registers })
  const peerLag = new Gauge({ name: 'goto_audit_peer_lag_entries', help: 'entries a peer held, by the version vector it last sent when it pulled from this node, that this node lacks', labelNames: ['peer'], registers })
  const vectorAge = new Gauge({ name: 'goto_audit_peer_vector_age_seconds', help: 'how old the version vector behind goto_audit_peer_lag_entries is', labelNames: ['peer'], registers })

  const readLog = (held: Record<string, number>): void => {
    setAll(entries, Object.entries(held).map(([origin, n]) => [{ origin }, n]))
    for (const [kind, n] of source.appended()) {
      advance(appended, { kind }, `appended|${kind}`, n)
      if (REBALANCE_KINDS.test(kind)) advance(decisions, { kind }, `decision|${kind}`, n)
    }
    advance(refused, {}, 'refused', source.refused())
    const vectors = source.advertised?.() ?? []
    const worst = new Map<string, number>()
    const now = Date.now()
    peerLag.reset()
    vectorAge.reset()
    for (const { peer, vector, at } of vectors) {
      const lag = lagBehind(held, vector)
      let behind = 0
      for (const [origin, n] of Object.entries(lag)) {
        behind += n
        worst.set(origin, Math.max(worst.get(origin) ?? 0, n))
      }
      peerLag.set({ peer }, behind)
      vectorAge.set({ peer }, Math.max(0, now - at) / 1000)
    }
    // every origin held or advertised has a series, 0 when nothing is missing
    setAll(originLag, [...new Set([...Object.keys(held), ...worst.keys()])].map(origin => [{ origin }, worst.get(origin) ?? 0]))
  }

  // the CloudWatch publisher: registered once it runs, so an agent without it shows none
  let cloudwatch: Record<keyof CloudWatchStats, Counter> | undefined
  const readCloudWatch = (stats: CloudWatchStats | undefined): void => {
    if (stats == null) return
    cloudwatch ??= {
      sent: new Counter({ name: 'goto_cloudwatch_sent_total', help: 'datums CloudWatch acknowledged', registers }),
      dropped: new Counter({ name: 'goto_cloudwatch_dropped_total', help: 'datums dropped: older than 14 days, over 2 h ahead, or not finite', registers }),
      retries: new Counter({ name: 'goto_cloudwatch_retries_total', help: 'sends tried again after a failure (a batch whose answer was lost may arrive twice)', registers })
    }
    for (const key of ['sent', 'dropped', 'retries'] as const) advance(cloudwatch[key], {}, `cloudwatch|${key}`, stats[key])
  }

  // after the agent's own, so the exposition opens with goto_info
  if (init.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'goto_' })

  return {
    registry,
    async text () {
      const [records, held] = await Promise.all([source.migrations(), source.held()])
      readMigrations(records)
      readLog(held)
      readCloudWatch(source.cloudwatch?.())
      return await registry.metrics()
    }
  }
}
