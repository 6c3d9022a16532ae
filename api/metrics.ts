/**
 * `GET /v1/metrics`: the agent's state in the Prometheus text format
 * (version 0.0.4), read fresh at each scrape — this node's capacity, the mesh
 * view by status, containers per node, the migrations this node holds by role
 * and phase, the audit log entries refused since start, and, while the
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
interface Family { name: string, help: string, type: 'gauge' | 'counter', samples: Array<[Labels, number]> }

const escapeLabel = (value: string): string => value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')

function render (families: Family[]): string {
  const lines: string[] = []
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`)
    for (const [labels, value] of f.samples) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')
      lines.push(`${f.name}${pairs === '' ? '' : `{${pairs}}`} ${value}`)
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

export async function metricsText (source: MetricsSource): Promise<string> {
  const info = source.info()
  const cap = info.capacity
  const peers = source.peers()
  const gauge = (name: string, help: string, samples: Array<[Labels, number]>): Family => ({ name, help, type: 'gauge', samples })
  const statuses = ['alive', 'suspect', 'gone', 'left'] as const
  return render([
    gauge('goto_info', 'this agent: peer id, name, version, mesh', [[{ peer_id: info.peerId, name: info.name, version: info.version, mesh: info.meshId }, 1]]),
    gauge('goto_start_time_seconds', 'when the agent started (Unix time)', [[{}, Date.parse(info.startedAt) / 1000]]),
    gauge('goto_cpus', 'CPUs of this host', [[{}, cap.cpus]]),
    gauge('goto_load1', 'one-minute load average of this host', [[{}, cap.load1]]),
    gauge('goto_memory_bytes', 'memory of this host', [[{ kind: 'total' }, cap.memTotal], [{ kind: 'free' }, cap.memFree]]),
    gauge('goto_disk_bytes', 'disk of this host\'s container store', [[{ kind: 'total' }, cap.diskTotal], [{ kind: 'free' }, cap.diskFree]]),
    gauge('goto_peers', 'peers in the mesh view, by status', statuses.map(status => [{ status }, peers.filter(p => p.status === status).length])),
    gauge('goto_containers', 'containers of the mesh, by node and state', countBy(source.containers(), c => ({ node: c.node, state: c.state }))),
    gauge('goto_migrations', 'migrations this node holds, by role and phase', countBy(await source.migrations(), r => ({ role: r.role, phase: r.phase }))),
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
