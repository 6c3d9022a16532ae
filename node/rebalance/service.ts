/**
 * The rebalancer: the agent's side of decide.ts and drain.ts.
 *
 * - Every `intervalMs` (±20 %) it builds the mesh as this node sees it —
 *   its own inventory, the gossiped states of its live peers, and from its
 *   journal when each of its containers arrived and from where — and runs
 *   `plan()`. A move is written to the audit log with its reason and started
 *   as a migration with purpose `rebalance`; only one is in flight at a time.
 *   A target that refuses is left out for that container a while and the
 *   node plans again at once, so it picks another target or waits.
 * - As a target it adds `admit()` to the migration engine's admission,
 *   under the engine's admission lock, with the moves in flight counted.
 * - It gossips what the node offers and has in flight (memAlloc,
 *   memInFlight, incoming, outgoing) with the capacity, at once on a change.
 * - `pause()` / `resume()` persist in the store; a paused node neither
 *   starts nor takes rebalance moves (manual ones and drains still run).
 * - `drain()` marks the node draining (gossiped: admission everywhere
 *   refuses it work) and runs the drain loop.
 */
import { admit, plan, sheddableCount, type ContainerView, type NodeView, type Plan, type RebalancePolicy } from './decide.ts'
import { drain, type DrainOps, type DrainReport } from './drain.ts'
import { resourcesOf } from '../runtime/docker.ts'
import { errorMessage, type Logger } from '../logger.ts'
import { GotoError } from '../errors.ts'
import type { Capacity, ContainerEntry, NodeState } from '../../protocols/node-state/index.ts'
import { isFinal, REFUSAL_CODES, type OfferPayload, type RefusalCode } from '../../protocols/migrate/index.ts'
import type { AuditLog } from '../audit/log.ts'
import type { Gossip } from '../mesh/gossip.ts'
import type { Journal, MigrationRecord } from '../migration/journal.ts'
import { inFlightOf, type InFlight, type Migrations } from '../migration/service.ts'
import type { ContainerRuntime } from '../runtime/runtime.ts'
import type { Level } from 'level'

/** A drain was asked of a node that drains already. */
export class DrainingError extends GotoError {
  override name = 'DrainingError'
  override code = 'GOTO_ERR_DRAINING'
}

export interface RebalancerComponents {
  gossip: Gossip
  migrations: Migrations
  journal: Journal
  runtime: ContainerRuntime
  audit: AuditLog
  db: Level<string, unknown>
  logger: Logger
}

export interface RebalancerInit {
  policy: RebalancePolicy
}

/** The last decision, as the API and CLI show it. */
export interface DecisionRecord {
  at: string
  action: 'move' | 'hold'
  reason: string
  container?: string
  target?: string
  migration?: string
}

export interface RebalanceStatus {
  enabled: boolean
  paused: boolean
  draining: boolean
  /** The rebalance move in flight from this node. */
  moving?: string
  last?: DecisionRecord
}

/** A plan for people: names instead of views, loads rounded. */
export interface PlanReport {
  node: string
  status: RebalanceStatus
  decision: { action: 'move' | 'hold', reason: string, container?: string, target?: string, targetName?: string, bytes?: number }
  mean: number
  band: [number, number]
  loads: Array<{ peerId: string, name: string, load: number, containers: number }>
  candidates: Array<{ container: string, target: string, targetName: string, bytes: number, gain: number, sourceLoad: [number, number], targetLoad: [number, number] }>
  skipped: Array<{ container: string, reason: string }>
}

export interface DrainProgress {
  report: DrainReport
  final: boolean
}

const PAUSED_KEY = 'paused'
const ROLLBACK_MARK = '-goto-rollback-'

function isHelper (name: string): boolean {
  return name.includes(ROLLBACK_MARK) || /^goto-fill-[0-9a-f]{8}$/.test(name)
}

function toView (c: ContainerEntry): ContainerView {
  return { name: c.name, running: c.state === 'running', labels: c.labels, mem: c.mem ?? 0, cpu: c.cpu ?? 0, bytes: c.sizeRootFs }
}

function nodeOf (state: NodeState, capacity: Capacity, eligible: boolean): NodeView {
  return {
    id: state.peerId,
    name: state.name,
    eligible: eligible && (capacity.memAlloc ?? 0) > 0,
    memAlloc: capacity.memAlloc ?? 0,
    memTotal: capacity.memTotal,
    memUsed: Math.max(0, capacity.memTotal - capacity.memFree),
    cpus: capacity.cpus,
    load1: capacity.load1,
    diskTotal: capacity.diskTotal,
    diskUsed: Math.max(0, capacity.diskTotal - capacity.diskFree),
    maxContainers: capacity.maxContainers ?? 100,
    memInFlight: capacity.memInFlight ?? 0,
    incoming: capacity.incoming ?? 0,
    outgoing: capacity.outgoing ?? 0,
    lastMoveAt: capacity.lastMoveAt,
    sheddable: capacity.sheddable,
    containers: state.containers.filter(c => !isHelper(c.name)).map(toView)
  }
}

type Arrivals = Map<string, { at: number, from: string }>

/** From the journal: when each container here arrived and from where, and when this node last sent or took a rebalance move. */
function historyOf (records: MigrationRecord[]): { arrivals: Arrivals, lastMoveAt?: number } {
  const arrivals: Arrivals = new Map()
  let lastMoveAt: number | undefined
  for (const r of records) {
    if (r.dryRun) continue
    // when it landed (or committed), not updatedAt, which a later prune of its rollback point moves
    const landed = r.phases.find(p => p.phase === 'activated') ?? r.phases.find(p => p.phase === 'committed')
    const at = Date.parse(landed?.at ?? r.updatedAt)
    if (r.role === 'target' && r.phase === 'activated') {
      const known = arrivals.get(r.name)
      if (known == null || known.at < at) arrivals.set(r.name, { at, from: r.source })
    }
    if (r.purpose === 'rebalance' && (r.phase === 'activated' || r.phase === 'committed')) lastMoveAt = Math.max(lastMoveAt ?? 0, at)
  }
  return { arrivals, lastMoveAt }
}

/** The node with its containers' arrival times and origins set. */
function withArrivals (n: NodeView, arrivals: Arrivals): NodeView {
  for (const c of n.containers) {
    const arrived = arrivals.get(c.name)
    if (arrived != null) { c.arrivedAt = arrived.at; c.cameFrom = arrived.from }
  }
  return n
}

function round3 (x: number): number {
  return Math.round(x * 1000) / 1000
}

export class Rebalancer {
  readonly #c: RebalancerComponents
  readonly #policy: RebalancePolicy
  readonly #log: Logger
  readonly #meta
  #paused = false
  #draining = false
  #timer: NodeJS.Timeout | undefined
  #stepping: Promise<DecisionRecord> | undefined
  /** The rebalance move in flight from this node. */
  #moving: string | undefined
  #last: DecisionRecord | undefined
  /** container→target pairs refused lately, until when. */
  readonly #exclude = new Map<string, number>()
  #running = false
  #announceTimer: NodeJS.Timeout | undefined
  /** The kind of the last hold written to the log while this node wanted to shed load. */
  #loggedHold: string | undefined
  /** The phase last seen of each migration not yet final. */
  readonly #phases = new Map<string, string>()
  /** Aborted by stop(): a drain in progress ends and reports what stayed. */
  #shutdown = new AbortController()

  constructor (components: RebalancerComponents, init: RebalancerInit) {
    this.#c = components
    this.#policy = init.policy
    this.#log = components.logger
    this.#meta = components.db.sublevel<string, unknown>('rebalance', { valueEncoding: 'json' })
  }

  get policy (): RebalancePolicy { return this.#policy }

  async start (): Promise<void> {
    this.#paused = await this.#meta.get(PAUSED_KEY) === true
    this.#shutdown = new AbortController()
    this.#running = true
    this.#c.migrations.addEventListener('update', this.#onMigration)
    this.#schedule()
  }

  async stop (): Promise<void> {
    this.#running = false
    this.#shutdown.abort()
    clearTimeout(this.#timer)
    clearTimeout(this.#announceTimer)
    this.#c.migrations.removeEventListener('update', this.#onMigration)
    await this.#stepping?.catch(() => {})
  }

  #schedule (delay?: number): void {
    clearTimeout(this.#timer)
    if (!this.#running) return
    const interval = this.#policy.intervalMs
    const wait = delay ?? Math.round(interval * (0.8 + Math.random() * 0.4))
    this.#timer = setTimeout(() => {
      void this.step().catch((err: unknown) => { this.#log.warn('rebalance step failed', { error: errorMessage(err) }) }).finally(() => { this.#schedule() })
    }, wait)
    this.#timer.unref()
  }

  /** What the gossip adds to this node's capacity: what it offers and has in flight. */
  async capacityExtra (host: Capacity): Promise<Partial<Capacity>> {
    // one read of the journal for both what is in flight and when this node last moved, on every heartbeat
    const records = await this.#c.journal.all().catch((): MigrationRecord[] => [])
    const { arrivals, lastMoveAt } = historyOf(records)
    // a node that makes no moves of its own (off, paused, draining) has nothing to shed, as far as its peers should wait for it
    const shedding = this.#policy.enabled && !this.#paused && !this.#draining
    return {
      memAlloc: this.#memAlloc(host.memTotal),
      maxContainers: this.#policy.capacity.containers,
      ...inFlightOf(records),
      ...(lastMoveAt != null ? { lastMoveAt } : {}),
      sheddable: shedding ? sheddableCount(withArrivals(this.#self(), arrivals), this.#policy, Date.now()) : 0
    }
  }

  /** What this node offers to containers' reservations: the configured memory, else the host's; none without a runtime. */
  #memAlloc (memTotal: number): number {
    return this.#c.runtime.description === 'none' ? 0 : this.#policy.capacity.memoryBytes ?? memTotal
  }

  /** A migration changed phase: tell the mesh at once when what is in flight changed. */
  readonly #onMigration = (evt: CustomEvent<MigrationRecord>): void => {
    const record = evt.detail
    if (record.dryRun) return
    // only a new phase can change what is in flight; progress events are many
    const key = `${record.id}|${record.role}`
    if (this.#phases.get(key) === record.phase) return
    if (isFinal(record.phase)) this.#phases.delete(key)
    else this.#phases.set(key, record.phase)
    clearTimeout(this.#announceTimer)
    this.#announceTimer = setTimeout(() => { void this.#c.gossip.announce().catch(() => {}) }, 20)
  }

  status (): RebalanceStatus {
    return { enabled: this.#policy.enabled, paused: this.#paused, draining: this.#draining, moving: this.#moving, last: this.#last }
  }

  async pause (actor?: string): Promise<RebalanceStatus> {
    if (!this.#paused) {
      this.#paused = true
      await this.#meta.put(PAUSED_KEY, true)
      await this.#c.audit.append('rebalance.paused', { actor, details: {} })
      void this.#c.gossip.announce().catch(() => {})
    }
    return this.status()
  }

  async resume (actor?: string): Promise<RebalanceStatus> {
    if (this.#paused) {
      this.#paused = false
      await this.#meta.put(PAUSED_KEY, false)
      await this.#c.audit.append('rebalance.resumed', { actor, details: {} })
      void this.#c.gossip.announce().catch(() => {})
    }
    return this.status()
  }

  /** This node as the decision sees it. */
  #self (): NodeView {
    const local = this.#c.gossip.localState()
    return nodeOf(local, local.capacity, local.state === 'active')
  }

  /** The mesh as this node sees it now: itself first, then every peer it holds a state of. */
  nodes (): NodeView[] {
    const peers = this.#c.gossip.view.peers().map(p => nodeOf(p.state, p.capacity, p.status === 'alive' && p.nodeStatus === 'active'))
    return [this.#self(), ...peers]
  }

  async #nodesWithHistory (): Promise<{ nodes: NodeView[], lastMoveAt?: number }> {
    const [self, ...peers] = this.nodes()
    const { arrivals, lastMoveAt } = historyOf(await this.#c.journal.all())
    return { nodes: [withArrivals(self as NodeView, arrivals), ...peers], lastMoveAt }
  }

  #excluded (now: number): Set<string> {
    for (const [pair, until] of this.#exclude) if (until <= now) this.#exclude.delete(pair)
    return new Set(this.#exclude.keys())
  }

  async #plan (now: number): Promise<Plan> {
    const { nodes, lastMoveAt } = await this.#nodesWithHistory()
    return plan(this.#c.gossip.localState().peerId, nodes, this.#policy, now, { lastMoveAt, exclude: this.#excluded(now) })
  }

  /** What this node would do now, and why (`goto-node rebalance --dry-run`). */
  async preview (): Promise<PlanReport> {
    const now = Date.now()
    const p = await this.#plan(now)
    const names = new Map(this.nodes().map(n => [n.id, n]))
    const d = p.decision
    let decision: PlanReport['decision'] = { action: d.action, reason: d.reason }
    if (d.action === 'move') decision = { ...decision, container: d.move.container.name, target: d.move.target.id, targetName: d.move.target.name, bytes: d.move.bytes }
    const hold = this.#holdReason()
    if (hold != null && d.action === 'move') decision = { ...decision, reason: `${hold}; else: ${d.reason}` }
    if (hold != null && d.action === 'hold') decision = { action: 'hold', reason: `${hold}; and ${d.reason}` }
    if (hold != null) decision.action = 'hold'
    return {
      node: this.#c.gossip.localState().name,
      status: this.status(),
      decision,
      mean: round3(p.mean),
      band: [round3(p.band[0]), round3(p.band[1])],
      loads: Object.entries(p.loads).map(([id, load]) => ({ peerId: id, name: names.get(id)?.name ?? id, load: round3(load), containers: names.get(id)?.containers.filter(c => c.running).length ?? 0 }))
        .sort((a, b) => b.load - a.load),
      candidates: p.candidates.map(m => ({
        container: m.container.name,
        target: m.target.id,
        targetName: m.target.name,
        bytes: m.bytes,
        gain: round3(m.gain),
        sourceLoad: [round3(m.sourceLoad[0]), round3(m.sourceLoad[1])],
        targetLoad: [round3(m.targetLoad[0]), round3(m.targetLoad[1])]
      })),
      skipped: p.skipped
    }
  }

  #holdReason (): string | undefined {
    if (this.#draining) return 'this node is draining'
    if (this.#paused) return 'rebalancing is paused on this node (goto-node rebalance resume)'
    if (this.#moving != null) return `a rebalance move is in flight (${this.#moving})`
    return undefined
  }

  /** Look at the mesh and start at most one move; one step at a time. */
  async step (): Promise<DecisionRecord> {
    if (this.#stepping != null) return await this.#stepping
    this.#stepping = this.#step().finally(() => { this.#stepping = undefined })
    return await this.#stepping
  }

  async #step (): Promise<DecisionRecord> {
    const now = Date.now()
    const hold = this.#holdReason()
    if (hold != null) return this.#decided({ at: new Date(now).toISOString(), action: 'hold', reason: hold })
    const p = await this.#plan(now)
    const d = p.decision
    if (d.action === 'hold') {
      // a node that wants to shed load and cannot says why in the log, once per kind of reason
      const kind = d.reason.replace(/\d+(\.\d+)?/g, '#')
      if (p.pressure !== 'within' && kind !== this.#loggedHold) {
        this.#loggedHold = kind
        await this.#c.audit.append('rebalance.hold', { actor: 'rebalancer', details: { reason: d.reason, mean: round3(p.mean), load: round3(p.loads[this.#c.gossip.localState().peerId] ?? 0) } }).catch(() => {})
      }
      if (p.pressure === 'within') this.#loggedHold = undefined
      return this.#decided({ at: new Date(now).toISOString(), action: 'hold', reason: d.reason })
    }
    this.#loggedHold = undefined
    const m = d.move
    await this.#c.audit.append('rebalance.move', {
      actor: 'rebalancer',
      details: {
        container: m.container.name,
        target: m.target.id,
        targetName: m.target.name,
        reason: d.reason,
        bytes: m.bytes,
        gain: round3(m.gain),
        mean: round3(p.mean),
        sourceLoad: m.sourceLoad.map(round3),
        targetLoad: m.targetLoad.map(round3)
      }
    })
    let record: MigrationRecord
    try {
      record = await this.#c.migrations.begin({ container: m.container.name, target: m.target.id, purpose: 'rebalance', actor: 'rebalancer' })
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'GOTO_ERR_MIGRATION_FAILED'
      this.#exclude.set(`${m.container.name}→${m.target.id}`, now + this.#excludeMs())
      await this.#c.audit.append('rebalance.failed', { actor: 'rebalancer', details: { container: m.container.name, target: m.target.id, code, reason: errorMessage(err) } }).catch(() => {})
      return this.#decided({ at: new Date(now).toISOString(), action: 'hold', reason: `the move of ${m.container.name} to ${m.target.name} could not start: ${errorMessage(err)}` })
    }
    this.#moving = record.id
    void this.#follow(record.id, m.container.name, m.target.id, m.target.name)
    return this.#decided({ at: new Date(now).toISOString(), action: 'move', reason: d.reason, container: m.container.name, target: m.target.name, migration: record.id })
  }

  #excludeMs (): number {
    return Math.max(5 * this.#policy.intervalMs, this.#policy.nodeCooldownMs)
  }

  #decided (decision: DecisionRecord): DecisionRecord {
    const changed = this.#last?.action !== decision.action || this.#last.reason !== decision.reason
    this.#last = decision
    if (changed) this.#log.info('rebalance decision', { action: decision.action, reason: decision.reason, migration: decision.migration })
    return decision
  }

  /** Wait for a move's end; a refusal rules the target out for that container and plans again at once. */
  async #follow (id: string, container: string, target: string, targetName: string): Promise<void> {
    try {
      const record = await this.#c.migrations.finished(id)
      if (record.phase === 'activated') return
      const refused = failureCode(record)
      this.#exclude.set(`${container}→${target}`, Date.now() + this.#excludeMs())
      if (refused === 'TARGET_BUSY') {
        // busy for any container of ours: leave it out for all of them for a node cooldown
        for (const c of this.#c.gossip.localState().containers) {
          const pair = `${c.name}→${target}`
          this.#exclude.set(pair, Math.max(this.#exclude.get(pair) ?? 0, Date.now() + this.#policy.nodeCooldownMs))
        }
      }
      await this.#c.audit.append('rebalance.refused', { migration: id, actor: 'rebalancer', details: { container, target, targetName, code: refused, reason: record.error?.message } }).catch(() => {})
      this.#log.info('rebalance move refused or failed; planning again', { migration: id, code: refused })
      this.#moving = undefined
      if (this.#running) this.#schedule(0)
    } catch (err) {
      this.#log.warn('lost track of a rebalance move', { migration: id, error: errorMessage(err) })
    } finally {
      this.#moving = undefined
    }
  }

  /** The target's side, added to the migration engine's admission. */
  readonly admission = async (offer: OfferPayload, flight: InFlight): Promise<{ code: RefusalCode, reason: string } | undefined> => {
    const purpose = offer.purpose ?? 'manual'
    if (purpose === 'rebalance' && this.#paused) return { code: 'PAUSED', reason: 'rebalancing is paused on this node' }
    // judged on the engine's inventory now, not on what was last gossiped
    await this.#c.gossip.refresh()
    const now = Date.now()
    const { nodes, lastMoveAt } = await this.#nodesWithHistory()
    const self = { ...nodes[0] as NodeView, ...flight }
    self.memAlloc = this.#memAlloc(self.memTotal)
    const spec = offer.spec as { name: string, hostConfig: Record<string, unknown> }
    const { mem, cpu } = resourcesOf(spec.hostConfig)
    return admit(self, [self, ...nodes.slice(1)], { name: spec.name, mem, cpu, bytes: offer.diskBytes, purpose }, this.#policy, now, lastMoveAt)
  }

  /**
   * Move everything but the pinned containers away, until done or the
   * deadline; the node stays draining (the caller leaves after).
   */
  async drain (options: { deadline: number, actor?: string, signal?: AbortSignal, onProgress?: (report: DrainReport) => void }): Promise<DrainReport> {
    if (this.#draining) throw new DrainingError('this node is draining already')
    this.#draining = true
    this.#c.gossip.setStatus('draining')
    try {
      return await this.#drain(options)
    } catch (err) {
      // a drain that fails leaves the node as it was, not draining for good
      this.#draining = false
      this.#c.gossip.setStatus('active')
      await this.#c.audit.append('drain.failed', { actor: options.actor, details: { error: errorMessage(err) } }).catch(() => {})
      throw err
    }
  }

  async #drain (options: { deadline: number, actor?: string, signal?: AbortSignal, onProgress?: (report: DrainReport) => void }): Promise<DrainReport> {
    const signal = options.signal != null ? AbortSignal.any([options.signal, this.#shutdown.signal]) : this.#shutdown.signal
    const pause = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
    await this.#c.audit.append('drain.started', { actor: options.actor, details: { deadline: new Date(options.deadline).toISOString() } })
    // a step deciding now, then a rebalance move in flight, finish first: one outgoing move at a time
    await this.#stepping?.catch(() => {})
    while (this.#moving != null && Date.now() < options.deadline && !signal.aborted) await pause(200)
    // and a move admitted towards this node just before it began draining lands before the first pass
    while ((await this.#c.migrations.inFlight()).incoming > 0 && Date.now() < options.deadline && !signal.aborted) await pause(200)
    const runtime = this.#c.runtime
    const me = this.#c.gossip.localState().peerId
    const ops: DrainOps = {
      containers: async () => (await runtime.listContainers())
        .filter(c => !isHelper(c.name))
        .map(c => ({ name: c.name, running: c.state === 'running', labels: c.labels, mem: c.mem ?? 0, cpu: c.cpu ?? 0, bytes: c.sizeRootFs })),
      nodes: () => this.nodes(),
      migrate: async (container, target) => {
        try {
          const record = await this.#c.migrations.migrate({ container, target, purpose: 'drain', actor: options.actor ?? 'drain' })
          if (record.phase === 'activated') return { ok: true, id: record.id }
          return { ok: false, id: record.id, code: failureCode(record), message: record.error?.message }
        } catch (err) {
          return { ok: false, code: (err as { code?: string }).code ?? 'GOTO_ERR_MIGRATION_FAILED', message: errorMessage(err) }
        }
      },
      landed: async (container, target, wasRunning, signal) => {
        // seen by the engine here and by the target's own gossip, for up to 20 s
        const until = Date.now() + 20_000
        while (Date.now() < until && !signal.aborted) {
          const here = await runtime.inspect(container).catch(() => undefined)
          const there = this.#c.gossip.view.get(target)?.state.containers.find(c => c.name === container)
          const gone = here == null || here.name !== container || !here.running
          const arrived = there != null && (!wasRunning || there.state === 'running')
          if (gone && arrived) return true
          await new Promise(resolve => setTimeout(resolve, 250))
        }
        return false
      },
      locate: (container, wasRunning) => this.#c.gossip.view.peers()
        .find(p => (p.status === 'alive' || p.status === 'suspect') && p.state.containers.some(c => c.name === container && (!wasRunning || c.state === 'running')))?.peerId,
      sleep: async (ms, signal) => {
        await new Promise<void>((resolve) => {
          const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
          const timer = setTimeout(done, ms)
          signal.addEventListener('abort', done, { once: true })
        })
      },
      now: () => Date.now()
    }
    const report = await drain(me, ops, this.#policy, { deadline: options.deadline, signal, onProgress: options.onProgress })
    await this.#c.audit.append('drain.finished', { actor: options.actor, details: { done: report.done, moved: report.moved, stayed: report.stayed } })
    return report
  }
}

/** A target's refusal codes, told apart from other failures. */
const REFUSALS = new Set<string>(REFUSAL_CODES)

/** Why a migration ended without activating: the target's refusal code (`TARGET_BUSY`), else the error's `GOTO_ERR_…` code. */
function failureCode (record: MigrationRecord): string {
  const code = record.error?.code ?? 'GOTO_ERR_MIGRATION_FAILED'
  const refusal = code.replace(/^GOTO_ERR_/, '')
  return REFUSALS.has(refusal) ? refusal : code
}

export function rebalancer (init: RebalancerInit): (components: RebalancerComponents) => Rebalancer {
  return (components) => new Rebalancer(components, init)
}
