/**
 * A simulated mesh that drives the real rebalancing code (`plan()`, `admit()`
 * and `drain()` of node/rebalance) with no agent, no network and no Docker:
 * nodes and containers are plain records, time is simulated, and every figure
 * follows from a seed. `bench/rebalance.ts` runs it at 50 and 500 nodes, and
 * test/unit/rebalance-sim.test.ts checks its safety properties on small meshes.
 *
 * The model:
 *
 * - A node offers `memAlloc` bytes to containers (8–64 GiB), has memAlloc/4 GiB
 *   CPUs, 20 bytes of disk per byte of memory and takes 100 containers. Its
 *   dimensions follow what it runs: memUsed = 1 GiB + Σ reservations, load1 =
 *   Σ CPU limits (every container busy at its limit), diskUsed = 10 GB + Σ
 *   sizes. So a node's load is linear in its containers, as decide.ts assumes.
 * - A container reserves 128 MiB–4 GiB (skewed small), is limited to 0.1–2 CPUs
 *   and carries 50 MB–5 GB. Most are labelled goto.movable=true, a few
 *   goto.pinned=true, the rest neither (they never move on their own).
 * - Placement at the start is skewed: a fifth of the nodes are filled to 75–95 %
 *   of their memory, the others to 5–45 %; never over capacity.
 * - Time goes in rounds of `roundMs` (5 s). Each node plans when its own clock
 *   says so (the policy's interval, ±20 %), on its view of the mesh: the truth
 *   as it was 0, 1 or 2 rounds ago (gossip lag; fixed per node and run), with
 *   its own entry fresh; as in the agent, only its own containers carry
 *   arrivedAt and cameFrom. A `move` is an offer; the target answers with
 *   `admit()` on its true current state (moves admitted earlier in the same
 *   round included) and its own view. As the agent does (service.ts), a
 *   refusal leaves `container→target` out for max(5 intervals, node cooldown)
 *   and the source plans again at once (here: up to `maxOffers` times a round).
 * - An admitted move is in flight for 10 s + bytes at 50 MB/s. Meanwhile the
 *   container runs at the source (outgoing 1) and the target holds its
 *   reservation (memInFlight, incoming 1). At the end it runs at the target
 *   with arrivedAt and cameFrom set. Source and target record lastMoveAt at its
 *   end (the agent reads it from its journal's committed and activated phases).
 */
import { admit, autoMovable, loadOf, plan, sheddableCount, type ContainerView, type NodeView, type RebalancePolicy } from '../../node/rebalance/decide.ts'
import { drain, type DrainOps, type DrainOutcome, type DrainReport } from '../../node/rebalance/drain.ts'
import { prng } from './measure.ts'

export const GiB = 1024 ** 3
export const MiB = 1024 ** 2
export const MB = 1e6
export const GB = 1e9
const EPSILON = 1e-9

export interface SimOptions {
  /** Simulated time per round. @default 5000 */
  roundMs: number
  /** Transfer rate of a move, bytes per second. @default 50 MB/s */
  bytesPerSecond: number
  /** Fixed cost of a move (freeze, commit, start). @default 10000 */
  moveOverheadMs: number
  /** How long a refused container→target pair is left out; undefined: as the agent (service.ts), max(5 intervals, node cooldown). */
  excludeMs?: number
  /** Plans a node makes in one round when its offers are refused (the agent plans again at once after each refusal). @default 20 */
  maxOffers: number
  /** The most rounds simulated; a run still moving then is reported not quiet. @default 1440 (2 h) */
  maxRounds: number
  /** Largest gossip lag of a node's view, in rounds (each node draws 0…maxLag). @default 2 */
  maxLag: number
}

export const DEFAULT_SIM: SimOptions = {
  roundMs: 5000,
  bytesPerSecond: 50 * MB,
  moveOverheadMs: 10_000,
  maxOffers: 20,
  maxRounds: 1440,
  maxLag: 2
}

export interface Mesh {
  nodes: NodeView[]
}

/** A node's memory, CPU and disk as functions of what it runs (see the model above). */
export function refresh (n: NodeView): void {
  let mem = 0
  let cpu = 0
  let bytes = 0
  for (const c of n.containers) {
    bytes += c.bytes
    if (!c.running) continue
    mem += c.mem
    cpu += c.cpu
  }
  n.memUsed = GiB + mem
  n.load1 = cpu
  n.diskUsed = 10 * GB + bytes
}

function emptyNode (i: number, memAlloc: number, maxContainers: number): NodeView {
  return {
    id: `n${String(i).padStart(3, '0')}`,
    name: `node-${i}`,
    eligible: true,
    memAlloc,
    memTotal: memAlloc + 2 * GiB,
    memUsed: GiB,
    cpus: Math.max(2, memAlloc / (4 * GiB)),
    load1: 0,
    diskTotal: 20 * memAlloc,
    diskUsed: 10 * GB,
    maxContainers,
    memInFlight: 0,
    incoming: 0,
    outgoing: 0,
    containers: []
  }
}

export interface MeshOptions {
  /** Share of nodes filled hot. @default 0.2 */
  hot: number
  /** Fill of hot and of other nodes, as [low, high) of their memory. */
  hotFill: [number, number]
  coldFill: [number, number]
  /** Share of containers labelled goto.movable=true and goto.pinned=true. */
  movable: number
  pinned: number
  /** Share of containers stopped (only drains see any). @default 0 */
  stopped: number
  /** Node sizes (memAlloc, GiB) and the odds of each. @default 8, 16, 32, 64 at 30, 30, 25, 15 % */
  sizes: Array<[number, number]>
  /** Reservations, log-uniform between these (skewed small). @default 128 MiB – 4 GiB */
  mem: [number, number]
}

export const DEFAULT_MESH: MeshOptions = {
  hot: 0.2,
  hotFill: [0.75, 0.95],
  coldFill: [0.05, 0.45],
  movable: 0.85,
  pinned: 0.05,
  stopped: 0,
  sizes: [[8, 0.3], [16, 0.3], [32, 0.25], [64, 0.15]],
  mem: [128 * MiB, 4 * GiB]
}

/** A mesh of `n` nodes with skewed, never over-capacity placement; same seed, same mesh. */
export function generateMesh (seed: number, n: number, policy: RebalancePolicy, options: Partial<MeshOptions> = {}): Mesh {
  const o = { ...DEFAULT_MESH, ...options }
  const random = prng(seed)
  const nodes: NodeView[] = []
  let serial = 0
  for (let i = 0; i < n; i++) {
    let u = random()
    const memAlloc = (o.sizes.find(([, p]) => (u -= p) < 0) ?? o.sizes.at(-1) as [number, number])[0] * GiB
    const node = emptyNode(i, memAlloc, policy.capacity.containers)
    const [lo, hi] = random() < o.hot ? o.hotFill : o.coldFill
    const fill = (lo + (hi - lo) * random()) * memAlloc
    let reserved = 0
    for (let misses = 0; misses < 5 && node.containers.length < node.maxContainers;) {
      // reservations log-uniform, skewed to the small end
      const mem = Math.round(o.mem[0] * (o.mem[1] / o.mem[0]) ** (random() ** 2))
      if (reserved + mem > fill) { misses++; continue }
      reserved += mem
      const kind = random()
      const labels: Record<string, string> = kind < o.movable ? { 'goto.movable': 'true' } : kind < o.movable + o.pinned ? { 'goto.pinned': 'true' } : {}
      node.containers.push({
        name: `c${serial++}`,
        running: random() >= o.stopped,
        labels,
        mem,
        cpu: Math.round((0.1 + 1.9 * random() ** 2) * 100) / 100,
        bytes: Math.round(50 * MB * 100 ** random())
      })
    }
    refresh(node)
    nodes.push(node)
  }
  return { nodes }
}

export function cloneMesh (mesh: Mesh): Mesh {
  return { nodes: mesh.nodes.map(n => ({ ...n, containers: n.containers.map(c => ({ ...c, labels: { ...c.labels } })) })) }
}

/** Loads of the eligible nodes (loadOf, the code's own). */
export function loads (nodes: NodeView[], policy: RebalancePolicy): number[] {
  return nodes.filter(n => n.eligible && n.memAlloc > 0).map(n => loadOf(n, policy.weights))
}

export function stddev (values: number[]): number {
  if (values.length === 0) return 0
  const mu = values.reduce((s, v) => s + v, 0) / values.length
  return Math.sqrt(values.reduce((s, v) => s + (v - mu) ** 2, 0) / values.length)
}

/** Whether every eligible node is within plan()'s band: mean − low ≤ load ≤ min(mean + high, ceiling). */
export function balanced (values: number[], policy: RebalancePolicy): boolean {
  if (values.length === 0) return true
  const mu = values.reduce((s, v) => s + v, 0) / values.length
  const hi = Math.min(mu + policy.high, policy.ceiling)
  return values.every(v => v >= mu - policy.low - EPSILON && v <= hi + EPSILON)
}

export type Strategy = 'ours' | 'none' | 'descheduler'

export interface RunResult {
  strategy: Strategy
  nodes: number
  /** Moves started (admitted offers, or evictions for the descheduler). */
  moves: number
  /** Bytes those moves carry (the containers' sizes). */
  bytes: number
  /** Moves that ended (a container runs at its target). */
  completed: number
  /** Offers refused by the target's admit(), by code. */
  refusals: Record<string, number>
  stddevBefore: number
  stddevAfter: number
  /** Stddev of the true loads at the start of each round. */
  series: number[]
  /** The round after the last move ended and the last offer was made; undefined if it never went quiet. */
  quietRound?: number
  /** The first round whose start found the mesh within the band with no move in flight (settled); undefined if never. */
  balancedRound?: number
  balancedAtEnd: boolean
  /** Node-rounds with more memory reserved (running + in flight) than memAlloc. */
  capacityViolations: number
  /** Moves started towards a target that already had one in flight. */
  doubleBooked: number
  /** Moves taking a container back to the node it last left. */
  aba: number
  /** Moves of a container within containerCooldownMs of its arrival. */
  cooldownViolations: number
  /** Moves started after the mesh was first within the band. */
  movesAfterBalanced: number
  maxOutPerSource: number
  maxInPerTarget: number
  rounds: number
}

interface Flight {
  container: ContainerView
  source: NodeView
  target: NodeView
  endAt: number
  /** Descheduler evictions: the container left its source at once and reserves nothing on the way. */
  evicted: boolean
}

interface Track {
  /** The node it last left. */
  left?: string
  arrivedAt?: number
}

/**
 * One run of a strategy on a copy of the mesh. `ours`: every node runs plan()
 * and targets admit(), as the agent does. `descheduler`: every interval, each
 * node over the band (in a view one round old) evicts a random movable
 * container and a scheduler places it on the node with the most free memory in
 * that view, counting its own placements of that pass but nothing in flight,
 * with no admission at the target. `none`: nothing moves (Swarm).
 */
export function simulate (start: Mesh, strategy: Strategy, policy: RebalancePolicy, seed: number, options: Partial<SimOptions> = {}): RunResult {
  const o = { ...DEFAULT_SIM, ...options }
  const random = prng(seed ^ 0x5bd1e995)
  const { nodes } = cloneMesh(start)
  const byId = new Map(nodes.map(n => [n.id, n]))
  const w = policy.weights
  const lag = new Map(nodes.map(n => [n.id, Math.floor(random() * (o.maxLag + 1))]))
  const nextDue = new Map(nodes.map(n => [n.id, Math.floor(random() * policy.intervalMs)]))
  const lastMoveAt = new Map<string, number>()
  const exclude = new Map<string, Map<string, number>>(nodes.map(n => [n.id, new Map()]))
  const track = new Map<string, Track>()
  const flights: Flight[] = []
  const snapshots: NodeView[][] = []
  const refusals: Record<string, number> = {}
  const series: number[] = []
  const r: RunResult = {
    strategy, nodes: nodes.length, moves: 0, bytes: 0, completed: 0, refusals, stddevBefore: stddev(loads(nodes, policy)), stddevAfter: 0, series,
    balancedAtEnd: false, capacityViolations: 0, doubleBooked: 0, aba: 0, cooldownViolations: 0, movesAfterBalanced: 0, maxOutPerSource: 0, maxInPerTarget: 0, rounds: 0
  }
  // quiet once nothing moved for the longest cooldown plus an interval: every rule that holds a move back has lapsed
  const excludeMs = o.excludeMs ?? Math.max(5 * policy.intervalMs, policy.nodeCooldownMs)
  const quietRounds = Math.ceil((Math.max(policy.containerCooldownMs, policy.nodeCooldownMs, excludeMs) + policy.intervalMs * 1.2) / o.roundMs) + 1
  let lastActive = -1
  // peers' containers as gossip shows them: the agent knows when a container arrived and from where only for its own (from its journal)
  const gossiped = new WeakMap<ContainerView, ContainerView>()
  const bare = (c: ContainerView): ContainerView => {
    if (c.arrivedAt == null && c.cameFrom == null) return c
    let g = gossiped.get(c)
    if (g == null) {
      const { arrivedAt: _a, cameFrom: _f, ...rest } = c
      g = rest
      gossiped.set(c, g)
    }
    return g
  }
  // what gossip shows of a node also says when it last moved (its node cooldown), as the agent's capacity does
  // and how many of its containers its rules let move now, which its peers cannot tell from bare containers
  const snapshot = (now: number): NodeView[] => nodes.map(n => ({ ...n, lastMoveAt: lastMoveAt.get(n.id), sheddable: sheddableCount(n, policy, now), containers: n.containers.map(bare) }))
  const viewOf = (self: NodeView, rounds: number): NodeView[] => {
    const base = snapshots[Math.min(rounds, snapshots.length - 1)] as NodeView[]
    return base.map(v => v.id === self.id ? self : v)
  }
  const startMove = (c: ContainerView, source: NodeView, target: NodeView, now: number, evicted: boolean): void => {
    r.moves++
    r.bytes += c.bytes
    if (r.balancedRound != null) r.movesAfterBalanced++
    if (target.incoming > 0) r.doubleBooked++
    const t = track.get(c.name)
    if (t?.left === target.id) r.aba++
    if (t?.arrivedAt != null && now - t.arrivedAt < policy.containerCooldownMs) r.cooldownViolations++
    source.outgoing++
    target.incoming++
    r.maxOutPerSource = Math.max(r.maxOutPerSource, source.outgoing)
    r.maxInPerTarget = Math.max(r.maxInPerTarget, target.incoming)
    if (evicted) {
      source.containers = source.containers.filter(x => x !== c)
      refresh(source)
    } else {
      target.memInFlight += c.mem
    }
    flights.push({ container: c, source, target, endAt: now + o.moveOverheadMs + c.bytes / o.bytesPerSecond * 1000, evicted })
  }
  const endMove = (f: Flight, now: number): void => {
    const { container: c, source, target } = f
    if (!f.evicted) {
      source.containers = source.containers.filter(x => x !== c)
      refresh(source)
      target.memInFlight -= c.mem
      lastMoveAt.set(source.id, now)
      lastMoveAt.set(target.id, now)
    }
    source.outgoing--
    target.incoming--
    target.containers = [...target.containers, { ...c, arrivedAt: now, cameFrom: source.id }]
    refresh(target)
    track.set(c.name, { left: source.id, arrivedAt: now })
    r.completed++
  }

  let round = 0
  for (; round < o.maxRounds; round++) {
    const now = round * o.roundMs
    for (const f of flights.filter(f => f.endAt <= now).sort((a, b) => a.endAt - b.endAt)) {
      endMove(f, now)
      flights.splice(flights.indexOf(f), 1)
    }
    snapshots.unshift(snapshot(now))
    if (snapshots.length > o.maxLag + 1) snapshots.pop()
    const values = loads(nodes, policy)
    series.push(stddev(values))
    // settled: within the band and nothing in flight (a move still landing shifts the mean of unlike nodes)
    if (r.balancedRound == null && flights.length === 0 && balanced(values, policy)) r.balancedRound = round
    for (const n of nodes) {
      let reserved = n.memInFlight
      for (const c of n.containers) if (c.running) reserved += c.mem
      if (reserved > n.memAlloc) r.capacityViolations++
    }
    if (flights.length > 0) lastActive = round
    if (round - lastActive > quietRounds) break
    if (strategy === 'none') continue

    const order = nodes.slice()
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j] as NodeView, order[i] as NodeView]
    }

    if (strategy === 'descheduler') {
      // one central pass per interval, on the view of one round ago
      if (now % policy.intervalMs >= o.roundMs) continue
      const view = (snapshots[Math.min(1, snapshots.length - 1)] as NodeView[]).map(v => ({ ...v }))
      const free = new Map(view.map(v => [v.id, v.memAlloc - v.containers.reduce((s, c) => s + (c.running ? c.mem : 0), 0)]))
      const vl = view.map(v => loadOf(v, w))
      const mu = vl.reduce((s, v) => s + v, 0) / vl.length
      const hi = Math.min(mu + policy.high, policy.ceiling)
      for (const [i, v] of view.entries()) {
        if ((vl[i] as number) <= hi + EPSILON) continue
        const source = byId.get(v.id) as NodeView
        const movable = source.containers.filter(c => c.running && autoMovable(c, policy))
        if (movable.length === 0) continue
        const c = movable[Math.floor(random() * movable.length)] as ContainerView
        let best: string | undefined
        for (const [id, f] of free) if (id !== source.id && (best == null || f > (free.get(best) as number))) best = id
        if (best == null) continue
        free.set(best, (free.get(best) as number) - c.mem)
        free.set(source.id, (free.get(source.id) as number) + c.mem)
        startMove(c, source, byId.get(best) as NodeView, now, true)
        lastActive = round
      }
      continue
    }

    for (const self of order) {
      if ((nextDue.get(self.id) as number) > now) continue
      nextDue.set(self.id, now + policy.intervalMs * (0.8 + 0.4 * random()))
      const ex = exclude.get(self.id) as Map<string, number>
      for (const [pair, until] of ex) if (until <= now) ex.delete(pair)
      for (let attempt = 0; attempt < o.maxOffers; attempt++) {
        const p = plan(self.id, viewOf(self, lag.get(self.id) as number), policy, now, { lastMoveAt: lastMoveAt.get(self.id), exclude: new Set(ex.keys()) })
        if (p.decision.action !== 'move') break
        lastActive = round
        const { container, target: seen } = p.decision.move
        const target = byId.get(seen.id) as NodeView
        const refused = admit(target, viewOf(target, lag.get(target.id) as number), { name: container.name, mem: container.mem, cpu: container.cpu, bytes: container.bytes, purpose: 'rebalance' }, policy, now, lastMoveAt.get(target.id))
        if (refused != null) {
          refusals[refused.code] = (refusals[refused.code] ?? 0) + 1
          ex.set(`${container.name}→${target.id}`, now + excludeMs)
          // as the agent does: a busy target is left out for all of the source's containers for a node cooldown
          if (refused.code === 'TARGET_BUSY') for (const x of self.containers) if (x.name !== container.name) ex.set(`${x.name}→${target.id}`, Math.max(ex.get(`${x.name}→${target.id}`) ?? 0, now + policy.nodeCooldownMs))
          continue
        }
        const c = self.containers.find(x => x.name === container.name) as ContainerView
        startMove(c, self, target, now, false)
        break
      }
    }
  }
  r.rounds = round
  r.quietRound = round < o.maxRounds ? lastActive + 1 : undefined
  const end = loads(nodes, policy)
  r.stddevAfter = stddev(end)
  r.balancedAtEnd = balanced(end, policy)
  return r
}

/**
 * What a container adds to a node's load. In this model a node's load is
 * linear in its containers, so this equals loadWith(n, c, 1) − loadOf(n) (the
 * unit test holds the two equal); worked out directly, it is cheap enough to
 * take for every container and node of a 500-node mesh.
 */
export function shiftOn (n: NodeView, c: ContainerView, policy: RebalancePolicy): number {
  const w = policy.weights
  const total = Math.max(0, w.memReserved) + Math.max(0, w.memUsed) + Math.max(0, w.cpu) + Math.max(0, w.disk) + Math.max(0, w.containers)
  if (total === 0) return 0
  const r = (a: number, b: number): number => b > 0 ? a / b : 0
  return (Math.max(0, w.memReserved) * r(c.mem, n.memAlloc) + Math.max(0, w.memUsed) * r(c.mem, n.memTotal) + Math.max(0, w.cpu) * r(c.cpu, n.cpus) +
    Math.max(0, w.disk) * r(c.bytes, n.diskTotal) + Math.max(0, w.containers) * r(1, n.maxContainers)) / total
}

export interface Bound {
  /** The lower bound on moves to bring every node into the band. */
  lb: number
  /** The same count with the band around the starting mean (not a bound: the mean moves as containers change nodes). */
  atStartMean: number
  /** Nodes that cannot reach the band with the containers that may move. */
  infeasible: number
}

/**
 * A lower bound on the moves any schedule needs to bring every node into
 * plan()'s band, even a central one with full knowledge and no cooldowns.
 *
 * With the final mean m, an over node must end at or below min(m + high,
 * ceiling): it must send away at least the fewest of its movable containers
 * whose loads add up to its excess (largest first gives that fewest). An
 * under node must reach m − low: at least its deficit over the most any one
 * movable container could add to it. Every move is one departure and one
 * arrival, so moves ≥ max(Σ departures, Σ arrivals).
 *
 * The final mean is unknown: a container that ends on another node changes
 * the sum of loads by at most up(c) = its largest load on any node − its load
 * at home (and lowers it by at most down(c), likewise). A schedule of k moves
 * moves at most k containers, so its final mean is within [m0 − Σ k largest
 * down / n, m0 + Σ k largest up / n]. With B(k) the least that any mean in
 * that range asks, every schedule of k moves has k ≥ B(k); the least such k is
 * a lower bound on the optimum.
 */
export function lowerBound (mesh: Mesh, policy: RebalancePolicy): Bound {
  const nodes = mesh.nodes.filter(n => n.eligible && n.memAlloc > 0)
  const n = nodes.length
  const L = nodes.map(x => loadOf(x, policy.weights))
  const mu0 = L.reduce((s, v) => s + v, 0) / n
  const homes = nodes.map(x => x.containers.filter(c => c.running && autoMovable(c, policy)))
  // what leaving takes off each node, largest first
  const drops = nodes.map((x, i) => (homes[i] as ContainerView[]).map(c => shiftOn(x, c, policy)).sort((a, b) => b - a))
  const maxAdd = nodes.map(() => 0)
  const ups: number[] = []
  const downs: number[] = []
  for (const [h, home] of homes.entries()) {
    for (const c of home) {
      const own = shiftOn(nodes[h] as NodeView, c, policy)
      let lo = own
      let hi = own
      for (const [i, x] of nodes.entries()) {
        const s = shiftOn(x, c, policy)
        if (s < lo) lo = s
        if (s > hi) hi = s
        if (i !== h && s > (maxAdd[i] as number)) maxAdd[i] = s
      }
      ups.push(hi - own)
      downs.push(own - lo)
    }
  }
  const sums = (v: number[]): number[] => {
    v.sort((a, b) => b - a)
    const out = [0]
    for (const x of v) out.push((out.at(-1) as number) + x)
    return out
  }
  const up = sums(ups)
  const down = sums(downs)
  const bound = (lo: number, hi: number): { departures: number, arrivals: number, infeasible: number } => {
    let departures = 0
    let arrivals = 0
    let infeasible = 0
    const top = Math.min(hi + policy.high, policy.ceiling)
    const floor = lo - policy.low
    for (let i = 0; i < n; i++) {
      const load = L[i] as number
      if (load > top + EPSILON) {
        let excess = load - top
        let k = 0
        for (const d of drops[i] as number[]) { if (excess <= EPSILON) break; excess -= d; k++ }
        if (excess > EPSILON) infeasible++
        departures += k
      } else if (load < floor - EPSILON) {
        const add = maxAdd[i] as number
        if (add <= 0) { infeasible++; continue }
        arrivals += Math.ceil((floor - load) / add - EPSILON)
      }
    }
    return { departures, arrivals, infeasible }
  }
  // Departures only fall and arrivals only rise with the mean m. Cut [lo, hi] at fixed grid points
  // (multiples of STEP) into cells; a final mean in a cell [b, t] needs at least max(departures at t,
  // arrivals at b). The least of that over the cells is a bound for every mean in [lo, hi], and with
  // fixed grid points it can only fall as the range widens, so the least k with B(k) ≤ k is found by
  // bisection.
  const STEP = 0.002
  const memo = new Map<number, { departures: number, arrivals: number }>()
  const at = (m: number): { departures: number, arrivals: number } => {
    let v = memo.get(m)
    if (v == null) { v = bound(m, m); memo.set(m, v) }
    return v
  }
  const within = (lo: number, hi: number): number => {
    const cuts = [lo]
    for (let i = Math.floor(lo / STEP) + 1; i * STEP < hi; i++) cuts.push(i * STEP)
    cuts.push(hi)
    let least = Infinity
    for (let i = 0; i + 1 < cuts.length; i++) least = Math.min(least, Math.max(at(cuts[i + 1] as number).departures, at(cuts[i] as number).arrivals))
    return least
  }
  const atStart = bound(mu0, mu0)
  let lo = 0
  let hi = Math.max(atStart.departures, atStart.arrivals)
  while (lo < hi) {
    const k = Math.floor((lo + hi) / 2)
    const j = Math.min(k, up.length - 1)
    if (within(mu0 - (down[j] as number) / n, mu0 + (up[j] as number) / n) <= k) hi = k
    else lo = k + 1
  }
  return { lb: lo, atStartMean: Math.max(atStart.departures, atStart.arrivals), infeasible: atStart.infeasible }
}

/**
 * The fewest moves to bring a small mesh into the band, by exhaustive search
 * over final placements (each movable container stays or goes to one other
 * node; every node within memAlloc and its container cap). The order of the
 * moves is left out, so this is itself a lower bound on schedules that must
 * respect capacity at every step. Undefined when not found within `maxMoves`
 * or `budget` placements tried.
 */
export function optimum (mesh: Mesh, policy: RebalancePolicy, maxMoves: number, budget = 30_000_000): number | undefined {
  const nodes = mesh.nodes.filter(n => n.eligible && n.memAlloc > 0)
  const n = nodes.length
  const items = nodes.flatMap((x, i) => x.containers.filter(c => c.running && autoMovable(c, policy)).map(c => ({ c, home: i })))
  const add = items.map(({ c }) => nodes.map(x => shiftOn(x, c, policy)))
  const load = nodes.map(x => loadOf(x, policy.weights))
  const mem = nodes.map(x => x.containers.reduce((s, c) => s + (c.running ? c.mem : 0), 0) + x.memInFlight)
  const count = nodes.map(x => x.containers.filter(c => c.running).length)
  let tried = 0
  const ok = (): boolean => {
    tried++
    for (let i = 0; i < n; i++) if ((mem[i] as number) > (nodes[i] as NodeView).memAlloc || (count[i] as number) > (nodes[i] as NodeView).maxContainers) return false
    return balanced(load, policy)
  }
  const move = (j: number, from: number, to: number, sign: 1 | -1): void => {
    const it = items[j] as { c: ContainerView }
    const a = add[j] as number[]
    load[from] = (load[from] as number) - sign * (a[from] as number)
    load[to] = (load[to] as number) + sign * (a[to] as number)
    mem[from] = (mem[from] as number) - sign * it.c.mem
    mem[to] = (mem[to] as number) + sign * it.c.mem
    count[from] = (count[from] as number) - sign
    count[to] = (count[to] as number) + sign
  }
  const search = (from: number, left: number): boolean => {
    if (tried > budget) return false
    if (ok()) return true
    if (left === 0) return false
    for (let j = from; j < items.length; j++) {
      const home = (items[j] as { home: number }).home
      for (let t = 0; t < n; t++) {
        if (t === home) continue
        move(j, home, t, 1)
        const found = search(j + 1, left - 1)
        move(j, home, t, -1)
        if (found) return true
      }
    }
    return false
  }
  for (let k = lowerBound(mesh, policy).lb; k <= maxMoves; k++) {
    // each depth searches every placement with at most k moves; a find at depth k after none at k − 1 is exactly k
    if (search(0, k)) return k
    if (tried > budget) return undefined
  }
  return undefined
}

export interface GreedyResult {
  moves: number
  stddevAfter: number
  balanced: boolean
}

/**
 * A central optimiser with full knowledge and no cooldowns, moving one
 * container at a time, instantly: while a node is outside the band, take the
 * move that most shrinks the total distance of all loads from the band
 * (ties: the larger fall in squared deviations), from the node furthest over
 * or into the node furthest under. Its count is an upper bound on the optimum.
 */
export function greedy (start: Mesh, policy: RebalancePolicy, maxMoves = 100_000): GreedyResult {
  const { nodes } = cloneMesh(start)
  const n = nodes.length
  const w = policy.weights
  const load = nodes.map(x => loadOf(x, w))
  const mem = nodes.map(x => x.containers.reduce((s, c) => s + (c.running ? c.mem : 0), 0))
  let moves = 0
  const outside = (v: number, lo: number, hi: number): number => v > hi ? v - hi : v < lo ? lo - v : 0
  for (; moves < maxMoves; moves++) {
    const mu = load.reduce((s, v) => s + v, 0) / n
    const lo = mu - policy.low
    const hi = Math.min(mu + policy.high, policy.ceiling)
    const over: number[] = []
    const under: number[] = []
    for (let i = 0; i < n; i++) {
      const v = load[i] as number
      if (v > hi + EPSILON) over.push(i)
      if (v < lo - EPSILON) under.push(i)
    }
    if (over.length === 0 && under.length === 0) break
    over.sort((a, b) => (load[b] as number) - (load[a] as number))
    under.sort((a, b) => (load[a] as number) - (load[b] as number))
    let best: { s: number, t: number, c: ContainerView, score: number, gain: number, ds: number, dt: number } | undefined
    const consider = (s: number, t: number, c: ContainerView): void => {
      const src = nodes[s] as NodeView
      const dst = nodes[t] as NodeView
      if ((mem[t] as number) + c.mem > dst.memAlloc || dst.containers.length + 1 > dst.maxContainers) return
      const ds = -shiftOn(src, c, policy)
      const dt = shiftOn(dst, c, policy)
      const a = load[s] as number
      const b = load[t] as number
      const score = outside(a, lo, hi) + outside(b, lo, hi) - outside(a + ds, lo, hi) - outside(b + dt, lo, hi)
      const gain = (a - mu) ** 2 + (b - mu) ** 2 - (a + ds - mu) ** 2 - (b + dt - mu) ** 2
      if (score <= EPSILON || gain <= 0) return
      if (best == null || score > best.score + EPSILON || (score > best.score - EPSILON && gain > best.gain)) best = { s, t, c, score, gain, ds, dt }
    }
    // the node furthest over that some move helps (a node whose movable containers cannot help is passed over)
    for (const s of over) {
      for (const c of (nodes[s] as NodeView).containers) {
        if (!c.running || !autoMovable(c, policy)) continue
        for (let t = 0; t < n; t++) if (t !== s && (load[t] as number) < mu) consider(s, t, c)
      }
      if (best != null) break
    }
    for (const t of best == null ? under : []) {
      for (let s = 0; s < n; s++) {
        if (s === t || (load[s] as number) <= mu) continue
        for (const c of (nodes[s] as NodeView).containers) if (c.running && autoMovable(c, policy)) consider(s, t, c)
      }
      if (best != null) break
    }
    if (best == null) break
    const { s, t, c, ds, dt } = best
    const src = nodes[s] as NodeView
    const dst = nodes[t] as NodeView
    src.containers = src.containers.filter(x => x !== c)
    dst.containers = [...dst.containers, c]
    refresh(src)
    refresh(dst)
    load[s] = (load[s] as number) + ds
    load[t] = (load[t] as number) + dt
    mem[s] = (mem[s] as number) - c.mem
    mem[t] = (mem[t] as number) + c.mem
  }
  const end = loads(nodes, policy)
  return { moves, stddevAfter: stddev(end), balanced: balanced(end, policy) }
}

export interface DrainFaults {
  /** Odds that a target refuses at once (half TARGET_BUSY, half INSUFFICIENT_MEMORY), beyond what admit() refuses. */
  refuse: number
  /** Odds that a migration fails before its commit (the container stays at the source). */
  failBeforeCommit: number
  /** Odds that a migration commits but its answer is lost (the drain hears a failure). */
  lostAfterCommit: number
  /** Odds that a committed container takes a while to run at the target (landed() false until then). */
  slowLanding: number
}

export const DEFAULT_FAULTS: DrainFaults = { refuse: 0.15, failBeforeCommit: 0.1, lostAfterCommit: 0.1, slowLanding: 0.25 }

export interface DrainResult {
  seed: number
  containers: number
  pinned: number
  report: DrainReport
  /** Containers of the drained node found nowhere (neither at the source nor at any target). */
  lost: number
  /** Containers of the drained node found on more than one node. */
  duplicated: number
  /** done was reported while a non-pinned container was still at the source or not yet running at its target. */
  falseDone: number
  /** Pinned containers reported as stayed. */
  pinnedStayed: number
  /** Containers of the node in neither moved nor stayed. */
  unaccounted: number
  /** Migrations drain() started, and the faults injected into them. */
  migrations: number
  faults: Record<string, number>
}

interface Placed {
  c: ContainerView
  node: string
  /** A rollback point left at the source after a commit (not listed, but a second migration of the name would copy it). */
  rollback: boolean
  /** When a committed container runs at its target. */
  runsAt: number
}

/**
 * One drain of a node of a small mesh through the real drain(), over a
 * DrainOps that injects faults: targets refusing, failures before the commit,
 * answers lost after it (the container did move), and slow landings. The
 * target's own refusals come from admit() with purpose 'drain'.
 */
export async function simulateDrain (seed: number, policy: RebalancePolicy, faults: DrainFaults = DEFAULT_FAULTS, nodesCount = 8): Promise<DrainResult> {
  const random = prng(seed ^ 0x27d4eb2d)
  const mesh = generateMesh(seed, nodesCount, policy, { hot: 0.5, hotFill: [0.5, 0.8], coldFill: [0.05, 0.4], stopped: 0.05 })
  const nodes = mesh.nodes
  const self = nodes[Math.floor(random() * nodes.length)] as NodeView
  self.eligible = false
  const placed: Placed[] = nodes.flatMap(n => n.containers.map(c => ({ c, node: n.id, rollback: false, runsAt: 0 })))
  const original = self.containers.map(c => c.name)
  const running = new Map(self.containers.map(c => [c.name, c.running]))
  const pinnedHere = new Set(self.containers.filter(c => c.labels['goto.pinned'] === 'true').map(c => c.name))
  const lastMoveAt = new Map<string, number>()
  let clock = 0
  const result: DrainResult = { seed, containers: original.length, pinned: pinnedHere.size, report: undefined as unknown as DrainReport, lost: 0, duplicated: 0, falseDone: 0, pinnedStayed: 0, unaccounted: 0, migrations: 0, faults: {} }
  const fault = (name: string): void => { result.faults[name] = (result.faults[name] ?? 0) + 1 }
  const sync = (): void => {
    for (const n of nodes) {
      n.containers = placed.filter(p => p.node === n.id && !p.rollback).map(p => ({ ...p.c, running: p.c.running && p.runsAt <= clock }))
      refresh(n)
    }
  }
  const ops: DrainOps = {
    containers: async () => { sync(); return self.containers.map(c => ({ ...c })) },
    nodes: () => { sync(); return nodes.map(n => ({ ...n, containers: n.containers.slice() })) },
    migrate: async (name, targetId): Promise<DrainOutcome> => {
      result.migrations++
      sync()
      clock += 1000
      const here = placed.find(p => p.node === self.id && p.c.name === name)
      if (here == null) return { ok: false, code: 'GOTO_ERR_UNKNOWN_CONTAINER', message: `${name} is not on this node` }
      const target = nodes.find(n => n.id === targetId) as NodeView
      const refused = admit(target, nodes, { name, mem: here.c.mem, cpu: here.c.cpu, bytes: here.c.bytes, purpose: 'drain' }, policy, clock, lastMoveAt.get(targetId))
      if (refused != null) return { ok: false, code: refused.code, message: refused.reason }
      if (random() < faults.refuse) {
        const code = random() < 0.5 ? 'TARGET_BUSY' : 'INSUFFICIENT_MEMORY'
        fault(`refused ${code}`)
        return { ok: false, code, message: 'injected refusal' }
      }
      clock += 10_000 + here.c.bytes / (50 * MB) * 1000
      if (random() < faults.failBeforeCommit) {
        fault('failed before commit')
        return { ok: false, code: 'GOTO_ERR_MIGRATION_FAILED', message: 'injected failure before the commit' }
      }
      // the commit: the source keeps a rollback point, the target has the container (running at once or a little later)
      here.rollback = true
      here.c = { ...here.c, running: false }
      const slow = random() < faults.slowLanding
      if (slow) fault('slow landing')
      placed.push({ c: { ...here.c, running: running.get(name) ?? true, arrivedAt: clock, cameFrom: self.id }, node: targetId, rollback: false, runsAt: slow ? clock + 5000 + random() * 60_000 : clock })
      lastMoveAt.set(targetId, clock)
      if (random() < faults.lostAfterCommit) {
        fault('answer lost after commit')
        return random() < 0.5 ? { ok: false, code: 'GOTO_ERR_PEER_UNREACHABLE', message: 'injected: the answer was lost' } : { ok: false, message: 'injected: stream reset' }
      }
      return { ok: true, id: `m${result.migrations}` }
    },
    landed: async (name, targetId, running) => {
      const at = placed.find(p => p.node === targetId && p.c.name === name && !p.rollback)
      const source = placed.find(p => p.node === self.id && p.c.name === name && !p.rollback)
      return at != null && (!running || (at.c.running && at.runsAt <= clock)) && (source == null || !source.c.running)
    },
    locate: (name, running) => {
      const at = placed.find(p => p.node !== self.id && p.c.name === name && !p.rollback)
      return at != null && (!running || (at.c.running && at.runsAt <= clock)) ? at.node : undefined
    },
    sleep: async (ms) => { clock += ms },
    now: () => clock
  }
  const report = await drain(self.id, ops, policy, { deadline: 4 * 3600_000, retryMs: 1000 })
  result.report = report
  for (const name of original) {
    const copies = placed.filter(p => p.c.name === name && !p.rollback)
    if (copies.length === 0) result.lost++
    if (copies.length > 1) result.duplicated++
    const pinned = pinnedHere.has(name)
    if (pinned && report.stayed.some(s => s.container === name)) result.pinnedStayed++
    if (!report.moved.some(m => m.container === name) && !report.stayed.some(s => s.container === name)) result.unaccounted++
    if (report.done && !pinned) {
      const at = copies.find(p => p.node !== self.id)
      if (copies.some(p => p.node === self.id) || at == null || ((running.get(name) ?? true) && at.runsAt > report.endedAt)) result.falseDone++
    }
  }
  return result
}
