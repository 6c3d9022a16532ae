/**
 * `goto-node`: the agent's command line. `init` and `start` act on this host;
 * the other commands talk to the local agent's HTTP API. `go-to` (go-to.ts)
 * runs a few of the same commands under the original design's names.
 *
 * Exit codes: 0 done, 1 failed, 2 usage error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { serve } from '@hono/node-server'
import { createApp } from '../../api/app.ts'
import { checkApiBind, isLoopbackHost } from '../../api/host-check.ts'
import { createAgent, VERSION, type MeshContainer, type NodeInfo, type PeerInfo } from '../agent.ts'
import type { MigrationRecord } from '../migration/journal.ts'
import { isFinal } from '../../protocols/migrate/index.ts'
import type { AuditEntry, OriginReport } from '../audit/log.ts'
import { resolveConfig, defaultDataDir, type ConfigFlags } from '../config.ts'
import { initDataDir, loadSecrets } from '../data-dir.ts'
import { parseMultiaddr } from '../mesh/gossip.ts'
import { createLogger, errorMessage } from '../logger.ts'
import { createClient, type Client } from './client.ts'
import { ago, bytes, table } from './output.ts'
import { parseRate } from '../chunks/bandwidth.ts'
import type { DecisionRecord, PlanReport, RebalanceStatus } from '../rebalance/service.ts'
import type { DrainReport } from '../rebalance/drain.ts'
import { DrainBody } from '../../api/schemas.ts'

type Options = NonNullable<ParseArgsConfig['options']>
type Values = Record<string, string | boolean | string[] | undefined>

export interface Command {
  summary: string
  usage: string
  details?: string
  options: Options
  /** How many positionals: [min, max]. */
  positionals: [number, number]
  run(values: Values, positionals: string[]): Promise<number>
}

class UsageError extends Error {
  override name = 'UsageError'
}

/** The command ran and the outcome is a failure: one line with the code, exit 1. */
class CommandFailed extends Error {
  override name = 'CommandFailed'
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

const print = (text: string): void => { process.stdout.write(text + '\n') }

const dataDirOption: Options = { 'data-dir': { type: 'string' } }
const clientOptions: Options = { ...dataDirOption, api: { type: 'string' } }
const jsonOption: Options = { json: { type: 'boolean' } }

const CLIENT_HELP = `  --api URL          the agent's API (default: $GOTO_API, the data dir's config, or http://127.0.0.1:7070)
  --data-dir DIR     where the API token is read (default: $GOTO_DATA_DIR, /var/lib/goto as root, else ~/.local/share/goto);
                     $GOTO_TOKEN overrides the token`

const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
const list = (v: unknown): string[] | undefined => Array.isArray(v) && v.length > 0 ? v as string[] : undefined

async function client (values: Values): ReturnType<typeof createClient> {
  return await createClient({ api: str(values.api), dataDir: str(values['data-dir']) })
}

/** Every command of goto-node, by name. */
export const commands: Record<string, Command> = {
  init: {
    summary: 'create a data dir: identity, API token, config, and a swarm key unless one is given',
    usage: 'goto-node init [--data-dir DIR] [--swarm-key FILE] [--name NAME] [--listen MULTIADDR]... [--api HOST:PORT] [--docker-host URL] [--bootstrap MULTIADDR]...',
    details: `  --swarm-key FILE   join the mesh of this key; without it a new mesh key is made, to copy to the other hosts
  The other options are written to the new config.json (see "goto-node start --help").`,
    options: {
      ...dataDirOption,
      'swarm-key': { type: 'string' },
      name: { type: 'string' },
      listen: { type: 'string', multiple: true },
      api: { type: 'string' },
      'docker-host': { type: 'string' },
      bootstrap: { type: 'string', multiple: true }
    },
    positionals: [0, 0],
    async run (values) {
      const config: Record<string, unknown> = {}
      if (str(values.name) != null) config.name = values.name
      if (list(values.listen) != null) config.listen = list(values.listen)?.map(a => { parseMultiaddr(a); return a })
      if (str(values.api) != null) config.api = values.api
      if (str(values['docker-host']) != null) config.dockerHost = values['docker-host']
      if (list(values.bootstrap) != null) config.bootstrap = list(values.bootstrap)?.map(a => { parseMultiaddr(a); return a })
      const result = await initDataDir(str(values['data-dir']) ?? defaultDataDir(), { swarmKeyFile: str(values['swarm-key']), config })
      print(`initialised ${result.dataDir}`)
      print(`  peer id    ${result.peerId}`)
      print(`  config     ${result.configPath}`)
      print(`  API token  ${result.tokenPath}`)
      if (result.swarmKeyGenerated) {
        print(`  swarm key  ${result.swarmKeyPath} (new mesh: copy this file to every other host and run "goto-node init --swarm-key <file>" there)`)
      } else {
        print(`  swarm key  ${result.swarmKeyPath} (copied)`)
      }
      print('next: goto-node start' + (values['data-dir'] != null ? ` --data-dir ${String(values['data-dir'])}` : ''))
      return 0
    }
  },

  start: {
    summary: 'run the agent in the foreground; SIGINT or SIGTERM makes it leave the mesh and stop',
    usage: 'goto-node start [--data-dir DIR] [--name NAME] [--listen MULTIADDR]... [--api HOST:PORT] [--docker-host URL] [--bootstrap MULTIADDR]...',
    details: `  --listen MULTIADDR     mesh listen address (default /ip4/0.0.0.0/tcp/4001); repeat for more
  --api HOST:PORT        where the HTTP API binds (default 127.0.0.1:7070)
  --docker-host URL      unix:///var/run/docker.sock (default), tcp://HOST:PORT, or none for a member without containers
  --bootstrap MULTIADDR  a peer to dial at start (/ip4/…/tcp/…/p2p/…); repeat for more. Peers met before are
                         remembered, so a restarted agent rejoins without this.
  --name NAME            this host's name in the mesh (default: the hostname)
  Precedence: flags > environment (GOTO_DATA_DIR, GOTO_NAME, GOTO_LISTEN, GOTO_API_LISTEN, GOTO_DOCKER_HOST,
  GOTO_BOOTSTRAP, GOTO_ANNOUNCE, GOTO_ALLOW_PEERS; lists comma-separated) > the data dir's config.json > defaults.
  GOTO_LOG_LEVEL sets the log level (debug, info, warn, error).`,
    options: {
      ...dataDirOption,
      name: { type: 'string' },
      listen: { type: 'string', multiple: true },
      api: { type: 'string' },
      'docker-host': { type: 'string' },
      bootstrap: { type: 'string', multiple: true }
    },
    positionals: [0, 0],
    async run (values) {
      const flags: ConfigFlags = {
        dataDir: str(values['data-dir']),
        name: str(values.name),
        listen: list(values.listen),
        api: str(values.api),
        dockerHost: str(values['docker-host']),
        bootstrap: list(values.bootstrap)
      }
      const config = await resolveConfig(flags)
      for (const addr of [...config.listen, ...config.bootstrap, ...config.announce]) parseMultiaddr(addr)
      const logger = createLogger('goto')
      // one stray promise must not take the whole agent down: log it with its stack and go on
      process.on('unhandledRejection', (err) => {
        logger.error('unhandled rejection', { error: errorMessage(err), stack: (err as Error)?.stack?.split('\n').slice(1, 5).join(' | ') })
      })
      checkApiBind(config.api.host, { allowRemote: config.apiAllowRemote === true })
      const agent = await createAgent(config, { logger })
      const { apiToken } = await loadSecrets(config.dataDir)
      await agent.start()

      let exiting = false
      const app = createApp({ agent, token: apiToken, hosts: config.apiHosts, logger: logger.child('api'), onLeave: () => { void shutdown('leave') } })
      const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, hostname: config.api.host, port: config.api.port }, () => { resolve(s) })
        s.once('error', reject)
      }).catch(async (err: any) => {
        await agent.stop()
        throw Object.assign(new Error(`cannot serve the API on ${config.api.host}:${config.api.port}: ${err.message}`), { code: 'GOTO_ERR_API_BIND' })
      })
      if (!isLoopbackHost(config.api.host)) {
        logger.warn('the API listens beyond loopback; anyone who can reach it and holds the token can act on this node', { api: `${config.api.host}:${config.api.port}` })
      }
      const info = agent.info()
      print(`goto-node ${VERSION} running as ${info.name}`)
      print(`  peer id  ${info.peerId}`)
      for (const addr of info.addrs) print(`  listen   ${addr}`)
      print(`  api      http://${config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host}:${config.api.port}`)
      print(`  runtime  ${info.runtime}`)

      const shutdown = async (why: string): Promise<void> => {
        if (exiting) return
        exiting = true
        logger.info('leaving the mesh', { reason: why })
        await agent.stop()
        server.close()
        ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
      }
      process.once('SIGINT', () => { void shutdown('SIGINT') })
      process.once('SIGTERM', () => { void shutdown('SIGTERM') })
      await agent.stopped
      server.close()
      return 0
    }
  },

  join: {
    summary: 'connect the local agent to a mesh through one of its members',
    usage: 'goto-node join <multiaddr> [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: clientOptions,
    positionals: [1, 1],
    async run (values, [addr]) {
      parseMultiaddr(addr ?? '')
      const res = await (await client(values)).post<{ peerId: string }>('/v1/mesh/join', { addr })
      print(`joined through ${res.peerId}`)
      return 0
    }
  },

  leave: {
    summary: 'make the local agent announce its leave and stop; with --drain, first move its containers to peers',
    usage: 'goto-node leave [--drain [--deadline DURATION]] [--json] [--api URL] [--data-dir DIR]',
    details: `  --drain            mark the node draining (gossiped: nobody sends it work), move every container but
                     those labelled goto.pinned=true to peers with room, one at a time, then leave; prints each
                     container as it lands and, at the end, what stayed and why. Exit 1 when anything stayed.
  --deadline D       give up on what has not moved after D (90s, 15m, 1h; default 15m)
  --json             print the drain's JSON lines as they come
${CLIENT_HELP}`,
    options: { ...clientOptions, ...jsonOption, drain: { type: 'boolean' }, deadline: { type: 'string' } },
    positionals: [0, 0],
    async run (values) {
      const c = await client(values)
      if (values.drain !== true) {
        if (values.deadline != null) throw new UsageError('--deadline goes with --drain')
        const res = await c.post<{ peerId: string }>('/v1/mesh/leave')
        print(`${res.peerId} is leaving the mesh`)
        return 0
      }
      const deadline = str(values.deadline)
      // the API's own schema, so the two never disagree on what a span is
      if (!DrainBody.safeParse({ deadline }).success) throw new UsageError(`--deadline "${deadline}" is not a span like 90s, 15m or 1h`)
      let report: DrainReport | undefined
      let shown = 0
      for await (const line of c.lines('/v1/mesh/drain', deadline != null ? { deadline } : {})) {
        const l = line as { type: string, report?: DrainReport, deadline?: string, code?: string, detail?: string }
        if (values.json === true) print(JSON.stringify(l))
        if (l.type === 'error') throw new CommandFailed(l.code ?? 'GOTO_ERR_DRAIN', l.detail ?? 'the drain failed')
        if (l.type === 'started' && values.json !== true) print(`draining until ${l.deadline ?? ''}; the node takes no new work`)
        if (l.report == null) continue
        if (values.json !== true) {
          for (const m of l.report.moved.slice(shown)) print(`moved  ${m.container} -> ${m.targetName}${m.migration != null ? ` (migration ${m.migration})` : ''}`)
        }
        shown = l.report.moved.length
        // only the last line is the report; the ones before say what landed so far
        if (l.type === 'report') report = l.report
      }
      if (report == null) throw new CommandFailed('GOTO_ERR_AGENT_UNREACHABLE', 'the drain ended without a report; "goto-node show-log" holds its drain.finished entry')
      if (values.json !== true) {
        for (const s of report.stayed) print(`stayed ${s.container}: ${s.reason}`)
        print(report.done ? `drained: ${report.moved.length} moved; the node has left the mesh` : `not drained: ${report.stayed.length} stayed; the node has left the mesh`)
      }
      return report.done ? 0 : 1
    }
  },

  rebalance: {
    summary: 'show what the local agent would move now and why, make one decision now, or pause and resume its rebalancing',
    usage: 'goto-node rebalance [--dry-run] [--json] | goto-node rebalance pause|resume [--api URL] [--data-dir DIR]',
    details: `  (no argument)      look at the mesh now and start at most one move; prints the decision and its reason
  --dry-run          only show the decision: the loads of the mesh, the band around the mean, the best
                     moves and the containers that may not move, and why
  pause | resume     this node starts and takes no rebalance moves until resumed (kept across restarts);
                     manual migrations and drains still run
  --json             print the API's answer
${CLIENT_HELP}`,
    options: { ...clientOptions, ...jsonOption, 'dry-run': { type: 'boolean' } },
    positionals: [0, 1],
    async run (values, [action]) {
      const c = await client(values)
      if (action != null) {
        if (action !== 'pause' && action !== 'resume') throw new UsageError(`"${action}" is not pause or resume`)
        if (values['dry-run'] === true) throw new UsageError('--dry-run does not go with pause or resume')
        const status = await c.post<RebalanceStatus>(`/v1/rebalance/${action}`)
        print(values.json === true ? JSON.stringify(status, null, 2) : `rebalancing ${status.paused ? 'paused' : 'resumed'} on this node`)
        return 0
      }
      if (values['dry-run'] !== true) {
        const { decision } = await c.post<{ decision: DecisionRecord }>('/v1/rebalance')
        if (values.json === true) {
          print(JSON.stringify(decision, null, 2))
        } else {
          print(decision.action === 'move' ? `moving ${decision.container ?? ''} to ${decision.target ?? ''} (migration ${decision.migration ?? ''})` : 'holding')
          print(`  ${decision.reason}`)
        }
        return 0
      }
      const p = await c.get<PlanReport>('/v1/rebalance')
      if (values.json === true) {
        print(JSON.stringify(p, null, 2))
        return 0
      }
      const flags = [p.status.enabled ? undefined : 'off in config', p.status.paused ? 'paused' : undefined, p.status.draining ? 'draining' : undefined].filter(f => f != null)
      print(`node       ${p.node}${flags.length > 0 ? ` (${flags.join(', ')})` : ''}`)
      print(`mean load  ${p.mean.toFixed(3)}, band ${p.band[0].toFixed(3)}-${p.band[1].toFixed(3)}`)
      print(table(['NODE', 'LOAD', 'CONTAINERS'], p.loads.map(l => [l.name, l.load.toFixed(3), String(l.containers)])))
      const d = p.decision
      print(`would      ${d.action === 'move' ? `move ${d.container ?? ''} (${bytes(d.bytes ?? 0)}) to ${d.targetName ?? ''}` : 'hold'}`)
      print(`because    ${d.reason}`)
      if (p.candidates.length > 0) {
        print('moves considered:')
        print(table(['CONTAINER', 'TO', 'SIZE', 'GAIN', 'THIS NODE', 'TARGET'], p.candidates.map(m => [m.container, m.targetName, bytes(m.bytes), m.gain.toFixed(3),
          `${m.sourceLoad[0].toFixed(3)} -> ${m.sourceLoad[1].toFixed(3)}`, `${m.targetLoad[0].toFixed(3)} -> ${m.targetLoad[1].toFixed(3)}`])))
      }
      for (const s of p.skipped) print(`kept       ${s.container}: ${s.reason}`)
      return 0
    }
  },

  peers: {
    summary: 'list the peers in the local agent\'s mesh view',
    usage: 'goto-node peers [--json] [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [0, 0],
    async run (values) {
      const { peers } = await (await client(values)).get<{ peers: PeerInfo[] }>('/v1/peers')
      if (values.json === true) {
        print(JSON.stringify(peers, null, 2))
        return 0
      }
      if (peers.length === 0) {
        print('no peers yet (join one with "goto-node join <multiaddr>")')
        return 0
      }
      print(table(['NAME', 'PEER ID', 'STATUS', 'STATE', 'CPUS', 'LOAD', 'MEM FREE', 'DISK FREE', 'CONTAINERS', 'HEARD'],
        peers.map(p => [p.name, p.peerId, p.status, p.state, String(p.capacity.cpus), p.capacity.load1.toFixed(2),
          bytes(p.capacity.memFree), bytes(p.capacity.diskFree), String(p.containers), ago(p.lastHeard)])))
      return 0
    }
  },

  status: {
    summary: 'show the local agent: peer id, addresses, capacity, mesh',
    usage: 'goto-node status [--json] [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [0, 0],
    async run (values) {
      const c = await client(values)
      const [info, { peers }] = await Promise.all([c.get<NodeInfo>('/v1/node'), c.get<{ peers: PeerInfo[] }>('/v1/peers')])
      if (values.json === true) {
        print(JSON.stringify({ ...info, peers: peers.length, peersAlive: peers.filter(p => p.status === 'alive').length }, null, 2))
        return 0
      }
      const count = (s: string): number => peers.filter(p => p.status === s).length
      print(`name        ${info.name}`)
      print(`peer id     ${info.peerId}`)
      print(`state       ${info.state}`)
      print(`mesh        ${info.meshId}`)
      print(`version     ${info.version}`)
      print(`started     ${info.startedAt}`)
      print(`runtime     ${info.runtime}`)
      print(`capacity    ${info.capacity.cpus} cpus, load ${info.capacity.load1.toFixed(2)}, memory ${bytes(info.capacity.memFree)} free of ${bytes(info.capacity.memTotal)}, disk ${bytes(info.capacity.diskFree)} free of ${bytes(info.capacity.diskTotal)}`)
      print(`containers  ${info.containers}`)
      print(`peers       ${count('alive')} alive, ${count('suspect')} suspect, ${count('gone')} gone, ${count('left')} left`)
      for (const addr of info.addrs) print(`listen      ${addr}`)
      return 0
    }
  },

  'list-containers': {
    summary: 'list the containers of the whole mesh, optionally those whose name matches a regexp',
    usage: 'goto-node list-containers [regexp] [--json] [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [0, 1],
    async run (values, [match]) {
      const query = match != null ? `?match=${encodeURIComponent(match)}` : ''
      const { containers } = await (await client(values)).get<{ containers: MeshContainer[] }>(`/v1/containers${query}`)
      if (values.json === true) {
        print(JSON.stringify(containers, null, 2))
        return 0
      }
      if (containers.length === 0) {
        print(match != null ? `no container matches ${match}` : 'no containers in the mesh')
        return 0
      }
      print(table(['NODE', 'NAME', 'IMAGE', 'STATE', 'SIZE', 'ID'],
        containers.map(c => [c.node, c.name, c.image, c.state, `${bytes(c.sizeRw)} (${bytes(c.sizeRootFs)})`, c.id.slice(0, 12)])))
      return 0
    }
  }
}

/** A migration's progress on one line: phase, bar, percent of the bytes, rate and time left while it runs. */
function progressLine (r: MigrationRecord): string {
  const total = Math.max(r.bytes.total, r.bytes.moved, 1)
  const pct = r.phase === 'activated' ? 100 : Math.min(99, Math.floor(r.bytes.moved / total * 100))
  const width = 24
  const filled = Math.round(pct / 100 * width)
  const line = `${r.phase.padEnd(12)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%  ${bytes(r.bytes.moved)}/${bytes(total)}`
  if (isFinal(r.phase)) return line
  const rate = r.bytes.moved / Math.max(0.001, (Date.now() - Date.parse(r.createdAt)) / 1000)
  const eta = rate > 0 ? `${Math.ceil((total - r.bytes.moved) / rate)}s` : '-'
  return `${line}  ${bytes(rate)}/s  eta ${eta}`
}

const FOLLOW_RETRIES = 5

/**
 * Follow a migration through its events stream until a final phase, calling
 * `onRecord` with each record. A stream cut before the end (the agent
 * restarting, say) is opened again, a few times.
 */
async function follow (c: Client, id: string, onRecord: (r: MigrationRecord) => void): Promise<MigrationRecord> {
  let last: MigrationRecord | undefined
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const { event, data } of c.events(`/v1/migrations/${encodeURIComponent(id)}/events`)) {
        if (event !== 'migration') continue
        last = data as MigrationRecord
        onRecord(last)
      }
    } catch (err: any) {
      if (typeof err?.code === 'string' && err.code.startsWith('GOTO_ERR')) throw err
    }
    if (last != null && isFinal(last.phase)) return last
    if (attempt >= FOLLOW_RETRIES) throw new CommandFailed('GOTO_ERR_AGENT_UNREACHABLE', `lost the events of migration ${id}; "goto-node watch ${id}" follows it again`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
}

/**
 * Show a migration's progress on `out`: redrawn in place on a terminal, else
 * one line per phase; with `json`, every record as one line of JSON.
 */
function progressPrinter (out: NodeJS.WriteStream, json: boolean): { update: (r: MigrationRecord) => void, done: () => void } {
  const tty = out.isTTY === true && !json
  let lastPhase = ''
  return {
    update (r) {
      if (json) out.write(JSON.stringify(r) + '\n')
      else if (tty) out.write(`\r${progressLine(r)}\x1b[K`)
      else if (r.phase !== lastPhase) out.write(progressLine(r) + '\n')
      lastPhase = r.phase
    },
    done () {
      if (tty) out.write('\n')
    }
  }
}

function migrationSummary (r: MigrationRecord): string {
  const lines = [
    `migration  ${r.id}`,
    `container  ${r.container}${r.name !== r.container ? ` → ${r.name}` : ''}`,
    `from       ${r.sourceNode} (${r.source})`,
    `to         ${r.targetNode} (${r.target})`,
    `role       ${r.role}`,
    `phase      ${r.phase}`,
    `moved      ${bytes(r.bytes.moved)} of ${bytes(r.bytes.total)}`
  ]
  if (r.downtimeMs != null) lines.push(`downtime   ${r.downtimeMs} ms`)
  if (r.health != null) lines.push(`health     ${r.health}`)
  if (r.rollbackName != null) lines.push(`rollback   ${r.rollbackName} (until ${r.rollbackExpiresAt ?? '-'})`)
  if (r.error != null) lines.push(`error      ${r.error.code}: ${r.error.message}`)
  lines.push('phases')
  let prev: number | undefined
  for (const p of r.phases) {
    const t = Date.parse(p.at)
    lines.push(`  ${p.at}  ${p.phase}${prev != null ? `  (+${t - prev} ms)` : ''}`)
    prev = t
  }
  return lines.join('\n')
}

Object.assign(commands, {
  migrate: {
    summary: 'move a container of this node, with its config and volumes, to a peer',
    usage: 'goto-node migrate [--async] [--dry-run] [--consistency freeze|stop] [--bwlimit RATE] [--no-precopy] -s <source name> [-t <target name>] <target peer id, name or IP>',
    details: `  -s, --source NAME       the container here
  -t, --target-name NAME  its name on the target (default: the same)
  --consistency freeze    pause it for the final copy: crash-consistent, and a failure simply resumes it (default)
  --consistency stop      stop it gracefully first: application-consistent, right for databases
  --stop-timeout SECONDS  how long a graceful stop may take (default 10)
  --dry-run               plan, offer and admission only: what would cross, or why the target refuses
  --async                 print the migration id and return at once (go-to: -async); "goto-node watch <id>" follows it
  --allow-bind-mounts     move a container that bind-mounts host paths (the same paths must exist on the target)
  --bwlimit RATE          bytes a second for this migration's chunks, e.g. 10M, 512k, 1.5MiB (the node's
                          own limit, GOTO_BWLIMIT or migration.bwlimit in config.json, applies as well)
  --no-precopy            skip the round that sends the bulk while the container still runs (less data
                          crosses in all, but the container is frozen for the whole transfer)
  --json                  print the final record as JSON
  Without --async, a progress bar on stderr (a line per phase when stderr is not a terminal), fed by
  the migration's events stream. Exit 0 only once the container runs on the target.
${CLIENT_HELP}`,
    options: {
      ...clientOptions,
      ...jsonOption,
      source: { type: 'string', short: 's' },
      'target-name': { type: 'string', short: 't' },
      consistency: { type: 'string' },
      'stop-timeout': { type: 'string' },
      'dry-run': { type: 'boolean' },
      async: { type: 'boolean' },
      'allow-bind-mounts': { type: 'boolean' },
      bwlimit: { type: 'string' },
      'no-precopy': { type: 'boolean' }
    },
    positionals: [1, 1],
    async run (values: Values, [target]: string[]) {
      const source = str(values.source)
      if (source == null) throw new UsageError('-s <source name> is required')
      const consistency = str(values.consistency)
      if (consistency != null && consistency !== 'freeze' && consistency !== 'stop') throw new UsageError('--consistency is freeze or stop')
      const stopTimeout = str(values['stop-timeout'])
      if (stopTimeout != null && !/^\d+$/.test(stopTimeout)) throw new UsageError('--stop-timeout takes whole seconds')
      try {
        parseRate(str(values.bwlimit))
      } catch (err) {
        throw new UsageError(`--bwlimit: ${(err as Error).message}`)
      }
      const c = await client(values)
      const started = await c.post<MigrationRecord>('/v1/migrations', {
        container: source,
        target,
        name: str(values['target-name']),
        consistency,
        stopTimeout: stopTimeout != null ? Number(stopTimeout) : undefined,
        dryRun: values['dry-run'] === true,
        allowBindMounts: values['allow-bind-mounts'] === true,
        bwlimit: str(values.bwlimit),
        precopy: values['no-precopy'] === true ? false : undefined,
        async: true
      })
      if (values.async === true) {
        print(values.json === true ? JSON.stringify(started, null, 2) : started.id)
        return 0
      }
      const progress = progressPrinter(process.stderr, false)
      const record = await follow(c, started.id, progress.update)
      progress.done()
      if (values.json === true) print(JSON.stringify(record, null, 2))
      if (record.phase === 'dry-run') {
        if (values.json !== true) print(`dry run: ${record.targetNode} admits ${record.container}; about ${bytes(record.bytes.total)} would cross (migration ${record.id})`)
        return 0
      }
      if (record.phase !== 'activated') {
        throw new CommandFailed(record.error?.code ?? 'GOTO_ERR_MIGRATION_FAILED', `${record.error?.message ?? record.phase} (migration ${record.id}; ${record.container} runs here as before)`)
      }
      if (values.json !== true) {
        print(`migrated ${record.container} to ${record.targetNode} as ${record.name}`)
        print(`  migration  ${record.id}`)
        print(`  downtime   ${record.downtimeMs ?? '-'} ms`)
        const t = record.transfer
        if (t != null) print(`  sent       ${bytes(t.movedBytes)} of ${bytes(t.bytes)} snapshotted (${bytes(Math.max(0, t.bytes - t.movedBytes))} deduplicated, ${bytes(t.wireBytes)} on the wire)`)
        else print(`  moved      ${bytes(record.bytes.moved)}`)
        print(`  rollback   goto-node rollback ${record.id}`)
      }
      if (record.error != null) throw new CommandFailed(record.error.code, record.error.message)
      return 0
    }
  },

  migrations: {
    summary: 'list the migrations this node took part in',
    usage: 'goto-node migrations [--json] [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [0, 0],
    async run (values: Values) {
      const { migrations } = await (await client(values)).get<{ migrations: MigrationRecord[] }>('/v1/migrations')
      if (values.json === true) {
        print(JSON.stringify(migrations, null, 2))
        return 0
      }
      if (migrations.length === 0) {
        print('no migrations yet')
        return 0
      }
      print(table(['ID', 'ROLE', 'CONTAINER', 'FROM', 'TO', 'PHASE', 'MOVED', 'DOWNTIME', 'STARTED'],
        migrations.map(m => [m.id, m.role, m.container, m.sourceNode, m.targetNode, m.phase, bytes(m.bytes.moved), m.downtimeMs != null ? `${m.downtimeMs} ms` : '-', ago(m.createdAt)])))
      return 0
    }
  },

  migration: {
    summary: 'show one migration (phases with times, bytes, error), or cancel it before commit',
    usage: 'goto-node migration <id> [--json] | goto-node migration cancel <id>',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [1, 2],
    async run (values: Values, args: string[]) {
      const c = await client(values)
      if (args[0] === 'cancel') {
        if (args[1] == null) throw new UsageError('missing the migration id')
        const record = await c.post<MigrationRecord>(`/v1/migrations/${encodeURIComponent(args[1])}/cancel`)
        print(values.json === true ? JSON.stringify(record, null, 2) : `migration ${record.id} is ${record.phase}`)
        return record.phase === 'aborted' ? 0 : 1
      }
      if (args.length > 1) throw new UsageError(`unexpected argument "${args[1] ?? ''}"`)
      const record = await c.get<MigrationRecord>(`/v1/migrations/${encodeURIComponent(args[0] ?? '')}`)
      print(values.json === true ? JSON.stringify(record, null, 2) : migrationSummary(record))
      return 0
    }
  },

  rollback: {
    summary: 'bring a migrated container back: the target\'s copy goes, the original runs again under its name',
    usage: 'goto-node rollback <migration id> [--json] [--api URL] [--data-dir DIR]',
    details: CLIENT_HELP,
    options: { ...clientOptions, ...jsonOption },
    positionals: [1, 1],
    async run (values: Values, [id]: string[]) {
      const record = await (await client(values)).post<MigrationRecord>(`/v1/migrations/${encodeURIComponent(id ?? '')}/rollback`)
      print(values.json === true ? JSON.stringify(record, null, 2) : `rolled back: ${record.container} runs again on ${record.sourceNode} (migration ${record.id})`)
      return 0
    }
  },

  watch: {
    summary: 'follow one migration live, from its events stream, until it ends',
    usage: 'goto-node watch <migration id> [--json] [--api URL] [--data-dir DIR]',
    details: `  Prints its phase and a progress bar (redrawn in place on a terminal, else a line per phase);
  with --json, every record as one line of JSON. Exit 0 when it ends activated, rolled back or as a
  dry run, 1 when it ends aborted.
${CLIENT_HELP}`,
    options: { ...clientOptions, ...jsonOption },
    positionals: [1, 1],
    async run (values: Values, [id]: string[]) {
      const progress = progressPrinter(process.stdout, values.json === true)
      const record = await follow(await client(values), id ?? '', progress.update)
      progress.done()
      if (record.phase === 'aborted') throw new CommandFailed(record.error?.code ?? 'GOTO_ERR_MIGRATION_FAILED', `${record.error?.message ?? 'aborted'} (migration ${record.id})`)
      return 0
    }
  },

  dashboard: {
    summary: 'print the link that opens this agent\'s dashboard, signed in',
    usage: 'goto-node dashboard [--api URL] [--data-dir DIR]',
    details: `  The token travels in the link's #fragment, which a browser never sends to a server, so it lands in
  no server or proxy log; the page keeps it for the tab's session and drops it from the address bar.
  The link signs in as this host's API token: keep it to yourself.
${CLIENT_HELP}`,
    options: clientOptions,
    positionals: [0, 0],
    async run (values: Values) {
      const c = await client(values)
      const info = await c.get<NodeInfo>('/v1/node')
      print(`dashboard of ${info.name}: ${c.url}/ui/#token=${encodeURIComponent(await c.token())}`)
      return 0
    }
  },

  'show-log': {
    summary: 'print the mesh-wide audit log, merged by time (this agent holds every node\'s entries)',
    usage: 'goto-node show-log [-s SINCE] [-t TILL] [--node ID] [--kind KIND] [--migration ID] [--json] [-f]',
    details: `  -s, --since SINCE   ISO 8601 time or a span back from now: 90s, 15m, 1h, 2d (default: everything)
  -t, --till TILL     the same, for the end of the window
  --node ID           entries of one origin (a peer id or its prefix)
  --kind KIND         one kind, or a family: migration, security, node
  --migration ID      the entries of one migration
  -f, --follow        keep printing new entries as they arrive
${CLIENT_HELP}`,
    options: {
      ...clientOptions,
      ...jsonOption,
      since: { type: 'string', short: 's' },
      till: { type: 'string', short: 't' },
      node: { type: 'string' },
      kind: { type: 'string' },
      migration: { type: 'string' },
      follow: { type: 'boolean', short: 'f' }
    },
    positionals: [0, 0],
    async run (values: Values) {
      const c = await client(values)
      const names = new Map<string, string>()
      const [info, { peers }] = await Promise.all([c.get<NodeInfo>('/v1/node'), c.get<{ peers: PeerInfo[] }>('/v1/peers')])
      names.set(info.peerId, info.name)
      for (const p of peers) names.set(p.peerId, p.name)
      const base = new URLSearchParams()
      for (const key of ['node', 'kind', 'migration'] as const) if (str(values[key]) != null) base.set(key, str(values[key]) as string)
      if (str(values.till) != null) base.set('till', str(values.till) as string)
      const seen = new Set<string>()
      const show = (e: AuditEntry): void => {
        seen.add(`${e.origin}:${e.seq}`)
        if (values.json === true) {
          print(JSON.stringify(e))
          return
        }
        const details = e.details == null ? '' : Object.entries(e.details).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
        print(`${e.time}  ${(names.get(e.origin) ?? e.origin.slice(-8)).padEnd(10)}  #${String(e.seq).padEnd(5)} ${e.kind.padEnd(24)} ${e.migration ?? ''}${e.actor != null ? ` actor=${e.actor}` : ''}${details !== '' ? ` ${details}` : ''}`.trimEnd())
      }
      const fetchAll = async (since: string | undefined): Promise<AuditEntry[]> => {
        const out: AuditEntry[] = []
        let offset = 0
        for (;;) {
          const q = new URLSearchParams(base)
          if (since != null) q.set('since', since)
          q.set('offset', String(offset))
          const page = await c.get<{ entries: AuditEntry[], next?: number }>(`/v1/log?${q.toString()}`)
          out.push(...page.entries)
          if (page.next == null) return out
          offset = page.next
        }
      }
      const since = str(values.since)
      for (const e of await fetchAll(since)) show(e)
      if (values.follow !== true) return 0
      let last = new Date(Date.now() - 5000).toISOString()
      for (;;) {
        await new Promise(resolve => setTimeout(resolve, 1000))
        const from = last
        last = new Date(Date.now() - 5000).toISOString()
        for (const e of await fetchAll(from)) if (!seen.has(`${e.origin}:${e.seq}`)) show(e)
      }
    }
  },

  log: {
    summary: 'check the local copy of the audit log: every origin\'s chain, signatures and gaps',
    usage: 'goto-node log verify [--json] [--api URL] [--data-dir DIR]',
    details: `  Exit 0 when every chain holds, 1 when any gap or break is found.
${CLIENT_HELP}`,
    options: { ...clientOptions, ...jsonOption },
    positionals: [1, 1],
    async run (values: Values, [what]: string[]) {
      if (what !== 'verify') throw new UsageError(`unknown log command "${what ?? ''}" (try "goto-node log verify")`)
      const report = await (await client(values)).get<{ ok: boolean, refused: number, origins: OriginReport[] }>('/v1/log/verify')
      if (values.json === true) {
        print(JSON.stringify(report, null, 2))
      } else {
        print(table(['ORIGIN', 'ENTRIES', 'HEAD', 'GAPS', 'BREAKS'], report.origins.map(o => [
          o.origin, String(o.entries), String(o.head),
          o.gaps.length === 0 ? '-' : o.gaps.map(([a, b]) => a === b ? `${a}` : `${a}-${b}`).join(','),
          o.breaks.length === 0 ? '-' : o.breaks.map(b => `${b.seq} (${b.reason})`).join('; ')
        ])))
        print(report.ok ? `every chain holds; ${report.refused} entries refused since start` : 'the log has gaps or breaks (see above)')
      }
      return report.ok ? 0 : 1
    }
  }
} satisfies Record<string, Command>)

/** A command line: its name, what it is, and its commands. */
export interface Program {
  name: string
  about: string
  commands: Record<string, Command>
}

const GOTO_NODE: Program = {
  name: 'goto-node',
  about: 'move running containers between hosts and clouds over a private mesh',
  commands
}

function helpText (program: Program): string {
  const names = Object.keys(program.commands)
  const width = Math.max(...names.map(n => n.length))
  return `${program.name} ${VERSION}: ${program.about}

usage: ${program.name} <command> [options]

commands:
${names.map(n => `  ${n.padEnd(width)}  ${program.commands[n]?.summary ?? ''}`).join('\n')}

"${program.name} <command> --help" tells more. Exit codes: 0 done, 1 failed, 2 usage error.`
}

function commandHelp (name: string, command: Command): string {
  return `usage: ${command.usage}\n\n${command.summary}\n${command.details != null ? `\n${command.details}\n` : ''}`
}

export async function main (argv: string[]): Promise<number> {
  return await runProgram(GOTO_NODE, argv)
}

/** Run one command of `program` with these arguments; resolves to the exit code. */
export async function runProgram (program: Program, argv: string[]): Promise<number> {
  const { commands } = program
  const [name, ...rest] = argv
  if (name == null || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? rest[0] : undefined
    const command = topic != null ? commands[topic] : undefined
    print(command != null && topic != null ? commandHelp(topic, command) : helpText(program))
    return 0
  }
  if (name === '--version' || name === 'version') {
    print(VERSION)
    return 0
  }
  const command = commands[name]
  if (command == null) {
    process.stderr.write(`${program.name}: unknown command "${name}"\n\n${helpText(program)}\n`)
    return 2
  }
  try {
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
    } catch (err: any) {
      throw new UsageError(err.message)
    }
    if (parsed.values.help === true) {
      print(commandHelp(name, command))
      return 0
    }
    const [min, max] = command.positionals
    if (parsed.positionals.length < min) throw new UsageError(`missing argument`)
    if (parsed.positionals.length > max) throw new UsageError(`unexpected argument "${parsed.positionals[max] ?? ''}"`)
    return await command.run(parsed.values as Values, parsed.positionals)
  } catch (err: any) {
    if (err instanceof UsageError) {
      process.stderr.write(`${program.name} ${name}: ${err.message}\nusage: ${command.usage}\n`)
      return 2
    }
    const code = typeof err?.code === 'string' && err.code.startsWith('GOTO_ERR') ? `${err.code}: ` : ''
    process.stderr.write(`${program.name} ${name}: ${code}${err?.message ?? String(err)}\n`)
    if (process.env.GOTO_DEBUG === '1' && err?.stack != null) process.stderr.write(err.stack + '\n')
    return 1
  }
}

