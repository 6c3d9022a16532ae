/**
 * The agent: one per host. It assembles its components around the data dir —
 * identity and swarm key, LevelDB store, container runtime, libp2p node,
 * gossip — starts them in order, stops them in reverse, and offers the public
 * interface that the HTTP API and the CLI use.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { TOPIC_PREFIX, type Capacity, type ContainerEntry, type NodeStatus } from '../protocols/node-state/index.ts'
import { CHUNKS_DIR, loadSecrets, STORE_DIR } from './data-dir.ts'
import { ChunkStore } from './chunks/store.ts'
import { InvalidPatternError, NotRunningError } from './errors.ts'
import { createLogger, errorMessage, type Logger } from './logger.ts'
import { gossip as createGossip, type Gossip } from './mesh/gossip.ts'
import { createMeshNode, type MeshNode } from './mesh/libp2p.ts'
import { dockerRuntime } from './runtime/docker.ts'
import { noRuntime } from './runtime/none.ts'
import { createStore, type Store } from './store.ts'
import { createAuditLog, type AuditLog } from './audit/log.ts'
import { replication as createReplication, type Replication } from './audit/replication.ts'
import { createJournal } from './migration/journal.ts'
import { migrations as createMigrations, type Migrations, type MigrationsInit } from './migration/service.ts'
import type { MigrationRecord } from './migration/journal.ts'
import { rebalancer as createRebalancer, type Rebalancer } from './rebalance/service.ts'
import { DEFAULT_POLICY } from './rebalance/decide.ts'
import type { DrainReport } from './rebalance/drain.ts'
import { createCloudWatchPublisher, type CloudWatchPublisher, type CloudWatchStats } from './metrics/cloudwatch.ts'
import type { AgentConfig } from './config.ts'
import type { PeerRecord, PeerStatus } from './mesh/view.ts'
import type { ContainerRuntime } from './runtime/runtime.ts'

export const VERSION = '0.1.0'

export interface NodeInfo {
  peerId: string
  name: string
  version: string
  state: NodeStatus
  addrs: string[]
  runtime: string
  capacity: Capacity
  containers: number
  startedAt: string
  meshId: string
}

export interface PeerInfo {
  peerId: string
  name: string
  status: PeerStatus
  state: NodeStatus
  connected: boolean
  since: string
  lastHeard: string
  addrs: string[]
  capacity: Capacity
  containers: number
}

export interface MeshContainer extends ContainerEntry {
  node: string
  peerId: string
}

export interface Agent {
  readonly config: AgentConfig
  readonly peerId: string
  /** Resolves when the agent has stopped, for whatever reason. */
  readonly stopped: Promise<void>
  start(): Promise<void>
  /** Leave the mesh gracefully and stop. */
  stop(): Promise<void>
  info(): NodeInfo
  peers(): PeerInfo[]
  /** Containers of the whole mesh (this node and every live peer), filtered by a regexp on the name. */
  containers(match?: string): MeshContainer[]
  join(addr: string): Promise<{ peerId: string }>
  /** Same as stop(): announce the leave, then stop. */
  leave(): Promise<void>
  /**
   * Mark the node draining, move every container but the pinned ones to
   * peers until done or the deadline, then leave; resolves with the report
   * before the leave.
   */
  drainAndLeave(options: { deadline: number, actor?: string, onProgress?: (report: DrainReport, final: boolean) => void }): Promise<DrainReport>
  /** The rebalancer: plan, step, pause, resume, status. */
  readonly rebalancer: Rebalancer
  /** The gossip service, for tests and benchmarks that watch the view. */
  readonly gossip: Gossip
  /** The migration engine: migrate, list, get, cancel, rollback. */
  readonly migrations: Migrations
  /** This node's audit log. */
  readonly audit: AuditLog
  /** The log's replication: the version vectors peers advertised, for the lag metrics. */
  readonly replication: Pick<Replication, 'advertised'>
  /** The CloudWatch publisher's counts while it runs (config `metrics.cloudwatch`); undefined when off. */
  cloudWatchStats(): CloudWatchStats | undefined
}

export interface AgentOptions {
  logger?: Logger
  /** Use this runtime instead of the one `config.dockerHost` names. */
  runtime?: ContainerRuntime
  /** Options of the migration engine (admission policy, retention). */
  migration?: MigrationsInit
}

/** What the API and the CLI show of a peer in the mesh view. */
export function peerInfo (p: PeerRecord): PeerInfo {
  return {
    peerId: p.peerId,
    name: p.state.name,
    status: p.status,
    state: p.nodeStatus,
    connected: p.connected,
    since: new Date(p.since).toISOString(),
    lastHeard: new Date(p.lastHeard).toISOString(),
    addrs: p.state.addrs,
    capacity: p.capacity,
    containers: p.state.containers.length
  }
}

/** The mesh id: a short hash of the swarm key, so meshes never share a topic. */
export function meshIdOf (swarmKey: Uint8Array): string {
  return createHash('sha256').update(swarmKey).digest('hex').slice(0, 16)
}

export function compilePattern (match: string | undefined): RegExp | undefined {
  if (match == null || match === '') return undefined
  try {
    return new RegExp(match)
  } catch (err) {
    throw new InvalidPatternError(`"${match}" is not a regular expression: ${errorMessage(err)}`)
  }
}

export async function createAgent (config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
  const logger = options.logger ?? createLogger('goto')
  const secrets = await loadSecrets(config.dataDir)
  const meshId = meshIdOf(secrets.swarmKey)
  const topic = `${TOPIC_PREFIX}/${meshId}/state/1`
  const logTopic = `${TOPIC_PREFIX}/${meshId}/log/1`
  const runtime = options.runtime ?? (config.dockerHost === 'none'
    ? noRuntime(config.dataDir)
    : dockerRuntime({ host: config.dockerHost, logger: logger.child('runtime') }))
  const store: Store = createStore(join(config.dataDir, STORE_DIR))
  const libp2p: MeshNode = await createMeshNode({
    privateKey: secrets.privateKey,
    swarmKey: secrets.swarmKey,
    listen: config.listen,
    announce: config.announce,
    allowPeers: config.allowPeers,
    topics: [topic, logTopic]
  })
  // the rebalancer is made after the migration engine, which it drives; both read each other late
  let balance: Rebalancer | undefined
  const gossip = createGossip({
    name: config.name,
    topic,
    timing: config.gossip,
    bootstrap: config.bootstrap,
    capacityExtra: async (host) => await balance?.capacityExtra(host) ?? {}
  })({ libp2p, runtime, store, logger: logger.child('mesh') })

  const audit = createAuditLog(store.db, libp2p.peerId.toString(), secrets.privateKey)
  const replication = createReplication({ topic: logTopic, syncMs: config.logSyncMs })({ libp2p, log: audit, logger: logger.child('log') })
  const journal = createJournal(store.db)
  const migrations = createMigrations({
    ...config.migration,
    admission: async (offer, flight) => await balance?.admission(offer, flight),
    ...options.migration
  })({
    libp2p,
    runtime,
    gossip,
    journal,
    audit,
    privateKey: secrets.privateKey,
    logger: logger.child('migration'),
    chunks: new ChunkStore(store.db, join(config.dataDir, CHUNKS_DIR))
  })

  balance = createRebalancer({ policy: config.rebalance ?? DEFAULT_POLICY })({
    gossip, migrations, journal, runtime, audit, db: store.db, logger: logger.child('rebalance')
  })
  const rebalancer = balance

  // a node records its own join and leave; a failure only others can see, so each records the gone it sees
  // (joins and leaves seen by every peer would write N² entries for nothing new)
  gossip.view.addEventListener('peer:status', (evt) => {
    const { peerId, from, to, record } = evt.detail
    if (to !== 'gone') return
    void audit.append('node.gone', { details: { peer: peerId, name: record.state.name, from } }).catch(() => {})
  })

  let cloudwatch: CloudWatchPublisher | undefined
  const onMigration = (evt: CustomEvent<MigrationRecord>): void => {
    void cloudwatch?.onMigration(evt.detail).catch((err: unknown) => { logger.warn('cloudwatch: queueing failed', { error: errorMessage(err) }) })
  }

  /** The publisher over the open store, when the config turns it on. */
  function startCloudWatch (): void {
    const cw = config.metrics?.cloudwatch
    if (cw?.enabled !== true) return
    cloudwatch = createCloudWatchPublisher({
      db: store.db,
      node: config.name,
      mesh: meshId,
      region: cw.region,
      namespace: cw.namespace,
      endpoint: cw.endpoint,
      highResolution: cw.highResolution,
      intervalMs: cw.intervalMs,
      retryMaxMs: cw.retryMaxMs,
      sample: () => {
        const local = gossip.localState()
        return {
          peersAlive: gossip.view.peers().filter(p => p.status === 'alive').length,
          containersRunning: local.containers.filter(c => c.state === 'running').length,
          memFree: local.capacity.memFree,
          diskFree: local.capacity.diskFree
        }
      }
    })
    migrations.addEventListener('update', onMigration)
    cloudwatch.start()
  }

  async function stopCloudWatch (): Promise<void> {
    migrations.removeEventListener('update', onMigration)
    await cloudwatch?.stop()
    cloudwatch = undefined
  }

  let startedAt = new Date()
  let state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  let resolveStopped: () => void = () => {}
  const stopped = new Promise<void>(resolve => { resolveStopped = resolve })
  let stopping: Promise<void> | undefined

  const agent: Agent = {
    config,
    peerId: libp2p.peerId.toString(),
    stopped,
    gossip,
    migrations,
    audit,
    replication,
    rebalancer,

    async start () {
      // in order: store, runtime, network, gossip; a failure undoes what started
      const started: Array<() => Promise<void>> = []
      try {
        await store.open()
        started.push(async () => { await store.close() })
        await runtime.start()
        started.push(async () => { await runtime.stop() })
        await libp2p.start()
        started.push(async () => { await libp2p.stop() })
        await gossip.start()
        started.push(async () => { await gossip.stop() })
        await replication.start()
        started.push(async () => { await replication.stop() })
        await migrations.start()
        started.push(async () => { await migrations.stop() })
        await rebalancer.start()
        started.push(async () => { await rebalancer.stop() })
        startCloudWatch()
        started.push(stopCloudWatch)
        await audit.append('node.joined', { details: { name: config.name, runtime: runtime.description, addrs: libp2p.getMultiaddrs().map(String) } })
      } catch (err) {
        for (const undo of started.reverse()) await undo().catch(() => {})
        throw err
      }
      startedAt = new Date()
      state = 'running'
      logger.info('agent started', {
        peer: agent.peerId,
        name: config.name,
        mesh: meshId,
        runtime: runtime.description,
        addrs: libp2p.getMultiaddrs().map(String).join(',')
      })
    },

    async stop () {
      if (stopping != null) return await stopping
      if (state !== 'running') {
        state = 'stopped'
        resolveStopped()
        return
      }
      state = 'stopping'
      stopping = (async () => {
        await audit.append('node.left', { details: { name: config.name } }).catch(() => {})
        await rebalancer.stop().catch(() => {})
        await migrations.stop().catch(() => {})
        await stopCloudWatch().catch(() => {})
        try {
          await gossip.leave()
        } catch (err) {
          logger.warn('leave announcement failed', { error: errorMessage(err) })
        }
        await replication.stop().catch(() => {})
        await gossip.stop().catch(() => {})
        await Promise.resolve(libp2p.stop()).catch((err: unknown) => { logger.warn('libp2p stop failed', { error: errorMessage(err) }) })
        await runtime.stop().catch(() => {})
        await store.close().catch(() => {})
        state = 'stopped'
        logger.info('agent stopped', { peer: agent.peerId })
        resolveStopped()
      })()
      return await stopping
    },

    info () {
      const local = gossip.localState()
      return {
        peerId: agent.peerId,
        name: config.name,
        version: VERSION,
        state: local.state,
        addrs: local.addrs,
        runtime: local.runtime,
        capacity: local.capacity,
        containers: local.containers.length,
        startedAt: startedAt.toISOString(),
        meshId
      }
    },

    cloudWatchStats: () => cloudwatch?.stats(),

    peers () {
      return gossip.view.peers().map(peerInfo).sort((a, b) => a.name.localeCompare(b.name))
    },

    containers (match) {
      const pattern = compilePattern(match)
      const local = gossip.localState()
      const all: MeshContainer[] = local.containers.map(c => ({ ...c, node: local.name, peerId: local.peerId }))
      for (const peer of gossip.view.peers()) {
        if (peer.status !== 'alive' && peer.status !== 'suspect') continue
        for (const c of peer.state.containers) all.push({ ...c, node: peer.state.name, peerId: peer.peerId })
      }
      return all
        .filter(c => pattern == null || pattern.test(c.name))
        .sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name))
    },

    async join (addr) {
      if (state !== 'running') throw new NotRunningError('the agent is not running')
      return { peerId: await gossip.join(addr) }
    },

    async leave () {
      await agent.stop()
    },

    async drainAndLeave (options) {
      if (state !== 'running') throw new NotRunningError('the agent is not running')
      const report = await rebalancer.drain({ deadline: options.deadline, actor: options.actor, onProgress: (r) => { options.onProgress?.(r, false) } })
      // the report first, then the leave: the caller learns what stayed before the agent goes
      options.onProgress?.(report, true)
      await agent.leave()
      return report
    }
  }
  return agent
}
