/**
 * The two meshes the bench drives, behind one interface so every phase is
 * written once:
 *
 * - `processMesh`: each agent in its own Node process (a forked worker.ts),
 *   as on real hosts; a crash is SIGKILL, a hang is SIGSTOP.
 * - `inProcessMesh`: every agent in this process, sharing one event loop.
 *
 * Every agent listens on its own loopback address, 127.A.B.(i+1): gossipsub
 * and libp2p limit per IP, and a real host has an IP of its own.
 *
 * What the agents see comes back as timestamped ViewEvents into a Recorder,
 * which the phases query ("when had every observer seen X?").
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { initDataDir } from '../../node/data-dir.ts'
import type { GossipTiming } from '../../node/config.ts'
import { measureEcho, startEchoServer } from './echo.ts'
import { createHost, describeReason, type BenchHost, type ViewEvent } from './host.ts'
import { eldMonitor, now, readCpuSeconds, readIo, worstEld, type EldStats, type IoCounters } from './measure.ts'
import type { WorkerMessage, WorkerRequest, WorkerResults } from './protocol.ts'

type StatusEvent = Extract<ViewEvent, { kind: 'status' }>
type StateEvent = Extract<ViewEvent, { kind: 'state' }>

/** Every view event of a run, indexed by observer and peer. */
export class Recorder {
  readonly statuses: StatusEvent[] = []
  readonly logs: Array<Extract<ViewEvent, { kind: 'log' }>> = []
  readonly faults: Array<Extract<ViewEvent, { kind: 'fault' }>> = []
  readonly #byPair = new Map<string, ViewEvent[]>()
  readonly #waiters = new Set<() => void>()

  push (event: ViewEvent): void {
    if (event.kind === 'log') {
      this.logs.push(event)
      return
    }
    if (event.kind === 'fault') {
      this.faults.push(event)
      for (const waiter of this.#waiters) waiter()
      return
    }
    if (event.kind === 'status') this.statuses.push(event)
    const key = `${event.observer}|${event.peer}`
    let list = this.#byPair.get(key)
    if (list == null) this.#byPair.set(key, list = [])
    list.push(event)
    for (const waiter of this.#waiters) waiter()
  }

  /** When `observer` first saw `peer` become `to`, at or after `after`. */
  firstStatus (observer: number, peer: string, to: string, after: number): number | undefined {
    for (const e of this.#byPair.get(`${observer}|${peer}`) ?? []) {
      if (e.kind === 'status' && e.to === to && e.t >= after) return e.t
    }
    return undefined
  }

  /** When `observer` first held a state of `peer` with inventory `key`, at or after `after`. */
  firstState (observer: number, peer: string, key: string, after: number): number | undefined {
    for (const e of this.#byPair.get(`${observer}|${peer}`) ?? []) {
      if (e.kind === 'state' && e.key === key && e.t >= after) return e.t
    }
    return undefined
  }

  /** Status events about `peer` seen at or after `after`. */
  statusesOf (peer: string, after: number): StatusEvent[] {
    return this.statuses.filter(e => e.peer === peer && e.t >= after)
  }

  /** The newest status `observer` holds for `peer`, and since when. */
  currentStatus (observer: number, peer: string): { to: string, t: number } | undefined {
    const list = this.#byPair.get(`${observer}|${peer}`) ?? []
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!
      if (e.kind === 'status') return { to: e.to, t: e.t }
    }
    return undefined
  }

  /**
   * For each observer, `time(observer)`; once all are defined, the latest of
   * them. Checked after every event until `timeoutMs`; on timeout, the
   * observers still missing. Observers for which `alive` turns false (an
   * agent that died) are no longer waited for.
   */
  async whenAll (observers: readonly number[], time: (observer: number) => number | undefined, timeoutMs: number, alive: (observer: number) => boolean = () => true): Promise<{ t: number, times: number[] } | { missing: number[] }> {
    const check = (): { t: number, times: number[] } | undefined => {
      const times: number[] = []
      for (const o of observers) {
        if (!alive(o)) continue
        const t = time(o)
        if (t == null) return undefined
        times.push(t)
      }
      return times.length === 0 ? undefined : { t: Math.max(...times), times }
    }
    const done = check()
    if (done != null) return done
    return await new Promise(resolve => {
      const waiter = (): void => {
        const result = check()
        if (result == null) return
        finish()
        resolve(result)
      }
      const timer = setTimeout(() => {
        finish()
        resolve({ missing: observers.filter(o => alive(o) && time(o) == null) })
      }, timeoutMs)
      const finish = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(waiter)
      }
      this.#waiters.add(waiter)
    })
  }
}

export interface Member {
  index: number
  ip: string
  peerId: string
  /** Mesh address with /p2p/. */
  addr: string
}

export interface MeshDriver {
  readonly mode: 'process' | 'in-process'
  readonly recorder: Recorder
  /** What the bench changed about the agents' environment to run this mesh at all, for the report. */
  readonly workarounds: string[]
  /** The live agents by index. */
  readonly members: Map<number, Member>
  /** Create agent `index` and start it; t0 is when its start() was called. */
  spawn(index: number, bootstrap: string[]): Promise<{ member: Member, t0: number }>
  /** Add or remove a container on agent `index`; resolves to when its change listeners ran. */
  change(index: number, op: 'add' | 'remove', name: string): Promise<number>
  /** Graceful leave of agent `index`: when stop() was called and when it returned. */
  leave(index: number): Promise<{ t0: number, t1: number }>
  /** SIGKILL agent `index`; resolves to the time of the kill. Process mesh only. */
  crash?: (index: number) => Promise<number>
  /** SIGSTOP (true) or SIGCONT (false) agent `index`. Process mesh only. */
  pause?: (index: number, stopped: boolean) => void
  /** Loopback TCP echo round trips from agent `client` to agent `server`, ms. */
  echo(server: number, client: number, count: number): Promise<number[]>
  /** Start a new event-loop delay window on every live agent. */
  eldReset(): Promise<void>
  /** The worst event-loop delay of the window over live agents (except `exclude`). */
  eld(exclude?: number[]): Promise<EldStats | undefined>
  /** I/O counters of all live agents together. */
  io(): IoCounters
  /** CPU seconds used so far by the processes of all live agents together. */
  cpu(): number
  close(): Promise<void>
}

/** The loopback address of agent `index` in mesh `b` (1: process, 2: in-process). */
export function agentIp (b: number, index: number): string {
  // a /16 of 127/8 per bench process, so two benches on one host keep apart
  return `127.${100 + (process.pid % 100)}.${b}.${index + 1}`
}

/**
 * Data dirs of one mesh under a temporary root. The first one made generates
 * the mesh's swarm key and every later one copies it, so the first must be
 * made (agent 0 spawned) before the others.
 */
function dataDirs (label: string): { root: string, make: (index: number) => Promise<string> } {
  const root = mkdtempSync(join(tmpdir(), `goto-bench-${label}-`))
  let swarmKeyFile: string | undefined
  const make = async (index: number): Promise<string> => {
    const result = await initDataDir(join(root, `a${index}`), swarmKeyFile != null ? { swarmKeyFile } : {})
    swarmKeyFile ??= result.swarmKeyPath
    return result.dataDir
  }
  return { root, make }
}

// Everything a bench run forks or creates, undone however the run ends.
const children = new Set<ChildProcess>()
const roots = new Set<string>()
let hooked = false

function hookExit (): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const child of children) {
      try { child.kill('SIGKILL') } catch {}
    }
    for (const root of roots) {
      try { rmSync(root, { recursive: true, force: true }) } catch {}
    }
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the agents\n`)
      process.exit(130)
    })
  }
}

/** Fork a Node process that is killed (SIGKILL) when the bench exits, however it exits. */
export function forkTracked (path: string, options: ForkOptions): ChildProcess {
  hookExit()
  const child = fork(path, [], options)
  children.add(child)
  child.once('exit', () => { children.delete(child) })
  return child
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))

interface Worker {
  proc: ChildProcess
  call<C extends WorkerRequest['cmd']>(cmd: C, args?: Omit<Extract<WorkerRequest, { cmd: C }>, 'id' | 'cmd'>): Promise<WorkerResults[C]>
  /** The bench is about to end this worker (leave, crash, close): its exit is no fault. */
  expectExit(): void
}

/**
 * Fork a worker for agent `index`. Its stderr is kept (the last few KB), not
 * shown; an exit the bench did not cause becomes a fault event with that tail,
 * and `onLost` is told.
 */
function forkWorker (index: number, recorder: Recorder, onLost: () => void): Worker {
  const proc = forkTracked(WORKER, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  proc.stderr?.setEncoding('utf8')
  proc.stderr?.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4096) })
  proc.on('error', () => {}) // a send on a closed channel; call() rejects on its own
  let expected = false
  const pending = new Map<number, { resolve: (value: any) => void, reject: (err: Error) => void }>()
  let nextId = 0
  proc.on('message', (msg: WorkerMessage) => {
    if ('event' in msg) {
      recorder.push(msg.event)
      return
    }
    const waiter = pending.get(msg.id)
    if (waiter == null) return
    pending.delete(msg.id)
    if (msg.ok) waiter.resolve(msg.result)
    else waiter.reject(new Error(`agent h${index} (pid ${proc.pid}): ${msg.error}`))
  })
  proc.on('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`agent h${index} (pid ${proc.pid}) exited (${signal ?? code})`))
    pending.clear()
    if (!expected) {
      recorder.push({ kind: 'fault', observer: index, what: `agent process exited unexpectedly (${signal ?? `code ${code}`})`, detail: stderr.trim(), t: now() })
      onLost()
    }
  })
  return {
    proc,
    async call (cmd, args) {
      const id = nextId++
      return await new Promise((resolve, reject) => {
        if (!proc.connected) {
          reject(new Error(`agent h${index} (pid ${proc.pid}) is gone`))
          return
        }
        pending.set(id, { resolve, reject })
        proc.send({ id, cmd, ...args })
      })
    },
    expectExit () { expected = true }
  }
}

async function exited (proc: ChildProcess): Promise<void> {
  if (proc.exitCode != null || proc.signalCode != null) return
  await new Promise<void>(resolve => { proc.once('exit', () => { resolve() }) })
}

export interface MeshInit {
  /** Gossip timing for every agent instead of the defaults. */
  timing?: Partial<GossipTiming>
}

export function processMesh (init: MeshInit = {}): MeshDriver {
  hookExit()
  const recorder = new Recorder()
  const members = new Map<number, Member>()
  const workers = new Map<number, Worker>()
  const dirs = dataDirs('proc')
  roots.add(dirs.root)

  const worker = (index: number): Worker => {
    const w = workers.get(index)
    if (w == null) throw new Error(`no agent ${index}`)
    return w
  }
  const drop = (index: number): void => {
    members.delete(index)
    workers.delete(index)
  }

  return {
    mode: 'process',
    recorder,
    workarounds: [],
    members,

    async spawn (index, bootstrap) {
      const ip = agentIp(1, index)
      const dataDir = await dirs.make(index)
      const w = forkWorker(index, recorder, () => { if (workers.get(index) === w) drop(index) })
      workers.set(index, w)
      const { peerId } = await w.call('init', { init: { index, ip, dataDir, bootstrap, timing: init.timing } })
      const { t0, addr } = await w.call('start')
      const member = { index, ip, peerId, addr }
      members.set(index, member)
      return { member, t0 }
    },

    async change (index, op, name) {
      return (await worker(index).call('change', { op, name })).t0
    },

    async leave (index) {
      const w = worker(index)
      w.expectExit()
      const result = await w.call('leave')
      drop(index)
      await exited(w.proc)
      return result
    },

    async crash (index) {
      const w = worker(index)
      w.expectExit()
      const t0 = now()
      w.proc.kill('SIGKILL')
      drop(index)
      await exited(w.proc)
      return t0
    },

    pause (index, stopped) {
      worker(index).proc.kill(stopped ? 'SIGSTOP' : 'SIGCONT')
    },

    async echo (server, client, count) {
      const { port } = await worker(server).call('echo-server')
      try {
        return (await worker(client).call('echo-client', { host: agentIp(1, server), port, count })).samples
      } finally {
        await worker(server).call('echo-close')
      }
    },

    async eldReset () {
      await Promise.all([...workers.values()].map(async w => { await w.call('eld-reset') }))
    },

    async eld (exclude = []) {
      const stats = await Promise.all([...workers.entries()]
        .filter(([index]) => !exclude.includes(index))
        .map(async ([, w]) => await w.call('eld')))
      return worstEld(stats)
    },

    io () {
      const total = { wchar: 0, rchar: 0 }
      for (const w of workers.values()) {
        if (w.proc.pid == null) continue
        try {
          const io = readIo(w.proc.pid)
          total.wchar += io.wchar
          total.rchar += io.rchar
        } catch {}
      }
      return total
    },

    cpu () {
      let total = 0
      for (const w of workers.values()) {
        if (w.proc.pid == null) continue
        try { total += readCpuSeconds(w.proc.pid) } catch {}
      }
      return total
    },

    async close () {
      // measuring is over: no graceful leaves, just end the processes
      for (const w of workers.values()) w.expectExit()
      const procs = [...workers.values()].map(w => w.proc)
      for (const proc of procs) proc.kill('SIGKILL')
      await Promise.all(procs.map(exited))
      workers.clear()
      members.clear()
      rmSync(dirs.root, { recursive: true, force: true })
      roots.delete(dirs.root)
    }
  }
}

/**
 * Work around a crash in xsalsa20 1.2 (the cipher of @libp2p/pnet), which
 * only many connections in one process provoke. All ciphers of a process
 * share one WASM memory (10 pages at first, at most 1000); each cipher keeps a
 * Uint8Array view of it, made when it was created, and pnet never finalizes
 * its ciphers, so each connection ever opened takes 128 more bytes. Once the
 * memory has to grow, every other cipher's view is detached (length 0), so its
 * next update() grows the memory again by a page, detaching all the others:
 * from then on nearly every packet adds 64 KiB, and after about a thousand the
 * process dies of "WebAssembly.Memory.grow(): Maximum memory size exceeded".
 * Growing the memory once, before any cipher exists, leaves every view valid.
 * Returns a note for the report, or nothing when xsalsa20 is not found.
 */
function preGrowXsalsa20 (): string | undefined {
  try {
    const require = createRequire(import.meta.resolve('@libp2p/pnet'))
    const XSalsa20 = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update(input: Uint8Array): Uint8Array, finalize(): void }
    const cipher = XSalsa20(new Uint8Array(24), new Uint8Array(32))
    cipher.update(new Uint8Array(48 * 2 ** 20))
    cipher.finalize()
    return 'xsalsa20 (pnet\'s cipher) WASM memory grown to 48 MiB before the agents start: without it this process dies of its memory-growth bug (see bench/README.md)'
  } catch {
    return undefined
  }
}

export function inProcessMesh (init: MeshInit = {}): MeshDriver {
  hookExit()
  const workarounds: string[] = []
  const grown = preGrowXsalsa20()
  if (grown != null) workarounds.push(grown)
  const recorder = new Recorder()
  const members = new Map<number, Member>()
  const hosts = new Map<number, BenchHost>()
  const dirs = dataDirs('inproc')
  roots.add(dirs.root)
  // one event loop for all agents: one monitor
  const eld = eldMonitor()
  const emit = (event: ViewEvent): void => { recorder.push(event) }
  // as in worker.ts: a real agent would exit on an unhandled rejection; here
  // it would end the whole mesh, so it is recorded (agent unknown: -1) instead
  const onRejection = (reason: unknown): void => {
    recorder.push({ kind: 'fault', observer: -1, what: 'unhandled rejection (a goto-node process would exit)', detail: describeReason(reason), t: now() })
  }
  process.on('unhandledRejection', onRejection)

  const host = (index: number): BenchHost => {
    const h = hosts.get(index)
    if (h == null) throw new Error(`no agent ${index}`)
    return h
  }

  return {
    mode: 'in-process',
    recorder,
    workarounds,
    members,

    async spawn (index, bootstrap) {
      const ip = agentIp(2, index)
      const dataDir = await dirs.make(index)
      const h = await createHost({ index, ip, dataDir, bootstrap, timing: init.timing }, emit)
      hosts.set(index, h)
      const { t0, addr } = await h.start()
      const member = { index, ip, peerId: h.agent.peerId, addr }
      members.set(index, member)
      return { member, t0 }
    },

    async change (index, op, name) {
      return host(index).change(op, name)
    },

    async leave (index) {
      const h = host(index)
      members.delete(index)
      const result = await h.leave()
      hosts.delete(index)
      return result
    },

    async echo (server, client, count) {
      const echo = await startEchoServer(host(server).ip)
      try {
        return await measureEcho(host(server).ip, echo.port, host(client).ip, count)
      } finally {
        await echo.close()
      }
    },

    async eldReset () { eld.reset() },
    async eld () { return eld.read() },
    io () { return readIo('self') },
    cpu () { return readCpuSeconds('self') },

    async close () {
      const all = [...hosts.values()]
      hosts.clear()
      members.clear()
      // stop() leaves gracefully (bounded by the gossip's 3 s leave timeout)
      await Promise.race([
        Promise.allSettled(all.map(async h => { await h.agent.stop() })),
        new Promise(resolve => setTimeout(resolve, 20_000).unref())
      ])
      process.off('unhandledRejection', onRejection)
      rmSync(dirs.root, { recursive: true, force: true })
      roots.delete(dirs.root)
    }
  }
}
