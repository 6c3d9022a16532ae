/**
 * The container runtime seen by the rest of the agent. The Docker Engine is
 * reached only through an implementation of this interface, so the mesh and
 * the migration engine read as their own steps, not as Docker calls.
 */

export interface ContainerSummary {
  id: string
  name: string
  image: string
  /** created, running, paused, restarting, removing, exited or dead */
  state: string
  /** Docker's human status, e.g. "Up 3 minutes" */
  status: string
  /** Creation time, seconds since the epoch. */
  created: number
  /** Bytes written in the container's own layer. */
  sizeRw: number
  /** Bytes of the whole root filesystem, image included. */
  sizeRootFs: number
  labels: Record<string, string>
  /** Names of the volumes it mounts (named and anonymous). */
  volumes: string[]
  /** Whether the mesh may move it (not labelled `goto.pinned=true`). */
  movable: boolean
}

export interface HostCapacity {
  cpus: number
  /** One-minute load average. */
  load1: number
  memTotal: number
  memFree: number
  /** Bytes on the filesystem of the engine's data root. */
  diskTotal: number
  diskFree: number
}

export interface RuntimeOptions {
  signal?: AbortSignal
}

export interface ContainerRuntime {
  /** e.g. `docker 20.10.24` or `none` */
  readonly description: string
  /** Connect and check the engine answers; throws RuntimeUnavailableError when not. */
  start(options?: RuntimeOptions): Promise<void>
  stop(): Promise<void>
  listContainers(options?: RuntimeOptions): Promise<ContainerSummary[]>
  capacity(options?: RuntimeOptions): Promise<HostCapacity>
  /** Called, without arguments, whenever the set of containers or their states may have changed. */
  onChange(listener: () => void): () => void
}

export const PINNED_LABEL = 'goto.pinned'
