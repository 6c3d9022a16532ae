/**
 * N simulated hosts: a Docker engine and an agent each, every agent on its
 * own loopback address, all joined into one mesh. Torn down by `stop()`, and
 * by the exit hooks of procs.ts when a test fails or is interrupted.
 *
 * @example
 * ```ts
 * const cluster = await startCluster({ hosts: 3 })
 * after(() => cluster.stop())
 * await cluster.engines[2].docker(['run', '-d', '--network', 'none', '--name', 'web-1', BASE_IMAGE, 'sleep', '1000'])
 * ```
 */
import { startEngine, type Engine } from './engine.ts'
import { startAgent, type AgentProc, type AgentProcInit } from './agent.ts'
import { makeRoot, releaseRoot } from './procs.ts'

export { BASE_IMAGE } from './engine.ts'

export interface ClusterInit {
  hosts: number
  /** Start a Docker engine per host; without, agents run with `--docker-host none`. @default true */
  engines?: boolean
  /** Extra environment for every agent (e.g. faster gossip timing). */
  env?: NodeJS.ProcessEnv
  config?: Record<string, unknown>
  label?: string
  /** A data root for host i's engine (e.g. a small filesystem the callback mounts), or undefined for the default. */
  dataRoot?: (root: string, index: number) => string | undefined
}

export interface Cluster {
  root: string
  engines: Engine[]
  agents: AgentProc[]
  /** The loopback address of host i (0-based). */
  ip(i: number): string
  /** Start one more agent (and engine, when the cluster has engines) and join it. */
  addHost(options?: Partial<AgentProcInit> & { join?: boolean }): Promise<AgentProc>
  stop(): Promise<void>
}

let clusterSeq = 0

export async function startCluster (init: ClusterInit): Promise<Cluster> {
  const root = makeRoot(init.label ?? 'cluster')
  // a subnet of 127/8 per process and cluster keeps parallel runs apart
  const net = `127.${20 + (process.pid % 200)}.${++clusterSeq % 250}`
  const ip = (i: number): string => `${net}.${i + 1}`
  const withEngines = init.engines !== false
  const engines: Engine[] = []
  const agents: AgentProc[] = []
  let next = 0

  const cluster: Cluster = {
    root,
    engines,
    agents,
    ip,
    async addHost (options = {}) {
      const index = next++
      let dockerHost = 'none'
      if (withEngines) {
        const engine = await startEngine({ root, index })
        engines[index] = engine
        dockerHost = engine.host
      }
      const first = agents[0]
      const agent = await startAgent({
        root,
        index,
        ip: ip(index),
        dockerHost,
        swarmKeyFile: first?.swarmKeyFile,
        bootstrap: options.join === false || first == null ? [] : [first.addr],
        env: init.env,
        config: init.config,
        ...options
      })
      agents[index] = agent
      return agent
    },
    async stop () {
      await Promise.allSettled(agents.map(async a => await a.stop()))
      await Promise.allSettled(engines.map(async e => await e.stop()))
      releaseRoot(root)
    }
  }

  try {
    if (withEngines) {
      const started = await Promise.all(Array.from({ length: init.hosts }, async (_, index) => await startEngine({ root, index, dataRoot: init.dataRoot?.(root, index) })))
      engines.push(...started)
    }
    const engineHost = (i: number): string => withEngines ? (engines[i]?.host ?? 'none') : 'none'
    next = init.hosts
    if (init.hosts > 0) {
      agents[0] = await startAgent({ root, index: 0, ip: ip(0), dockerHost: engineHost(0), env: init.env, config: init.config })
      const first = agents[0]
      const rest = await Promise.all(Array.from({ length: init.hosts - 1 }, async (_, k) => await startAgent({
        root,
        index: k + 1,
        ip: ip(k + 1),
        dockerHost: engineHost(k + 1),
        swarmKeyFile: first.swarmKeyFile,
        bootstrap: [first.addr],
        env: init.env,
        config: init.config
      })))
      agents.push(...rest)
    }
  } catch (err) {
    await cluster.stop()
    throw err
  }
  return cluster
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes; returns the value and the time taken. */
export async function until<T> (check: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string, intervalMs = 50): Promise<{ value: T, ms: number }> {
  const start = Date.now()
  let last: unknown
  while (Date.now() - start < timeoutMs) {
    try {
      const value = await check()
      if (value != null && value !== false) return { value, ms: Date.now() - start }
    } catch (err) {
      last = err
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last != null ? `: ${String(last)}` : ''}`)
}
