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
  /** Memory it reserves: its MemoryReservation, else its Memory limit, else 0. */
  mem?: number
  /** CPUs it is limited to (NanoCpus, or CpuQuota over CpuPeriod), else 0. */
  cpu?: number
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

export interface ContainerRuntime extends MigrationRuntime {
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

export interface ContainerDetails {
  id: string
  name: string
  image: string
  running: boolean
  paused: boolean
  /** created, running, paused, restarting, removing, exited or dead */
  status: string
  /** healthy, unhealthy, starting, or undefined without a healthcheck */
  health?: string
  sizeRootFs: number
  /** The raw `docker inspect` document. */
  inspect: any
}

/** What the migration engine needs of an engine. All names are container names or ids. */
export interface MigrationRuntime {
  inspect(name: string): Promise<ContainerDetails | undefined>
  pause(name: string): Promise<void>
  unpause(name: string): Promise<void>
  /** Graceful stop with a timeout (seconds), then SIGKILL. */
  stopContainer(name: string, timeoutSeconds: number): Promise<void>
  kill(name: string): Promise<void>
  startContainer(name: string): Promise<void>
  removeContainer(name: string, options?: { volumes?: boolean }): Promise<void>
  rename(name: string, to: string): Promise<void>
  setRestartPolicy(name: string, policy: { Name: string, MaximumRetryCount?: number }): Promise<void>
  /** Commit the container's filesystem to an image; returns the image id. */
  commit(name: string, repo: string, tag: string): Promise<string>
  /** `docker save` of one image, as a stream. */
  saveImage(ref: string): Promise<NodeJS.ReadableStream>
  /** `docker load` from a stream; resolves when the engine has it all. */
  loadImage(tar: NodeJS.ReadableStream): Promise<void>
  imageExists(ref: string): Promise<boolean>
  removeImage(ref: string): Promise<void>
  createContainer(name: string, body: Record<string, unknown>): Promise<string>
  volumeExists(name: string): Promise<boolean>
  createVolume(name: string, labels: Record<string, string>): Promise<void>
  removeVolume(name: string): Promise<void>
  /** Bytes used by a volume (walks it through the engine's disk usage). */
  volumeSizes(): Promise<Map<string, number>>
  /** A tar of `path` inside the container (volumes mounted there included). */
  getArchive(name: string, path: string): Promise<NodeJS.ReadableStream>
  /** Extract a plain tar into `path` inside the (created or stopped) container. */
  putArchive(name: string, path: string, tar: NodeJS.ReadableStream): Promise<void>
  /** Host ports published by running containers, as `port/proto`. */
  portsInUse(): Promise<Set<string>>
  /**
   * Where this host keeps the container's writable layer (overlay2's upper
   * directory), when the engine is local and this process may read it.
   */
  writableLayerDir(name: string): Promise<string | undefined>
  /** Where this host keeps an image's top layer (overlay2's `diff` directory), when local and readable. */
  imageLayerDir(ref: string): Promise<string | undefined>
  /** Where this host keeps a volume's files, when local and readable. */
  volumeDir(name: string): Promise<string | undefined>
}
