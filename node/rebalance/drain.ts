/**
 * Draining a node: move every container but the pinned ones to peers with
 * room, one at a time, until none is left or the deadline passes; then say
 * what moved where and what stayed, and why.
 *
 * The loop never trusts its own bookkeeping over the engine: each pass lists
 * the node's containers afresh, so a migration whose answer was lost but
 * which did commit is not started twice (its container is gone from the
 * list), and one that failed before its commit is simply tried again. A
 * container counts as moved only once `landed()` sees it at the target and
 * no longer running here. The agent (service.ts) and the simulator of
 * `npm run bench:rebalance` drive this same code through `DrainOps`.
 */
import { placeFor, PINNED_LABEL, type ContainerView, type NodeView, type RebalancePolicy } from './decide.ts'

/** Refusals worth waiting out rather than ruling the target out. */
const TRANSIENT = new Set(['TARGET_BUSY', 'RATE_LIMITED', 'GOTO_ERR_TARGET_UNAVAILABLE', 'GOTO_ERR_PEER_UNREACHABLE', 'GOTO_ERR_MIGRATION_IN_PROGRESS'])

export interface DrainOutcome {
  ok: boolean
  /** The migration's id, when one was planned. */
  id?: string
  /** When not ok: the target's refusal code (`TARGET_BUSY`, `INSUFFICIENT_MEMORY`, …) or an error code (`GOTO_ERR_…`). */
  code?: string
  message?: string
}

export interface DrainOps {
  /** This node's containers as its engine lists them now (rollback points left out). */
  containers: () => Promise<ContainerView[]>
  /** The mesh as this node sees it now. */
  nodes: () => NodeView[]
  /** Move one container to a peer and wait for the end. */
  migrate: (container: string, target: string, signal: AbortSignal) => Promise<DrainOutcome>
  /** Whether the container now runs (or exists, if it was stopped) at the target and no longer runs here. */
  landed: (container: string, target: string, wasRunning: boolean, signal: AbortSignal) => Promise<boolean>
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
  now: () => number
}

export interface DrainReport {
  /** Every container left this node and runs at a peer. */
  done: boolean
  moved: Array<{ container: string, target: string, targetName: string, migration?: string }>
  stayed: Array<{ container: string, reason: string }>
  startedAt: number
  endedAt: number
}

export interface DrainOptions {
  /** Give up on what has not moved by then (ms since the epoch). */
  deadline: number
  /** Wait between passes that moved nothing. @default 1000 */
  retryMs?: number
  signal?: AbortSignal
  onProgress?: (report: DrainReport) => void
}

export async function drain (selfId: string, ops: DrainOps, policy: RebalancePolicy, options: DrainOptions): Promise<DrainReport> {
  const signal = options.signal ?? new AbortController().signal
  const report: DrainReport = { done: false, moved: [], stayed: [], startedAt: ops.now(), endedAt: 0 }
  /** container→target pairs ruled out, and failures of each pair so far. */
  const exclude = new Set<string>()
  const failures = new Map<string, number>()
  const stayed = new Map<string, string>()
  /** Migrations that ended well but whose container was not yet seen at its target. */
  const unconfirmed = new Map<string, { target: NodeView, migration?: string, running: boolean }>()
  /** The last failed try of each container: if it is gone from here after all, the move went through. */
  const failed = new Map<string, { target: NodeView, migration?: string, running: boolean }>()
  const finish = (): DrainReport => {
    report.stayed = [...stayed].map(([container, reason]) => ({ container, reason }))
    report.done = report.stayed.length === 0
    report.endedAt = ops.now()
    return report
  }
  const confirm = async (name: string): Promise<boolean> => {
    const u = unconfirmed.get(name)
    if (u == null || !await ops.landed(name, u.target.id, u.running, signal)) return false
    unconfirmed.delete(name)
    report.moved.push({ container: name, target: u.target.id, targetName: u.target.name, migration: u.migration })
    options.onProgress?.(finish())
    return true
  }
  const expired = (): boolean => signal.aborted || ops.now() >= options.deadline
  let here: ContainerView[] = []
  while (!expired()) {
    let progress = false
    for (const name of [...unconfirmed.keys()]) progress = await confirm(name) || progress
    here = await ops.containers()
    for (const [name, f] of failed) {
      if (here.some(c => c.name === name)) continue
      // a failure whose container left anyway (an answer lost after the commit): see it land
      failed.delete(name)
      unconfirmed.set(name, f)
      progress = await confirm(name) || progress
    }
    stayed.clear()
    const pending: ContainerView[] = []
    for (const c of here) {
      if (unconfirmed.has(c.name)) continue
      if (c.labels[PINNED_LABEL] === 'true') stayed.set(c.name, `pinned (${PINNED_LABEL}=true)`)
      else pending.push(c)
    }
    if (pending.length === 0 && unconfirmed.size === 0) break
    let again = false
    for (const c of pending) {
      if (expired()) break
      const place = placeFor(c, selfId, ops.nodes(), policy, exclude)
      if (!('target' in place)) {
        stayed.set(c.name, place.reason)
        again ||= place.wait
        continue
      }
      const target = place.target
      const outcome = await ops.migrate(c.name, target.id, signal)
      if (outcome.ok) {
        failed.delete(c.name)
        unconfirmed.set(c.name, { target, migration: outcome.id, running: c.running })
        progress = await confirm(c.name) || progress
        continue
      }
      // a refusal by code rules the target out for this container at once, any other failure after two
      failed.set(c.name, { target, migration: outcome.id, running: c.running })
      const pair = `${c.name}→${target.id}`
      const code = outcome.code ?? 'error'
      const count = (failures.get(pair) ?? 0) + 1
      failures.set(pair, count)
      if (!TRANSIENT.has(code) && (!code.startsWith('GOTO_ERR_') || count >= 2)) exclude.add(pair)
      stayed.set(c.name, `${target.name}: ${code}${outcome.message != null ? ` (${outcome.message})` : ''}`)
      again = true
    }
    // a move not yet seen at its target is worth another look
    again ||= unconfirmed.size > 0
    if (!progress && !again) break
    if (!progress) await ops.sleep(options.retryMs ?? 1000, signal).catch(() => {})
  }
  for (const [name, u] of unconfirmed) stayed.set(name, `migration ${u.migration ?? ''} ended, but ${name} was not seen at ${u.target.name} before the deadline`)
  // what the engine still lists stayed, whatever the last pass thought
  // (the engine may be going away with the agent: then the last list read stands)
  const left = new Set((await ops.containers().catch(() => here)).map(c => c.name))
  for (const name of left) if (!stayed.has(name) && !report.moved.some(m => m.container === name)) stayed.set(name, 'the deadline passed before it moved')
  for (const name of [...stayed.keys()]) if (!left.has(name) && !unconfirmed.has(name)) stayed.delete(name)
  return finish()
}
