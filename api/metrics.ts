/**
 * `GET /v1/metrics`: the agent's state in the Prometheus text format
 * (version 0.0.4), read fresh at each scrape — this node's capacity, the mesh
 * view by status, containers per node, the migrations this node holds by role
 * and phase, their durations and downtimes as histograms and the bytes they
 * moved and saved (sums over the journal's records, which are kept, so they
 * only grow), the audit log entries refused since start, and, while the
 * CloudWatch publisher runs, its datums sent and dropped and its retries.
 *
 * @example
 * ```yaml
 * # prometheus.yml
 * scrape_configs:
 *   - job_name: goto
 *     metrics_path: /v1/metrics
 *     authorization: { credentials_file: /var/lib/goto/api.token }
 *     static_configs: [{ targets: ['127.0.0.1:7070'] }]
 * ```
 */
import type { NodeInfo, MeshContainer, PeerInfo } from '../node/agent.ts'
import type { MigrationRecord } from '../node/migration/journal.ts'
import type { CloudWatchStats } from '../node/metrics/cloudwatch.ts'

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** What the metrics are read from. */
export interface MetricsSource {
  info: () => NodeInfo
  peers: () => PeerInfo[]
  containers: () => MeshContainer[]
  migrations: () => Promise<MigrationRecord[]>
  refused: () => number
  /** The CloudWatch publisher's counts; undefined when it is off. */
  cloudwatch?: () => CloudWatchStats | undefined
}

type Labels = Record<string, string>
/** A sample: labels, value, and a suffix of the family's name (a histogram's `_bucket`, `_sum`, `_count`). */
type Sample = [Labels, number, string?]
interface Family { name: string, help: string, type: 'gauge' | 'counter' | 'histogram', samples: Sample[] }

const escapeLabel = (value: string): string => value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')

function render (families: Family[]): string {
  const lines: string[] = []
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`)
    for (const [labels, value, suffix = ''] of f.samples) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')
      lines.push(`${f.name}${suffix}${pairs === '' ? '' : `{${pairs}}`} ${value}`)
    }
  }
  return lines.join('\n') + '\n'
}

/** Count items by the labels `key` gives each. */
function countBy<T> (items: T[], key: (item: T) => Labels): Array<[Labels, number]> {
  const counts = new Map<string, [Labels, number]>()
  for (const item of items) {
    const labels = key(item)
    const id = JSON.stringify(labels)
    const entry = counts.get(id) ?? [labels, 0]
    entry[1]++
    counts.set(id, entry)
  }
  return [...counts.values()]
}

/** Upper bounds of the histograms' buckets, in seconds. */
export const DURATION_BUCKETS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
export const DOWNTIME_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** A histogram's samples (cumulative buckets, sum, count) of `values`, labelled with `labels`. */
function histogram (labels: Labels, values: number[], buckets: number[]): Sample[] {
  const samples: Sample[] = buckets.map(le => [{ ...labels, le: String(le) }, values.filter(v => v <= le).length, '_bucket'])
  samples.push([{ ...labels, le: '+Inf' }, values.length, '_bucket'])
  samples.push([labels, values.reduce((a, b) => a + b, 0), '_sum'], [labels, values.length, '_count'])
  return samples
}

/** Seconds from a record's creation to its activation; undefined unless it activated. */
function durationOf (r: MigrationRecord): number | undefined {
  const activated = r.phases.find(p => p.phase === 'activated')
  return activated == null ? undefined : Math.max(0, Date.parse(activated.at) - Date.parse(r.createdAt)) / 1000
}

const sum = (records: MigrationRecord[], value: (r: MigrationRecord) => number): number => records.reduce((a, r) => a + value(r), 0)

/** Histograms and byte counters over the migrations this node took part in. */
function migrationFamilies (records: MigrationRecord[]): Family[] {
  const real = records.filter(r => !r.dryRun)
  const roles = ['source', 'target'] as const
  const of = (role: string): MigrationRecord[] => real.filter(r => r.role === role)
  const durations = (role: string): number[] => of(role).map(durationOf).filter((d): d is number => d != null)
  const downtimes = of('source').filter(r => r.phase === 'activated' && r.downtimeMs != null).map(r => (r.downtimeMs as number) / 1000)
  const counter = (name: string, help: string, samples: Sample[]): Family => ({ name, help, type: 'counter', samples })
  return [
    { name: 'goto_migration_duration_seconds', help: 'from creation to activation, of the migrations this node activated, by role', type: 'histogram', samples: roles.flatMap(role => histogram({ role }, durations(role), DURATION_BUCKETS)) },
    { name: 'goto_migration_downtime_seconds', help: 'from the freeze to the target\'s start, of the migrations this node sent', type: 'histogram', samples: histogram({}, downtimes, DOWNTIME_BUCKETS) },
    counter('goto_migration_bytes_total', 'snapshot bytes this node sent (source) and fetched (target)', [
      [{ direction: 'sent' }, sum(of('source'), r => r.transfer?.movedBytes ?? 0)],
      [{ direction: 'received' }, sum(of('target'), r => r.transfer?.movedBytes ?? 0)]
    ]),
    counter('goto_migration_wire_bytes_total', 'bytes on the wire after compression, by role', roles.map(role => [{ role }, sum(of(role), r => r.transfer?.wireBytes ?? 0)])),
    counter('goto_migration_deduplicated_bytes_total', 'snapshot bytes never sent because the target held them, by role', roles.map(role => [{ role }, sum(of(role), r => r.transfer?.heldBytes ?? 0)])),
    counter('goto_migration_chunks_refused_total', 'chunks that failed their hash on arrival and were fetched again', [[{}, sum(of('target'), r => r.transfer?.refused ?? 0)]])
  ]
}

export async function metricsText (source: MetricsSource): Promise<string> {
  const info = source.info()
  const cap = info.capacity
  const peers = source.peers()
  const gauge = (name: string, help: string, samples: Array<[Labels, number]>): Family => ({ name, help, type: 'gauge', samples })
  const statuses = ['alive', 'suspect', 'gone', 'left'] as const
  const migrations = await source.migrations()
  return render([
    gauge('goto_info', 'this agent: peer id, name, version, mesh', [[{ peer_id: info.peerId, name: info.name, version: info.version, mesh: info.meshId }, 1]]),
    gauge('goto_start_time_seconds', 'when the agent started (Unix time)', [[{}, Date.parse(info.startedAt) / 1000]]),
    gauge('goto_cpus', 'CPUs of this host', [[{}, cap.cpus]]),
    gauge('goto_load1', 'one-minute load average of this host', [[{}, cap.load1]]),
    gauge('goto_memory_bytes', 'memory of this host', [[{ kind: 'total' }, cap.memTotal], [{ kind: 'free' }, cap.memFree]]),
    gauge('goto_disk_bytes', 'disk of this host\'s container store', [[{ kind: 'total' }, cap.diskTotal], [{ kind: 'free' }, cap.diskFree]]),
    gauge('goto_peers', 'peers in the mesh view, by status', statuses.map(status => [{ status }, peers.filter(p => p.status === status).length])),
    gauge('goto_containers', 'containers of the mesh, by node and state', countBy(source.containers(), c => ({ node: c.node, state: c.state }))),
    gauge('goto_migrations', 'migrations this node holds, by role and phase', countBy(migrations, r => ({ role: r.role, phase: r.phase }))),
    ...migrationFamilies(migrations),
    { name: 'goto_audit_refused_total', help: 'audit log entries from peers refused since start', type: 'counter', samples: [[{}, source.refused()]] },
    ...cloudWatchFamilies(source.cloudwatch?.())
  ])
}

/** The CloudWatch publisher's counters since start, when it runs. */
function cloudWatchFamilies (stats: CloudWatchStats | undefined): Family[] {
  if (stats == null) return []
  const counter = (name: string, help: string, value: number): Family => ({ name, help, type: 'counter', samples: [[{}, value]] })
  return [
    counter('goto_cloudwatch_sent_total', 'datums CloudWatch acknowledged', stats.sent),
    counter('goto_cloudwatch_dropped_total', 'datums dropped: older than 14 days, over 2 h ahead, or not finite', stats.dropped),
    counter('goto_cloudwatch_retries_total', 'sends tried again after a failure (a batch whose answer was lost may arrive twice)', stats.retries)
  ]
}
