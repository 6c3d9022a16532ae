/**
 * One simulated host of the bench: an agent built by `createAgent` exactly as
 * `goto-node start` builds it, but with the in-memory runtime instead of
 * Docker, and every change of its mesh view reported, timestamped, to the
 * bench. Used directly by the in-process mesh and inside each worker process
 * of the process mesh.
 */
import { createAgent, type Agent } from '../../node/agent.ts'
import { DEFAULT_GOSSIP, type AgentConfig, type GossipTiming } from '../../node/config.ts'
import { createLogger } from '../../node/logger.ts'
import { inventoryKey, memoryRuntime, type MemoryRuntime } from './memory-runtime.ts'
import { now } from './measure.ts'

export interface HostInit {
  /** The bench's number for this host; also the observer id in its events. */
  index: number
  /** Its own loopback address (127.x.y.z). */
  ip: string
  dataDir: string
  bootstrap: string[]
  /** Gossip timing instead of the defaults (`--heartbeat-ms`); normally absent. */
  timing?: Partial<GossipTiming>
}

/** What a host saw, with the time it saw it (`now()`). */
export type ViewEvent =
  | { kind: 'status', observer: number, peer: string, from: string, to: string, t: number }
  | { kind: 'state', observer: number, peer: string, key: string, t: number }
  | { kind: 'log', observer: number, line: string, t: number }
  /** Something a real agent would not survive or should not do: an unhandled rejection, an unexpected exit. */
  | { kind: 'fault', observer: number, what: string, detail: string, t: number }

export interface BenchHost {
  readonly index: number
  readonly ip: string
  readonly agent: Agent
  readonly runtime: MemoryRuntime
  /** Start the agent; returns the time start() was called and the mesh address (with /p2p/). */
  start(): Promise<{ t0: number, addr: string }>
  /** Add or remove a container; returns the time the change listeners were called. */
  change(op: 'add' | 'remove', name: string): number
  /** Graceful leave; returns when stop() was called and when it returned. */
  leave(): Promise<{ t0: number, t1: number }>
}

export function hostName (index: number): string {
  return `h${index}`
}

export async function createHost (init: HostInit, emit: (event: ViewEvent) => void): Promise<BenchHost> {
  const name = hostName(init.index)
  const config: AgentConfig = {
    dataDir: init.dataDir,
    name,
    listen: [`/ip4/${init.ip}/tcp/0`],
    announce: [],
    api: { host: init.ip, port: 0 },
    dockerHost: 'none',
    bootstrap: init.bootstrap,
    allowPeers: [],
    gossip: { ...DEFAULT_GOSSIP, ...init.timing },
    migration: { policy: {} }
  }
  // warnings and errors only, handed to the bench rather than printed
  const logger = createLogger(`bench:${name}`, {
    level: 'warn',
    write: line => { emit({ kind: 'log', observer: init.index, line, t: now() }) }
  })
  const runtime = memoryRuntime(init.dataDir)
  const agent = await createAgent(config, { logger, runtime })

  agent.gossip.view.addEventListener('peer:status', evt => {
    const { peerId, from, to } = evt.detail
    emit({ kind: 'status', observer: init.index, peer: peerId, from, to, t: now() })
  })
  agent.gossip.view.addEventListener('peer:state', evt => {
    const record = evt.detail
    emit({ kind: 'state', observer: init.index, peer: record.peerId, key: inventoryKey(record.state.containers.map(c => c.name)), t: now() })
  })

  return {
    index: init.index,
    ip: init.ip,
    agent,
    runtime,
    async start () {
      const t0 = now()
      await agent.start()
      const addrs = agent.info().addrs
      const addr = addrs.find(a => a.includes(`/ip4/${init.ip}/`)) ?? addrs[0]
      if (addr == null) throw new Error(`${name} listens nowhere`)
      return { t0, addr: addr.includes('/p2p/') ? addr : `${addr}/p2p/${agent.peerId}` }
    },
    change (op, name) {
      const t0 = now()
      if (op === 'add') runtime.add(name)
      else runtime.remove(name)
      return t0
    },
    async leave () {
      const t0 = now()
      await agent.stop()
      return { t0, t1: now() }
    }
  }
}

/** A readable one-paragraph account of a thrown or rejected value. */
export function describeReason (reason: unknown): string {
  if (reason instanceof Error) return (reason.stack ?? `${reason.name}: ${reason.message}`).split('\n').slice(0, 8).join('\n')
  if (reason != null && typeof reason === 'object') {
    const r = reason as { type?: unknown, error?: unknown, message?: unknown }
    const inner = r.error instanceof Error ? ` (error: ${describeReason(r.error)})` : ''
    return `${reason.constructor?.name ?? 'object'}${typeof r.type === 'string' ? ` type=${r.type}` : ''}${typeof r.message === 'string' ? `: ${r.message}` : ''}${inner}`
  }
  return String(reason)
}
