/**
 * The portable description of a container: what `docker inspect` says that
 * must hold on the target, and nothing host-bound (ids, IPs, paths of the
 * engine's data root). Pure functions, so the mapping is unit-tested.
 */

/** Config keys carried as Docker has them. */
export const CONFIG_KEYS = [
  'Hostname', 'Domainname', 'User', 'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'Labels', 'ExposedPorts',
  'Healthcheck', 'StopSignal', 'StopTimeout', 'Tty', 'OpenStdin', 'StdinOnce', 'AttachStdin', 'AttachStdout', 'AttachStderr'
] as const

/** HostConfig keys carried as Docker has them; the admission policy reads the risky ones. */
export const HOST_CONFIG_KEYS = [
  'PortBindings', 'RestartPolicy', 'Memory', 'MemoryReservation', 'MemorySwap', 'NanoCpus', 'CpuShares',
  'CpuQuota', 'CpuPeriod', 'CpusetCpus', 'PidsLimit', 'NetworkMode', 'Privileged', 'CapAdd', 'CapDrop',
  'Devices', 'PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'SecurityOpt', 'ReadonlyRootfs', 'Init',
  'ShmSize', 'Tmpfs', 'Ulimits', 'Sysctls', 'ExtraHosts', 'Dns', 'DnsOptions', 'DnsSearch', 'LogConfig',
  'OomKillDisable', 'GroupAdd'
] as const

export interface MountSpec {
  type: 'volume' | 'bind' | 'tmpfs'
  /** Volume name (named or anonymous), or the host path of a bind. */
  source: string
  destination: string
  readOnly: boolean
  /** An anonymous volume: its name is a 64-hex id Docker made up. */
  anonymous: boolean
}

export interface ContainerSpec {
  name: string
  /** The image the container was made from (informative; the snapshot carries the filesystem). */
  image: string
  config: Record<string, unknown>
  hostConfig: Record<string, unknown>
  mounts: MountSpec[]
}

function pick (from: Record<string, unknown> | undefined, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (from == null) return out
  for (const key of keys) {
    const value = from[key]
    if (value !== undefined && value !== null) out[key] = value
  }
  return out
}

/** Build the spec from `docker inspect` of a container. */
export function specFromInspect (inspect: any): ContainerSpec {
  const mounts: MountSpec[] = (inspect.Mounts ?? []).map((m: any): MountSpec => ({
    type: m.Type === 'bind' ? 'bind' : m.Type === 'tmpfs' ? 'tmpfs' : 'volume',
    source: m.Type === 'volume' ? m.Name : m.Source,
    destination: m.Destination,
    readOnly: m.RW === false,
    anonymous: m.Type === 'volume' && /^[0-9a-f]{64}$/.test(m.Name ?? '')
  }))
  return {
    name: String(inspect.Name ?? '').replace(/^\//, ''),
    image: inspect.Config?.Image ?? inspect.Image,
    config: pick(inspect.Config, CONFIG_KEYS),
    hostConfig: pick(inspect.HostConfig, HOST_CONFIG_KEYS),
    mounts
  }
}

/** The body of `POST /containers/create` for this spec on the target, from a loaded image. */
export function createBody (spec: ContainerSpec, image: string): Record<string, unknown> {
  return {
    ...spec.config,
    Image: image,
    HostConfig: {
      ...spec.hostConfig,
      Mounts: spec.mounts.map(m => ({
        Type: m.type,
        Source: m.type === 'tmpfs' ? undefined : m.source,
        Target: m.destination,
        ReadOnly: m.readOnly
      }))
    }
  }
}

/** Host ports the spec publishes, as `port/proto` with the host IP (empty for all). */
export function publishedPorts (spec: ContainerSpec): Array<{ hostIp: string, hostPort: number, proto: string }> {
  const out: Array<{ hostIp: string, hostPort: number, proto: string }> = []
  const bindings = (spec.hostConfig.PortBindings ?? {}) as Record<string, Array<{ HostIp?: string, HostPort?: string }> | null>
  for (const [key, list] of Object.entries(bindings)) {
    const proto = key.split('/')[1] ?? 'tcp'
    for (const b of list ?? []) {
      const port = Number(b.HostPort)
      if (Number.isInteger(port) && port > 0) out.push({ hostIp: b.HostIp ?? '', hostPort: port, proto })
    }
  }
  return out
}
