/**
 * A container runtime held in memory, for the benchmarks: no Docker engine,
 * an inventory the bench edits directly, and change listeners it fires when
 * it chooses. A "change" on a host is `add()` or `remove()`, which call the
 * listeners synchronously, exactly as the Docker runtime does on an engine
 * event; the agent's gossip then re-reads the inventory (after its debounce)
 * and publishes it.
 *
 * Capacity is constant, so heartbeats never vary and cost no /proc reads.
 * Migration operations are not benchmarked: they refuse, as on a member
 * started with `--docker-host none`.
 */
import { createHash } from 'node:crypto'
import { noRuntime } from '../../node/runtime/none.ts'
import type { ContainerRuntime, ContainerSummary, HostCapacity } from '../../node/runtime/runtime.ts'

export interface MemoryRuntime extends ContainerRuntime {
  /** Add a running container named `name` and fire the change listeners. */
  add(name: string): ContainerSummary
  /** Remove the container named `name` and fire the change listeners; false when there was none. */
  remove(name: string): boolean
  /** Names of the containers held now, sorted. */
  names(): string[]
}

const CAPACITY: HostCapacity = {
  cpus: 4,
  load1: 0.5,
  memTotal: 8 * 2 ** 30,
  memFree: 4 * 2 ** 30,
  diskTotal: 100 * 2 ** 30,
  diskFree: 50 * 2 ** 30
}

/** A Docker-like 64-hex-digit id derived from the name, so runs are reproducible. */
function idOf (name: string): string {
  return createHash('sha256').update(name).digest('hex')
}

export function memoryRuntime (dataDir: string): MemoryRuntime {
  const containers = new Map<string, ContainerSummary>()
  const listeners = new Set<() => void>()
  const notify = (): void => {
    for (const listener of listeners) listener()
  }

  return {
    ...noRuntime(dataDir),
    description: 'memory (bench)',
    async start () {},
    async stop () {},
    async listContainers () {
      return [...containers.values()].sort((a, b) => a.name.localeCompare(b.name))
    },
    async capacity () { return { ...CAPACITY } },
    onChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },

    add (name) {
      const summary: ContainerSummary = {
        id: idOf(name),
        name,
        image: 'bench/idle:1',
        state: 'running',
        status: 'Up 1 second',
        created: Math.floor(Date.now() / 1000),
        sizeRw: 4096,
        sizeRootFs: 4 * 2 ** 20,
        labels: { 'bench.goto': 'gossip' },
        volumes: [],
        movable: true
      }
      containers.set(name, summary)
      notify()
      return summary
    },

    remove (name) {
      const had = containers.delete(name)
      if (had) notify()
      return had
    },

    names () {
      return [...containers.keys()].sort()
    }
  }
}

/** The key the bench matches states by: the sorted container names of a state, comma-joined. */
export function inventoryKey (names: readonly string[]): string {
  return [...names].sort().join(',')
}
