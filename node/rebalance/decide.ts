/**
 * Rebalancing decisions, as pure functions of a mesh view and the time.
 *
 * There is no leader: every node runs `plan()` on its own view and, when it
 * is loaded well above the mesh's mean, pushes one of its own containers to
 * a peer. The target checks the same rules against its own, fresher state
 * (`admit()`) and may refuse, so two sources that chose the same target from
 * the same stale view never both land. The agent (service.ts) and the
 * simulator of `npm run bench:rebalance` run exactly this code.
 *
 * The load of a node is a weighted mean of normalised dimensions:
 *
 *   memReserved  memory the running containers reserve (and moves in flight
 *                towards it), over the memory it offers to containers
 *   memUsed      memory in use on the host, over its total
 *   cpu          the one-minute load average, over its CPUs
 *   disk         bytes used on the engine's data root, over its size
 *   containers   running containers, over the most it takes
 *
 * A move of a container changes each dimension of both nodes by what the
 * container brings (its reservation, its CPU limit, its size, one).
 *
 * Why these rules end quiet and never ping-pong: a move is taken only when
 * it lowers the sum of squared distances of the two nodes' loads from the
 * mean by at least `minGain`; on a steady mesh that sum can only fall, so it
 * cannot return to an earlier placement. On top of that a container does not
 * move again within its cooldown nor go back to the node it came from within
 * `returnAfterMs`, a node that sent or took a move waits `nodeCooldownMs`,
 * and a target that would rise above the high watermark refuses.
 */

export const DIMENSIONS = ['memReserved', 'memUsed', 'cpu', 'disk', 'containers'] as const
export type Dimension = typeof DIMENSIONS[number]
export type Weights = Record<Dimension, number>

export const MOVABLE_LABEL = 'goto.movable'
export const PINNED_LABEL = 'goto.pinned'

export interface RebalancePolicy {
  /** Whether this node makes moves of its own. @default true */
  enabled: boolean
  /** How often the node looks at the mesh (with ±20 % jitter). @default 30000 */
  intervalMs: number
  /** What counts as load. @default memReserved 0.6, containers 0.2, cpu 0.1, disk 0.1, memUsed 0 */
  weights: Weights
  /** A node above mean + high is over and sheds a container. @default 0.1 */
  high: number
  /** A node below mean − low is under; a node above the mean may push to it. @default 0.1 */
  low: number
  /** Above this absolute load a node is over whatever the mean. @default 0.9 */
  ceiling: number
  /** `labelled`: only containers labelled goto.movable=true move on their own; `all`: all but goto.pinned=true. @default 'labelled' */
  movable: 'labelled' | 'all'
  /** A container does not move again until this long after it arrived. @default 600000 (10 min) */
  containerCooldownMs: number
  /** A node that sent or took a move waits this long before it sends or takes another. @default 60000 */
  nodeCooldownMs: number
  /** A container never goes back to the node it came from within this time. @default 3600000 (1 h) */
  returnAfterMs: number
  /** The least fall in the sum of squared load deviations a move must bring. @default 0.0005 */
  minGain: number
  /** What this node offers to containers: memory to reserve (undefined: the host's memory), and the most containers. */
  capacity: { memoryBytes?: number, containers: number }
}

export const DEFAULT_WEIGHTS: Weights = { memReserved: 0.6, memUsed: 0, cpu: 0.1, disk: 0.1, containers: 0.2 }

export const DEFAULT_POLICY: RebalancePolicy = {
  enabled: true,
  intervalMs: 30_000,
  weights: DEFAULT_WEIGHTS,
  high: 0.1,
  low: 0.1,
  ceiling: 0.9,
  movable: 'labelled',
  containerCooldownMs: 10 * 60_000,
  nodeCooldownMs: 60_000,
  returnAfterMs: 60 * 60_000,
  minGain: 0.0005,
  capacity: { containers: 100 }
}

/** A container as the decision sees it. */
export interface ContainerView {
  name: string
  running: boolean
  labels: Record<string, string>
  /** Memory it reserves (MemoryReservation, else its limit), bytes. */
  mem: number
  /** CPUs it is limited to (0 when unlimited). */
  cpu: number
  /** Bytes a move would carry (its root filesystem). */
  bytes: number
  /** When it arrived on its node by a migration (ms), if it did. */
  arrivedAt?: number
  /** The node it came from, if it arrived by a migration. */
  cameFrom?: string
}

/** A node as the decision sees it. */
export interface NodeView {
  id: string
  name: string
  /** Alive, active (not draining or leaving) and running containers. */
  eligible: boolean
  /** Memory containers may reserve. */
  memAlloc: number
  memTotal: number
  memUsed: number
  cpus: number
  load1: number
  diskTotal: number
  diskUsed: number
  maxContainers: number
  /** Memory reserved by moves admitted towards it and not yet finished. */
  memInFlight: number
  /** Moves in flight towards it. */
  incoming: number
  /** Moves in flight from it. */
  outgoing: number
  /** When it last sent or took a rebalance move (ms, its clock), as gossiped: a peer in its node cooldown refuses. */
  lastMoveAt?: number
  /**
   * Its running containers that its own rules let move now (movable, out of
   * their cooldown), as it gossips them: a peer's view of its containers
   * carries no arrival times. Undefined: judged from `containers`.
   */
  sheddable?: number
  containers: ContainerView[]
}

export type Skip = { container: string, reason: string }

export interface Move {
  container: ContainerView
  source: NodeView
  target: NodeView
  /** The fall in the two nodes' squared load deviations from the mean. */
  gain: number
  bytes: number
  /** Loads before and after the move. */
  sourceLoad: [number, number]
  targetLoad: [number, number]
}

export type Decision =
  | { action: 'move', move: Move, reason: string }
  | { action: 'hold', reason: string }

export interface Plan {
  decision: Decision
  /** The mean load of the eligible nodes, and the band around it. */
  mean: number
  band: [number, number]
  /** Every eligible node's load, by id. */
  loads: Record<string, number>
  /** The best moves considered, best first (at most five). */
  candidates: Move[]
  /** This node's containers that may not move now, and why. */
  skipped: Skip[]
  /** Whether this node wants to shed load: over the high watermark, above the mean with a peer under (and no over peer to shed first), or neither (or not known yet). */
  pressure: 'over' | 'above' | 'within'
}

export interface PlanOptions {
  /** `container→target` pairs to leave out (a target refused it lately). */
  exclude?: Set<string>
  /** When this node last sent or took a move (ms). */
  lastMoveAt?: number
}

const EPSILON = 1e-9

/**
 * Moves whose gain is at least this share of the best one count as equally
 * good, and the one that carries the fewest bytes is taken. 0.95, not 0.9:
 * on the simulator's 30 meshes of 50 nodes a wider window took small
 * containers first and so more moves (up to 1.20× a central greedy
 * schedule's, against 1.15×) for 5 % fewer bytes.
 */
export const NEAR_BEST = 0.95

function ratio (a: number, b: number): number {
  return b > 0 ? a / b : 0
}

function totalWeight (w: Weights): number {
  return DIMENSIONS.reduce((s, d) => s + Math.max(0, w[d]), 0)
}

/** Each dimension's value for a node. */
export function dimensions (n: NodeView): Record<Dimension, number> {
  const running = n.containers.filter(c => c.running)
  const reserved = running.reduce((s, c) => s + c.mem, 0) + n.memInFlight
  return {
    memReserved: ratio(reserved, n.memAlloc),
    memUsed: ratio(n.memUsed, n.memTotal),
    cpu: ratio(n.load1, n.cpus),
    disk: ratio(n.diskUsed, n.diskTotal),
    containers: ratio(running.length, n.maxContainers)
  }
}

function weighted (v: Record<Dimension, number>, w: Weights): number {
  const total = totalWeight(w)
  if (total === 0) return 0
  return DIMENSIONS.reduce((s, d) => s + Math.max(0, w[d]) * v[d], 0) / total
}

/**
 * Whether a node's figures are possible at all. They come from its own
 * gossip: a member that announces, say, 1e300 bytes reserved on 1 byte
 * offered would drag the mesh's mean so far that every other node holds; such
 * a node is left out of the mean and never chosen as a target. Reservations,
 * memory, disk and containers stay at or under their capacity in practice
 * (4× leaves room for a capacity lowered under what runs); a load average can
 * run well past the CPUs, so it gets more.
 */
export function plausible (n: NodeView, d: Record<Dimension, number> = dimensions(n)): boolean {
  return Number.isFinite(n.memAlloc) && DIMENSIONS.every(k => Number.isFinite(d[k]) && d[k] >= 0) &&
    d.memReserved <= 4 && d.memUsed <= 4 && d.disk <= 4 && d.containers <= 4 && d.cpu <= 64
}

/** A node's load: the weighted mean of its dimensions (0 idle, 1 full). */
export function loadOf (n: NodeView, w: Weights): number {
  return weighted(dimensions(n), w)
}

/** The load after a container arrives (sign 1) or leaves (sign −1). */
export function loadWith (n: NodeView, c: ContainerView, sign: 1 | -1, w: Weights): number {
  return loadFrom(dimensions(n), n, c, sign, w)
}

/** loadWith() from the node's dimensions, worked out once for many containers. */
function loadFrom (dims: Record<Dimension, number>, n: NodeView, c: ContainerView, sign: 1 | -1, w: Weights): number {
  const total = totalWeight(w)
  if (total === 0) return 0
  // what the container adds (sign 1) or takes away (sign −1) in each dimension, weighted in DIMENSIONS order as weighted() does
  let s = 0
  s += Math.max(0, w.memReserved) * (dims.memReserved + sign * ratio(c.mem, n.memAlloc))
  s += Math.max(0, w.memUsed) * (dims.memUsed + sign * ratio(c.mem, n.memTotal))
  s += Math.max(0, w.cpu) * (dims.cpu + sign * ratio(c.cpu, n.cpus))
  s += Math.max(0, w.disk) * (dims.disk + sign * ratio(c.bytes, n.diskTotal))
  s += Math.max(0, w.containers) * (dims.containers + sign * ratio(1, n.maxContainers))
  return s / total
}

/** Whether the rules let a container move on its own (a drain moves all but the pinned). */
export function autoMovable (c: ContainerView, policy: RebalancePolicy): boolean {
  if (c.labels[PINNED_LABEL] === 'true') return false
  return policy.movable === 'all' || c.labels[MOVABLE_LABEL] === 'true'
}

/** How many of a node's running containers its rules let move now (movable, out of their cooldown). */
export function sheddableCount (n: NodeView, policy: RebalancePolicy, now: number): number {
  return n.containers.filter(c => c.running && autoMovable(c, policy) && !coolingDown(c, policy, now)).length
}

/** Whether a container arrived too lately to move again. */
function coolingDown (c: ContainerView, policy: RebalancePolicy, now: number): boolean {
  return c.arrivedAt != null && now - c.arrivedAt < policy.containerCooldownMs
}

/** Whether a node counts in the mesh's mean and may take containers: active, offering memory, its figures possible. */
function counted (n: NodeView): boolean {
  return n.eligible && n.memAlloc > 0 && plausible(n)
}

/** Why a container cannot arrive on a node now, or undefined when it fits. */
export function fits (n: NodeView, c: ContainerView): string | undefined {
  return fitsIn(n, occupancy(n), c)
}

/** Memory reserved (running and in flight) and containers running on a node. */
function occupancy (n: NodeView): { reserved: number, running: number } {
  const running = n.containers.filter(x => x.running)
  return { reserved: running.reduce((s, x) => s + x.mem, 0) + n.memInFlight, running: running.length }
}

function fitsIn (n: NodeView, { reserved, running }: { reserved: number, running: number }, c: ContainerView): string | undefined {
  if (reserved + c.mem > n.memAlloc) return `${n.name} has ${Math.max(0, n.memAlloc - reserved)} bytes of memory to reserve, ${c.name} asks ${c.mem}`
  if (running + 1 > n.maxContainers) return `${n.name} runs ${running} containers, its most`
  if (n.diskTotal > 0 && n.diskUsed + c.bytes * 1.2 > n.diskTotal) return `${n.name} lacks the disk for ${c.bytes} bytes`
  return undefined
}

function mean (values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((s, v) => s + v, 0) / values.length
}

function round (x: number): string {
  return x.toFixed(3)
}

/**
 * What node `selfId` should do now: one move of its own containers, or hold,
 * with the reason either way.
 */
export function plan (selfId: string, nodes: NodeView[], policy: RebalancePolicy, now: number, options: PlanOptions = {}): Plan {
  const w = policy.weights
  // each node's dimensions once a plan: they decide whether it counts, its load, and every move's effect on it
  const dimsOf = new Map<string, Record<Dimension, number>>()
  const eligible: NodeView[] = []
  const loads: Record<string, number> = {}
  for (const n of nodes) {
    if (!n.eligible || n.memAlloc <= 0) continue
    const d = dimensions(n)
    if (!plausible(n, d)) continue
    dimsOf.set(n.id, d)
    eligible.push(n)
    loads[n.id] = weighted(d, w)
  }
  const mu = mean(Object.values(loads))
  const band: [number, number] = [mu - policy.low, Math.min(mu + policy.high, policy.ceiling)]
  let pressure: Plan['pressure'] = 'within'
  const result = (decision: Decision, candidates: Move[] = [], skipped: Skip[] = []): Plan => ({ decision, mean: mu, band, loads, candidates, skipped, pressure })
  const self = eligible.find(n => n.id === selfId)
  if (self == null) return result({ action: 'hold', reason: 'this node is not active in the mesh (draining, leaving, or runs no containers)' })
  // which containers may move now, and why the others may not: shown whatever the decision
  const skipped: Skip[] = []
  const movable: ContainerView[] = []
  for (const c of self.containers) {
    if (!c.running) continue
    if (!autoMovable(c, policy)) {
      skipped.push({ container: c.name, reason: c.labels[PINNED_LABEL] === 'true' ? 'pinned' : `not labelled ${MOVABLE_LABEL}=true` })
    } else if (coolingDown(c, policy, now)) {
      const arrivedAt = c.arrivedAt as number
      skipped.push({ container: c.name, reason: `arrived ${Math.round((now - arrivedAt) / 1000)} s ago; its cooldown is ${Math.round(policy.containerCooldownMs / 1000)} s` })
    } else {
      movable.push(c)
    }
  }
  const hold = (reason: string): Plan => result({ action: 'hold', reason }, [], skipped)
  if (!policy.enabled) return hold('rebalancing is off in this node\'s config')
  if (self.outgoing > 0) return hold('a move from this node is in flight')
  if (options.lastMoveAt != null && now - options.lastMoveAt < policy.nodeCooldownMs) {
    return hold(`this node moved a container ${Math.round((now - options.lastMoveAt) / 1000)} s ago; it waits ${Math.round(policy.nodeCooldownMs / 1000)} s`)
  }
  const isOver = (x: number): boolean => x > mu + policy.high + EPSILON || x > policy.ceiling + EPSILON
  const load = loads[self.id] as number
  const over = isOver(load)
  const peers = eligible.filter(n => n.id !== self.id)
  const under = peers.filter(n => (loads[n.id] as number) < mu - policy.low - EPSILON)
  // while an over peer can shed, it fills the under peers: a node within the band pushing too adds moves the over peer must still make
  const canShed = (n: NodeView): boolean => (n.sheddable ?? sheddableCount(n, policy, now)) > 0
  const shedding = peers.find(n => isOver(loads[n.id] as number) && canShed(n))
  pressure = over ? 'over' : load > mu + EPSILON && under.length > 0 && shedding == null ? 'above' : 'within'
  if (pressure === 'within') {
    const why = under.length === 0 ? ' and no peer is under' : shedding != null && load > mu + EPSILON ? `; ${shedding.name} is over and sheds first` : ''
    return hold(`load ${round(load)} is within the watermarks (mean ${round(mu)}, band ${round(band[0])}–${round(band[1])})${why}`)
  }
  // over: any peer below the mean may take; merely above the mean: only an under peer
  const targets = over ? peers.filter(n => (loads[n.id] as number) < mu - EPSILON) : under
  if (movable.length === 0) return hold(`load ${round(load)} is ${over ? 'over' : 'above the mean'}, but no container of this node may move now`)

  const moves: Move[] = []
  let busy = 0
  let full = 0
  // the targets left out for each container, read once from the `container→target` pairs
  const left = new Map<string, Set<string>>()
  for (const pair of options.exclude ?? []) {
    const at = pair.lastIndexOf('→')
    const name = pair.slice(0, at)
    left.set(name, (left.get(name) ?? new Set()).add(pair.slice(at + 1)))
  }
  const excluded = movable.map(c => left.get(c.name))
  const selfDims = dimsOf.get(self.id) as Record<Dimension, number>
  const sourceAfters = movable.map(c => loadFrom(selfDims, self, c, -1, w))
  for (const t of targets) {
    // a peer taking a move, or in its node cooldown, would refuse: TARGET_BUSY
    if (t.incoming > 0 || (t.lastMoveAt != null && now - t.lastMoveAt < policy.nodeCooldownMs)) { busy++; continue }
    const before = loads[t.id] as number
    const dims = dimsOf.get(t.id) as Record<Dimension, number>
    const room = occupancy(t)
    for (const [i, c] of movable.entries()) {
      if (excluded[i]?.has(t.id) === true) continue
      if (c.cameFrom === t.id && c.arrivedAt != null && now - c.arrivedAt < policy.returnAfterMs) continue
      if (fitsIn(t, room, c) != null) { full++; continue }
      const after = loadFrom(dims, t, c, 1, w)
      const sourceAfter = sourceAfters[i] as number
      if (after > band[1] + EPSILON || after > policy.ceiling + EPSILON) continue
      const gain = (load - mu) ** 2 + (before - mu) ** 2 - (sourceAfter - mu) ** 2 - (after - mu) ** 2
      if (gain < policy.minGain) continue
      moves.push({ container: c, source: self, target: t, gain, bytes: c.bytes, sourceLoad: [load, sourceAfter], targetLoad: [before, after] })
    }
  }
  if (moves.length === 0) {
    const why = targets.length === 0
      ? 'no peer is below the mean'
      : busy === targets.length ? 'every peer below the mean is taking a move or moved one lately' : full > 0 ? 'no peer below the mean has room for any movable container' : 'no move evens the mesh by enough'
    return result({ action: 'hold', reason: `load ${round(load)} is ${over ? 'over' : 'above the mean'}, but ${why}` }, [], skipped)
  }
  // the most even mesh first; within NEAR_BEST of the best gain, the fewest bytes
  const byGain = (a: Move, b: Move): number => b.gain - a.gain || a.bytes - b.bytes || a.container.name.localeCompare(b.container.name) || a.target.id.localeCompare(b.target.id)
  // the five best by gain without sorting them all: a mesh of hundreds of nodes offers thousands
  const top: Move[] = []
  for (const m of moves) {
    if (top.length === 5 && byGain(m, top[4] as Move) >= 0) continue
    top.splice(top.findIndex(x => byGain(m, x) < 0) >>> 0, 0, m)
    if (top.length > 5) top.pop()
  }
  const best = top[0] as Move
  const byBytes = (a: Move, b: Move): number => a.bytes - b.bytes || b.gain - a.gain || a.container.name.localeCompare(b.container.name) || a.target.id.localeCompare(b.target.id)
  let chosen = best
  for (const m of moves) if (m.gain >= best.gain * NEAR_BEST && byBytes(m, chosen) < 0) chosen = m
  const reason = `load ${round(load)} is ${over ? 'over the high watermark' : 'above the mean with a peer under'} (mean ${round(mu)}); ` +
    `moving ${chosen.container.name} (${chosen.bytes} bytes) to ${chosen.target.name} takes this node to ${round(chosen.sourceLoad[1])} and it to ${round(chosen.targetLoad[1])}`
  return result({ action: 'move', move: chosen, reason }, [chosen, ...top.filter(m => m !== chosen)].slice(0, 5), skipped)
}

export interface Offered {
  name: string
  mem: number
  cpu: number
  bytes: number
  purpose: 'manual' | 'rebalance' | 'drain'
}

export type AdmitCode = 'TARGET_BUSY' | 'INSUFFICIENT_MEMORY' | 'OVERLOADED'

/**
 * The target's side: whether it takes a container now, judged on its own
 * state. Every migration must fit the memory reserved; a rebalance or drain
 * move also waits for the one in flight, and a rebalance move for the node's
 * cooldown and only when it keeps the target under its high watermark.
 */
export function admit (self: NodeView, nodes: NodeView[], offered: Offered, policy: RebalancePolicy, now: number, lastMoveAt?: number): { code: AdmitCode, reason: string } | undefined {
  const c: ContainerView = { name: offered.name, running: true, labels: {}, mem: offered.mem, cpu: offered.cpu, bytes: offered.bytes }
  if (offered.purpose !== 'manual' && self.incoming > 0) return { code: 'TARGET_BUSY', reason: `${self.name} is taking another move` }
  if (offered.purpose === 'rebalance' && lastMoveAt != null && now - lastMoveAt < policy.nodeCooldownMs) {
    return { code: 'TARGET_BUSY', reason: `${self.name} took or sent a move ${Math.round((now - lastMoveAt) / 1000)} s ago` }
  }
  const { reserved, running } = occupancy(self)
  if (reserved + c.mem > self.memAlloc) return { code: 'INSUFFICIENT_MEMORY', reason: `${self.name} has ${Math.max(0, self.memAlloc - reserved)} bytes of memory left to reserve, the container asks ${c.mem}` }
  if (offered.purpose === 'manual') return undefined
  if (running + 1 > self.maxContainers) return { code: 'OVERLOADED', reason: `${self.name} runs ${running} containers, its most` }
  if (offered.purpose === 'rebalance') {
    const w = policy.weights
    const eligible = nodes.filter(counted)
    const mu = mean(eligible.map(n => loadOf(n, w)))
    const after = loadWith(self, c, 1, w)
    const limit = Math.min(mu + policy.high, policy.ceiling)
    if (after > limit + EPSILON) return { code: 'OVERLOADED', reason: `taking ${offered.name} would lift ${self.name} to ${round(after)}, above its high watermark ${round(limit)}` }
  }
  return undefined
}

/**
 * Where a draining node should send a container: the eligible peer with
 * room that ends least loaded, skipping pairs refused lately. Peers busy with
 * another move count as room later: undefined with `wait` says to try again.
 */
export function placeFor (c: ContainerView, selfId: string, nodes: NodeView[], policy: RebalancePolicy, exclude: Set<string> = new Set()): { target: NodeView } | { wait: boolean, reason: string } {
  const w = policy.weights
  let busy = false
  const reasons: string[] = []
  const options: Array<{ target: NodeView, after: number }> = []
  for (const n of nodes) {
    if (n.id === selfId || !counted(n)) continue
    if (exclude.has(`${c.name}→${n.id}`)) { reasons.push(`${n.name} refused it`); continue }
    const full = fits(n, c)
    if (full != null) { reasons.push(full); continue }
    if (n.incoming > 0) { busy = true; continue }
    options.push({ target: n, after: loadWith(n, c, 1, w) })
  }
  if (options.length === 0) {
    if (busy) return { wait: true, reason: 'every peer with room is taking another move' }
    return { wait: false, reason: reasons.length > 0 ? reasons.join('; ') : 'no active peer runs containers' }
  }
  options.sort((a, b) => a.after - b.after || a.target.id.localeCompare(b.target.id))
  return { target: (options[0] as { target: NodeView }).target }
}
