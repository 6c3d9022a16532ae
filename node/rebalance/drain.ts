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
  /** The peer whose gossiped inventory shows the container running (or present, if it was stopped), if one does. */
  locate: (container: string, wasRunning: boolean) => string | undefined
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
  now: () => number
}

export interface DrainReport {
  /** Every container left this node and runs at a peer (only ever true in the final report). */
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
  /** How long a container gone from here after a failed move may take to show up at a peer. @default 30000 */
  graceMs?: number
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
  /** The last failed try of each container, and when it was first missed here after it. */
  const failed = new Map<string, { migration?: string, running: boolean, missingSince?: number }>()
  /** Containers that left this node after a failed try and that no peer shows: not ours to claim. */
  const unaccounted = new Map<string, string>()
  const finish = (final = false): DrainReport => {
    report.stayed = [...stayed, ...unaccounted].map(([container, reason]) => ({ container, reason }))
    report.done = final && report.stayed.length === 0
    report.endedAt = ops.now()
    return report
  }
  const claim = (name: string, peer: NodeView | undefined, peerId: string, migration?: string): void => {
    report.moved.push({ container: name, target: peerId, targetName: peer?.name ?? peerId, migration })
    options.onProgress?.(finish())
  }
  const confirm = async (name: string): Promise<boolean> => {
    const u = unconfirmed.get(name)
    if (u == null || !await ops.landed(name, u.target.id, u.running, signal)) return false
    unconfirmed.delete(name)
    claim(name, u.target, u.target.id, u.migration)
    return true
  }
  /**
   * A container gone from here after a failed try (an answer lost after its
   * commit, or someone else moved or removed it): claimed where a peer shows
   * it; after `graceMs` with no peer showing it, reported as unaccounted.
   */
  const settleFailed = (listed: ContainerView[], graceMs: number): boolean => {
    let progress = false
    for (const [name, f] of failed) {
      if (listed.some(c => c.name === name)) { f.missingSince = undefined; continue }
      const at = ops.locate(name, f.running)
      if (at != null) {
        failed.delete(name)
        claim(name, ops.nodes().find(n => n.id === at), at, f.migration)
        progress = true
      } else if (ops.locate(name, false) != null) {
        // at a peer, not started yet: wait for it as for any slow start
        f.missingSince = ops.now()
      } else if (ops.now() - (f.missingSince ??= ops.now()) >= graceMs) {
        failed.delete(name)
        unaccounted.set(name, 'left this node after a failed move, and no peer shows it')
      }
    }
    return progress
  }
  const expired = (): boolean => signal.aborted || ops.now() >= options.deadline
  const graceMs = options.graceMs ?? 30_000
  let here: ContainerView[] = []
  while (!expired()) {
    let progress = false
    for (const name of [...unconfirmed.keys()]) progress = await confirm(name) || progress
    try {
      here = await ops.containers()
    } catch {
      // the engine did not answer: a pass with no progress, tried again
      await ops.sleep(options.retryMs ?? 1000, signal).catch(() => {})
      continue
    }
    progress = settleFailed(here, graceMs) || progress
    stayed.clear()
    const pending: ContainerView[] = []
    for (const c of here) {
      if (unconfirmed.has(c.name)) continue
      if (c.labels[PINNED_LABEL] === 'true') stayed.set(c.name, `pinned (${PINNED_LABEL}=true)`)
      else pending.push(c)
    }
    if (pending.length === 0 && unconfirmed.size === 0 && failed.size === 0) break
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
      failed.set(c.name, { migration: outcome.id, running: c.running })
      // a refusal by code (but a rate limit) rules the target out for this container at once; a busy
      // target is waited for; any other failure (an unreachable peer too) rules it out after two
      const pair = `${c.name}→${target.id}`
      const code = outcome.code ?? 'error'
      const count = (failures.get(pair) ?? 0) + 1
      failures.set(pair, count)
      const refused = !code.startsWith('GOTO_ERR_') && code !== 'RATE_LIMITED'
      if (code !== 'TARGET_BUSY' && (refused || count >= 2)) exclude.add(pair)
      stayed.set(c.name, `${target.name}: ${code}${outcome.message != null ? ` (${outcome.message})` : ''}`)
      again = true
    }
    // a move not yet seen at its target, or a failed one whose container is missing, is worth another look
    again ||= unconfirmed.size > 0 || [...failed.values()].some(f => f.missingSince != null)
    if (!progress && !again) break
    if (!progress) await ops.sleep(options.retryMs ?? 1000, signal).catch(() => {})
  }
  for (const [name, u] of unconfirmed) stayed.set(name, `migration ${u.migration ?? ''} ended, but ${name} was not seen at ${u.target.name} before the deadline`)
  // the last word comes from the engine: what it still lists stayed (if it does not answer, the last list stands)
  const last = await ops.containers().catch(() => here)
  settleFailed(last, 0)
  const left = new Set(last.map(c => c.name))
  // gone from here after a failed try, at a peer but not running there by the deadline: neither moved nor here
  for (const name of failed.keys()) if (!left.has(name)) unaccounted.set(name, 'left this node after a failed move; a peer holds it but it was not running there before the deadline')
  for (const name of left) if (!stayed.has(name) && !report.moved.some(m => m.container === name)) stayed.set(name, 'the deadline passed before it moved')
  for (const name of [...stayed.keys()]) if (!left.has(name) && !unconfirmed.has(name)) stayed.delete(name)
  return finish(true)
}
