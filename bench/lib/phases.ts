/**
 * The measurements, run the same way on either mesh:
 *
 *   form → settle → echo baseline → idle bytes → changes → join/leave/crash → soak
 *
 * Every latency is the time from the cause (change listeners called, start()
 * called, stop() called, SIGKILL sent), taken where it happens, to the moment
 * the *last* observing agent's view showed the effect, taken in that agent.
 * All processes read the same clock (see measure.ts `now`).
 */
import { inventoryKey } from './memory-runtime.ts'
import { now, pick, prng, readHostCpu, sleep, summarize, worstEld, loopbackTxBytes, type EldStats, type Summary } from './measure.ts'
import type { MeshDriver, Member } from './mesh.ts'

export interface MeshOptions {
  /** Agents in the mesh. */
  agents: number
  /** Changes to time. */
  runs: number
  /** Join/leave (and, for processes, join/crash) rounds. */
  events: number
  /** Length of the idle-bytes window. */
  idleMs: number
  /** Quiet time after the mesh forms, before measuring. */
  settleMs: number
  /** How long the mesh may take to form before the run is given up. */
  formTimeoutMs: number
  /** Echo round trips for the baseline. */
  echoCount: number
  /** Soak length; 0 skips it. Process mesh only. */
  soakMinutes: number
  /** Quiet after the soak's last stop, long enough for anything it caused to show (see timing.ts soakTailMs). */
  soakTailMs: number
  seed: number
  /** Progress lines (stderr). */
  say: (line: string) => void
}

export const CHANGE_TIMEOUT_MS = 5_000
export const JOIN_TIMEOUT_MS = 15_000
export const LEAVE_TIMEOUT_MS = 10_000
export const CRASH_TIMEOUT_MS = 20_000
export const SOAK_STOP_MS = 2_000

export interface ChangeRun {
  run: number
  node: number
  op: 'add' | 'remove'
  container: string
  /** Cause to the last observer, ms; null when some observer never saw it. */
  reachAllMs: number | null
  /** Cause to each observer that saw it, ms. */
  perObserverMs: number[]
  missing: number[]
}

export interface JoinSample { index: number, seenByAllMs: number | null, joinerSeesAllMs: number | null, missing: number[] }
export interface LeaveSample { index: number, seenAsLeftMs: number | null, stopMs: number, missing: number[], falseFailures: Array<{ observer: number, to: string, afterMs: number }> }
export interface CrashSample { index: number, suspectAllMs: number | null, goneAllMs: number | null, missing: number[], backToAlive: number }

export interface FalseFailure { observer: number, peer: number, from: string, to: string, atMs: number }

/** The mesh never formed: every figure after it would be meaningless. */
export class MeshFormationError extends Error {
  readonly detail: { agents: number, started: number, seeingAll: number, afterMs: number, eld?: EldStats, cpuPct: number }
  constructor (message: string, detail: MeshFormationError['detail']) {
    super(message)
    this.name = 'MeshFormationError'
    this.detail = detail
  }
}

export interface MeshResult {
  mode: MeshDriver['mode']
  agents: number
  /** Changes the bench made to the agents' environment to run this mesh (see mesh.ts). */
  workarounds: string[]
  formationMs: number
  echo: Summary & { samplesMs: number[] }
  idle: {
    windowMs: number
    /** Bytes written per node per second (wchar, see measure.ts). */
    sentPerNodeBps: number
    receivedPerNodeBps: number
    /** lo tx bytes / agents / s: TCP/IP headers and any other loopback traffic included. */
    loopbackPerNodeBps: number | null
    /** CPU used per agent over the window, % of one core. */
    cpuPerAgentPct: number
    /** How busy the whole machine was over the window (% of all its CPUs), and the agents' part of that. */
    hostBusyPct: number
    agentsPct: number
    eld?: EldStats
  }
  change: { runs: ChangeRun[], reachAll: Summary, perObserver: Summary, timeouts: number, eld?: EldStats }
  join: { samples: JoinSample[], seenByAll: Summary, joinerSeesAll: Summary, eld?: EldStats }
  leave: { samples: LeaveSample[], seenAsLeft: Summary, falseFailures: number, eld?: EldStats }
  crash: { samples: CrashSample[], suspectAll: Summary, goneAll: Summary, backToAlive: number, eld?: EldStats } | null
  soak: { minutes: number, target: number, stops: number, nonAlive: Array<{ observer: number, from: string, to: string, atMs: number }>, eld?: EldStats } | null
  /** suspect/gone for an agent that was running (outside the soak target's stops). */
  falseFailures: FalseFailure[]
  /** Unhandled rejections and unexpected exits of agents, grouped. */
  faults: Array<{ what: string, count: number, agents: number[], firstAtMs: number, detail: string }>
  warnings: Array<{ message: string, count: number, example: string }>
}

const round = (ms: number): number => Math.round(ms * 100) / 100

export async function runMesh (driver: MeshDriver, opts: MeshOptions): Promise<MeshResult> {
  const { recorder } = driver
  const say = opts.say
  const random = prng(opts.seed)
  const n = opts.agents
  /** Who each peer id is, and from when it was meant to be down (leave or kill). */
  const known = new Map<string, { index: number, downAt?: number }>()
  const byIndex = new Map<number, string>()
  const remember = (m: Member): void => {
    known.set(m.peerId, { index: m.index })
    byIndex.set(m.index, m.peerId)
  }
  const markDown = (index: number, t: number): void => {
    const info = known.get(byIndex.get(index) ?? '')
    if (info != null) info.downAt = t
  }
  const live = (): Member[] => [...driver.members.values()]
  /** Still running: an agent whose process died is no longer waited for (its death is a fault, reported). */
  const up = (index: number): boolean => driver.members.has(index)
  const others = (index: number): number[] => live().map(m => m.index).filter(i => i !== index)
  /** The running original agents (0..n-1), by index. */
  const originals = (): number[] => live().map(m => m.index).filter(i => i < n).sort((a, b) => a - b)
  const addrOf = (index: number): string => driver.members.get(index)!.addr

  // --- form: agent 0 first (it makes the swarm key), then all others bootstrap from it
  say(`${driver.mode}: starting ${n} agents`)
  const formStart = { t: now(), cpu: driver.cpu() }
  const first = await driver.spawn(0, [])
  remember(first.member)
  const rest = await Promise.allSettled(Array.from({ length: n - 1 }, async (_, k) => await driver.spawn(k + 1, [first.member.addr])))
  for (const r of rest) {
    if (r.status === 'fulfilled') remember(r.value.member)
    else say(`${driver.mode}: an agent did not start: ${String(r.reason).split('\n')[0]}`)
  }
  if (live().length < Math.max(2, n / 2)) throw new Error(`${driver.mode}: only ${live().length} of ${n} agents started`)
  // formed: every agent holds every other as alive; since the last of them turned alive
  const seesAll = (o: number): number | undefined => {
    let latest = 0
    for (const p of live()) {
      if (p.index === o) continue
      const status = recorder.currentStatus(o, p.peerId)
      if (status?.to !== 'alive') return undefined
      latest = Math.max(latest, status.t)
    }
    return latest
  }
  await driver.eldReset()
  const progress = setInterval(() => {
    const done = live().filter(m => seesAll(m.index) != null).length
    say(`${driver.mode}: forming, ${done} of ${live().length} agents see all others alive after ${((now() - first.t0) / 1000).toFixed(0)} s`)
  }, 10_000)
  const formed = await recorder.whenAll(live().map(m => m.index), seesAll, opts.formTimeoutMs, up)
  clearInterval(progress)
  if (!('t' in formed)) {
    const seeingAll = live().filter(m => seesAll(m.index) != null).length
    throw new MeshFormationError(`the mesh of ${n} did not form in ${opts.formTimeoutMs / 1000} s: ${seeingAll} of ${live().length} agents saw all others alive`,
      { agents: n, started: live().length, seeingAll, afterMs: round(now() - first.t0), eld: await driver.eld(), cpuPct: Math.round((driver.cpu() - formStart.cpu) / ((now() - formStart.t) / 1000) * 100) })
  }
  const formationMs = formed.t - first.t0
  say(`${driver.mode}: all ${live().length} agents see each other alive, ${(formationMs / 1000).toFixed(1)} s after the first start; settling ${opts.settleMs / 1000} s`)
  await sleep(opts.settleMs)

  // --- baseline: loopback TCP echo between two agents (0 and 1 normally), on their event loops
  const [echoServer, echoClient] = originals()
  const echoSamples = await driver.echo(echoServer!, echoClient!, opts.echoCount)
  const echo = { ...summarize(echoSamples), samplesMs: echoSamples.map(round) }
  say(`${driver.mode}: echo RTT p50 ${echo.p50?.toFixed(2)} ms`)

  // --- idle bytes: nothing but heartbeats, gossipsub upkeep and connection pings
  await driver.eldReset()
  const io0 = driver.io()
  const cpu0 = driver.cpu()
  const host0 = readHostCpu()
  const lo0 = loopbackTxBytes()
  const idle0 = now()
  await sleep(opts.idleMs)
  const io1 = driver.io()
  const cpu1 = driver.cpu()
  const host1 = readHostCpu()
  const lo1 = loopbackTxBytes()
  const idleS = (now() - idle0) / 1000
  const idleAgents = live().length
  const idle = {
    windowMs: Math.round(idleS * 1000),
    sentPerNodeBps: Math.round((io1.wchar - io0.wchar) / idleAgents / idleS),
    receivedPerNodeBps: Math.round((io1.rchar - io0.rchar) / idleAgents / idleS),
    loopbackPerNodeBps: lo0 != null && lo1 != null ? Math.round((lo1 - lo0) / idleAgents / idleS) : null,
    cpuPerAgentPct: Math.round((cpu1 - cpu0) / idleAgents / idleS * 1000) / 10,
    hostBusyPct: Math.round((host1.busy - host0.busy) / Math.max(1, host1.total - host0.total) * 100),
    agentsPct: Math.round((cpu1 - cpu0) * 100 / Math.max(1, host1.total - host0.total) * 100),
    eld: await driver.eld()
  }
  say(`${driver.mode}: idle ${idle.sentPerNodeBps} B/s sent and ${idle.cpuPerAgentPct} % CPU per agent`)

  // --- changes: a seeded choice of agent and of add/remove, one at a time
  const inventory = new Map<number, string[]>()
  const runs: ChangeRun[] = []
  await driver.eldReset()
  for (let run = 0; run < opts.runs; run++) {
    const candidates = originals()
    const node = candidates[pick(random, 0, candidates.length)]!
    const held = inventory.get(node) ?? []
    // keep inventories small (0–3) but mix adds and removes
    const op = held.length === 0 ? 'add' : held.length >= 3 ? 'remove' : random() < 0.5 ? 'add' : 'remove'
    const container = op === 'add' ? `bench-c${run}` : held[pick(random, 0, held.length)]!
    const next = op === 'add' ? [...held, container] : held.filter(c => c !== container)
    inventory.set(node, next)
    const key = inventoryKey(next)
    const peer = byIndex.get(node)!
    const observers = others(node)
    const after = now()
    const t0 = await driver.change(node, op, container)
    const seen = await recorder.whenAll(observers, o => recorder.firstState(o, peer, key, after), CHANGE_TIMEOUT_MS, up)
    const perObserverMs = observers.flatMap(o => {
      const t = recorder.firstState(o, peer, key, after)
      return t == null ? [] : [round(t - t0)]
    })
    runs.push({ run, node, op, container, reachAllMs: 't' in seen ? round(seen.t - t0) : null, perObserverMs, missing: 't' in seen ? [] : seen.missing })
    await sleep(pick(random, 100, 400))
  }
  const reached = runs.flatMap(r => r.reachAllMs == null ? [] : [r.reachAllMs])
  const change = {
    runs,
    reachAll: summarize(reached),
    perObserver: summarize(runs.flatMap(r => r.perObserverMs)),
    timeouts: runs.filter(r => r.reachAllMs == null).length,
    eld: await driver.eld()
  }
  say(`${driver.mode}: ${opts.runs} changes, p99 to all ${change.reachAll.p99?.toFixed(1)} ms, ${change.timeouts} timed out`)

  // --- join, graceful leave, and (processes) crash
  const joins: JoinSample[] = []
  const leaves: LeaveSample[] = []
  const crashes: CrashSample[] = []
  const eldOf: Record<'join' | 'leave' | 'crash', EldStats[]> = { join: [], leave: [], crash: [] }
  let nextIndex = n

  const join = async (): Promise<number | undefined> => {
    const index = nextIndex++
    const observers = live().map(m => m.index)
    const bootstrap = [addrOf(originals()[0]!)]
    await driver.eldReset()
    const after = now()
    let spawned
    try {
      spawned = await driver.spawn(index, bootstrap)
    } catch (err) {
      say(`${driver.mode}: agent ${index} did not start: ${String(err).split('\n')[0]}`)
      joins.push({ index, seenByAllMs: null, joinerSeesAllMs: null, missing: observers })
      return undefined
    }
    const { member, t0 } = spawned
    remember(member)
    const seen = await recorder.whenAll(observers, o => recorder.firstStatus(o, member.peerId, 'alive', after), JOIN_TIMEOUT_MS, up)
    const sees = await recorder.whenAll([index], j => {
      const times = observers.filter(up).map(o => recorder.firstStatus(j, byIndex.get(o)!, 'alive', after))
      return times.every(t => t != null) ? Math.max(...times as number[]) : undefined
    }, JOIN_TIMEOUT_MS, up)
    joins.push({
      index,
      seenByAllMs: 't' in seen ? round(seen.t - t0) : null,
      joinerSeesAllMs: 't' in sees ? round(sees.t - t0) : null,
      missing: 't' in seen ? [] : seen.missing
    })
    const eld = await driver.eld()
    if (eld != null) eldOf.join.push(eld)
    return index
  }

  for (let k = 0; k < opts.events; k++) {
    say(`${driver.mode}: join/leave${driver.crash != null ? '/crash' : ''} round ${k + 1} of ${opts.events}`)
    // join A, then A leaves gracefully
    const a = await join()
    await sleep(1000)
    if (a != null && up(a)) {
      const peer = byIndex.get(a)!
      const observers = others(a)
      await driver.eldReset()
      const after = now()
      const leaving = driver.leave(a)
      const seen = await recorder.whenAll(observers, o => recorder.firstStatus(o, peer, 'left', after), LEAVE_TIMEOUT_MS, up)
      const { t0, t1 } = await leaving
      markDown(a, t0)
      await sleep(1000) // a late "suspect" (connection closed before the leave was taken) shows up here
      const falseFailures = recorder.statusesOf(peer, after)
        .filter(e => observers.includes(e.observer) && (e.to === 'suspect' || e.to === 'gone'))
        .map(e => ({ observer: e.observer, to: e.to, afterMs: round(e.t - t0) }))
      leaves.push({ index: a, seenAsLeftMs: 't' in seen ? round(seen.t - t0) : null, stopMs: round(t1 - t0), missing: 't' in seen ? [] : seen.missing, falseFailures })
      const eld = await driver.eld()
      if (eld != null) eldOf.leave.push(eld)
    }
    if (driver.crash == null) continue
    // join B, then B is killed
    const b = await join()
    await sleep(1000)
    if (b != null && up(b)) {
      const peer = byIndex.get(b)!
      const observers = others(b)
      await driver.eldReset()
      const t0 = await driver.crash(b)
      markDown(b, t0)
      const suspect = await recorder.whenAll(observers, o => recorder.firstStatus(o, peer, 'suspect', t0), CRASH_TIMEOUT_MS, up)
      const gone = await recorder.whenAll(observers, o => recorder.firstStatus(o, peer, 'gone', t0), CRASH_TIMEOUT_MS, up)
      crashes.push({
        index: b,
        suspectAllMs: 't' in suspect ? round(suspect.t - t0) : null,
        goneAllMs: 't' in gone ? round(gone.t - t0) : null,
        missing: 't' in gone ? [] : gone.missing,
        backToAlive: recorder.statusesOf(peer, t0).filter(e => e.to === 'alive' && observers.includes(e.observer)).length
      })
      const eld = await driver.eld()
      if (eld != null) eldOf.crash.push(eld)
    }
    await sleep(1000)
  }
  const okMs = (values: Array<number | null>): number[] => values.flatMap(v => v == null ? [] : [v])

  // --- soak: one agent stopped (SIGSTOP) for 2 s at a time; nobody may think it failed
  let soak: MeshResult['soak'] = null
  let soakWindow: { peer: string, from: number, to: number } | undefined
  if (opts.soakMinutes > 0 && driver.pause != null) {
    const target = originals().at(-1)!
    const peer = byIndex.get(target)!
    const observers = others(target)
    say(`${driver.mode}: soak, ${opts.soakMinutes} min, agent ${target} stopped ${SOAK_STOP_MS / 1000} s at a time`)
    await driver.eldReset()
    const from = now()
    const deadline = from + opts.soakMinutes * 60_000
    let stops = 0
    while (now() < deadline && up(target)) {
      driver.pause(target, true)
      stops++
      await sleep(SOAK_STOP_MS)
      driver.pause(target, false)
      await sleep(pick(random, 2000, 5000))
    }
    await sleep(opts.soakTailMs) // anything the last stop caused shows up by now (suspectAfter or a ping timeout, then goneAfter)
    soakWindow = { peer, from, to: now() }
    soak = {
      minutes: opts.soakMinutes,
      target,
      stops,
      nonAlive: recorder.statusesOf(peer, from)
        .filter(e => observers.includes(e.observer) && e.to !== 'alive')
        .map(e => ({ observer: e.observer, from: e.from, to: e.to, atMs: round(e.t - from) })),
      // the stopped agent's own loop is stopped SOAK_STOP_MS at a time by design
      eld: await driver.eld([target])
    }
  }

  // an agent process that died on its own is down from then on
  for (const f of recorder.faults) if (f.what.startsWith('agent process exited')) markDown(f.observer, f.t)

  // --- false failures over the whole run: suspect/gone about an agent that was up, seen by one that was up
  const falseFailures: FalseFailure[] = []
  for (const e of recorder.statuses) {
    if (e.to !== 'suspect' && e.to !== 'gone') continue
    const peer = known.get(e.peer)
    const observer = known.get(byIndex.get(e.observer) ?? '')
    if (peer == null || (peer.downAt != null && e.t >= peer.downAt)) continue
    if (observer?.downAt != null && e.t >= observer.downAt) continue
    if (soakWindow != null && e.peer === soakWindow.peer && e.t >= soakWindow.from && e.t <= soakWindow.to) continue
    falseFailures.push({ observer: e.observer, peer: peer.index, from: e.from, to: e.to, atMs: round(e.t - first.t0) })
  }

  // --- what the agents logged at warn or above, grouped
  const warnings = new Map<string, { message: string, count: number, example: string }>()
  for (const log of recorder.logs) {
    const m = /^\S+ (\w+) bench:h\d+(\S*) (.*?)(?: \w+=.*)?$/.exec(log.line)
    const message = m != null ? `${m[1]} ${m[3]}` : log.line
    const entry = warnings.get(message) ?? { message, count: 0, example: log.line }
    entry.count++
    warnings.set(message, entry)
  }

  return {
    mode: driver.mode,
    agents: n,
    workarounds: driver.workarounds,
    formationMs: round(formationMs),
    echo,
    idle,
    change,
    join: {
      samples: joins,
      seenByAll: summarize(okMs(joins.map(j => j.seenByAllMs))),
      joinerSeesAll: summarize(okMs(joins.map(j => j.joinerSeesAllMs))),
      eld: worstEld(eldOf.join)
    },
    leave: {
      samples: leaves,
      seenAsLeft: summarize(okMs(leaves.map(l => l.seenAsLeftMs))),
      falseFailures: leaves.reduce((sum, l) => sum + l.falseFailures.length, 0),
      eld: worstEld(eldOf.leave)
    },
    crash: driver.crash == null
      ? null
      : {
          samples: crashes,
          suspectAll: summarize(okMs(crashes.map(c => c.suspectAllMs))),
          goneAll: summarize(okMs(crashes.map(c => c.goneAllMs))),
          backToAlive: crashes.reduce((sum, c) => sum + c.backToAlive, 0),
          eld: worstEld(eldOf.crash)
        },
    soak,
    falseFailures,
    faults: groupFaults(driver, first.t0),
    warnings: [...warnings.values()].sort((a, b) => b.count - a.count)
  }
}

export type Fault = MeshResult['faults'][number]

/** The faults of a run, grouped by kind and first line; times from `t0`. */
function groupFaults (driver: MeshDriver, t0: number): Fault[] {
  const faults = new Map<string, Fault>()
  for (const f of driver.recorder.faults) {
    const key = `${f.what}|${f.detail.split('\n')[0]}`
    const entry = faults.get(key) ?? { what: f.what, count: 0, agents: [], firstAtMs: round(f.t - t0), detail: f.detail }
    entry.count++
    if (!entry.agents.includes(f.observer)) entry.agents.push(f.observer)
    faults.set(key, entry)
  }
  return [...faults.values()].sort((a, b) => b.count - a.count)
}

/** A mesh whose run could not finish: why, and what was seen until then. */
export interface MeshFailure {
  mode: MeshDriver['mode']
  agents: number
  failed: true
  error: string
  formation?: MeshFormationError['detail']
  workarounds: string[]
  faults: Fault[]
}

/** runMesh, then the agents stopped whatever happened; a run that throws becomes a MeshFailure. */
export async function measureMesh (driver: MeshDriver, opts: MeshOptions): Promise<MeshResult | MeshFailure> {
  const t0 = now()
  try {
    return await runMesh(driver, opts)
  } catch (err) {
    opts.say(`${driver.mode}: run failed: ${err instanceof Error ? err.message : String(err)}`)
    return {
      mode: driver.mode,
      agents: opts.agents,
      failed: true,
      error: err instanceof Error ? err.message : String(err),
      formation: err instanceof MeshFormationError ? err.detail : undefined,
      workarounds: driver.workarounds,
      faults: groupFaults(driver, t0)
    }
  } finally {
    opts.say(`${driver.mode}: stopping the agents`)
    await driver.close()
  }
}
