/**
 * The Docker Engine behind the ContainerRuntime interface, through dockerode.
 * Inventory changes are driven by the engine's event stream (reconnected when
 * it breaks) with a slow poll as a safety net.
 */
import { access, constants as fsConstants } from 'node:fs/promises'
import Docker from 'dockerode'
import { hostCapacity } from './host.ts'
import { PINNED_LABEL } from './runtime.ts'
import { RuntimeUnavailableError, ConfigError } from '../errors.ts'
import { errorMessage, type Logger } from '../logger.ts'
import type { ContainerRuntime, ContainerSummary, HostCapacity, RuntimeOptions } from './runtime.ts'

export interface DockerRuntimeInit {
  /** `unix:///var/run/docker.sock` or `tcp://host:port` */
  host: string
  logger: Logger
  /** Time allowed for the engine to answer a ping at start. @default 5000 */
  pingTimeoutMs?: number
  /** Delay before the event stream is reopened after it breaks. @default 1000 */
  reconnectMs?: number
  /** Safety-net poll interval. @default 30000 */
  pollMs?: number
}

const CONTAINER_EVENTS = ['create', 'start', 'die', 'stop', 'pause', 'unpause', 'destroy', 'rename', 'restart', 'kill', 'oom', 'update']

export function dockerOptions (host: string): Docker.DockerOptions {
  let url: URL
  try {
    url = new URL(host)
  } catch {
    throw new ConfigError(`docker host "${host}" is not a URL (unix:///var/run/docker.sock, tcp://host:2375 or none)`)
  }
  if (url.protocol === 'unix:') return { socketPath: url.pathname }
  if (url.protocol === 'tcp:' || url.protocol === 'http:') return { host: url.hostname, port: url.port === '' ? 2375 : url.port, protocol: 'http' }
  throw new ConfigError(`docker host "${host}" has an unsupported scheme ${url.protocol} (use unix://, tcp:// or none)`)
}

export function dockerRuntime (init: DockerRuntimeInit): ContainerRuntime {
  const docker = new Docker(dockerOptions(init.host))
  const log = init.logger
  const listeners = new Set<() => void>()
  /** What each container reserves, by id (`docker update` after its start is not seen). */
  const limits = new Map<string, { mem: number, cpu: number }>()
  let dataRoot = '/'
  let version = 'unknown'
  let events: NodeJS.ReadableStream | undefined
  let stopped = false
  let reconnectTimer: NodeJS.Timeout | undefined
  let pollTimer: NodeJS.Timeout | undefined

  const notify = (): void => {
    for (const listener of listeners) {
      try { listener() } catch (err) { log.error('change listener failed', { error: errorMessage(err) }) }
    }
  }

  const openEvents = async (): Promise<void> => {
    if (stopped) return
    try {
      const stream = await docker.getEvents({ filters: { type: ['container'], event: CONTAINER_EVENTS } })
      events = stream
      let buffered = ''
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8')
        let nl: number
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl)
          buffered = buffered.slice(nl + 1)
          if (line.trim() !== '') notify()
        }
        if (buffered.length > 1_000_000) buffered = ''
      })
      const reopen = (): void => {
        if (stopped || events !== stream) return
        events = undefined
        log.warn('docker event stream ended; reopening', { host: init.host })
        reconnectTimer = setTimeout(() => { void openEvents().then(notify) }, init.reconnectMs ?? 1000)
      }
      stream.on('end', reopen)
      stream.on('close', reopen)
      stream.on('error', reopen)
    } catch (err) {
      if (stopped) return
      log.warn('cannot open docker events; retrying', { host: init.host, error: errorMessage(err) })
      reconnectTimer = setTimeout(() => { void openEvents() }, init.reconnectMs ?? 1000)
    }
  }

  return {
    ...dockerMigrationOps(docker),
    get description () { return `docker ${version} at ${init.host}` },

    async start (options: RuntimeOptions = {}) {
      const timeout = init.pingTimeoutMs ?? 5000
      const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(timeout)]) : AbortSignal.timeout(timeout)
      try {
        const info = await Promise.race([
          docker.info(),
          new Promise<never>((_resolve, reject) => {
            signal.addEventListener('abort', () => { reject(new Error(`no answer within ${timeout} ms`)) }, { once: true })
          })
        ])
        dataRoot = info.DockerRootDir ?? '/'
        version = info.ServerVersion ?? 'unknown'
      } catch (err) {
        throw new RuntimeUnavailableError(`cannot reach the Docker Engine at ${init.host}: ${errorMessage(err)}`)
      }
      stopped = false
      await openEvents()
      pollTimer = setInterval(notify, init.pollMs ?? 30_000)
      pollTimer.unref()
    },

    async stop () {
      stopped = true
      clearTimeout(reconnectTimer)
      clearInterval(pollTimer)
      const stream = events as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined
      events = undefined
      stream?.destroy?.()
      listeners.clear()
    },

    async listContainers (): Promise<ContainerSummary[]> {
      const list = await docker.listContainers({ all: true, size: true })
      // the list leaves out what a container reserves: one inspect per new container, kept while it lives
      for (const id of limits.keys()) if (!list.some(c => c.Id === id)) limits.delete(id)
      await Promise.all(list.filter(c => !limits.has(c.Id)).map(async c => {
        try {
          const info: any = await docker.getContainer(c.Id).inspect()
          limits.set(c.Id, resourcesOf(info.HostConfig ?? {}))
        } catch {}
      }))
      return list.map(c => {
        const info = c as Docker.ContainerInfo & { SizeRw?: number, SizeRootFs?: number }
        const labels = info.Labels ?? {}
        return {
          id: info.Id,
          name: (info.Names?.[0] ?? info.Id.slice(0, 12)).replace(/^\//, ''),
          image: info.Image,
          state: info.State,
          status: info.Status,
          created: info.Created,
          sizeRw: info.SizeRw ?? 0,
          sizeRootFs: info.SizeRootFs ?? 0,
          labels,
          volumes: (info.Mounts ?? []).filter(m => m.Type === 'volume' && m.Name != null).map(m => m.Name as string),
          movable: labels[PINNED_LABEL] !== 'true',
          ...limits.get(info.Id)
        }
      })
    },

    async capacity (): Promise<HostCapacity> {
      try {
        return await hostCapacity(dataRoot)
      } catch {
        return await hostCapacity('/')
      }
    },

    onChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}

/** Memory and CPUs a container's HostConfig reserves or limits it to. */
export function resourcesOf (hostConfig: { Memory?: number, MemoryReservation?: number, NanoCpus?: number, CpuQuota?: number, CpuPeriod?: number }): { mem: number, cpu: number } {
  const mem = Number(hostConfig.MemoryReservation ?? 0) || Number(hostConfig.Memory ?? 0) || 0
  const quota = Number(hostConfig.CpuQuota ?? 0)
  const cpu = Number(hostConfig.NanoCpus ?? 0) / 1e9 || (quota > 0 ? quota / (Number(hostConfig.CpuPeriod ?? 0) || 100_000) : 0)
  return { mem, cpu }
}

async function readable (dir: string): Promise<boolean> {
  try {
    await access(dir, fsConstants.R_OK | fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Docker's 404 on any object. */
export function isNotFound (err: unknown): boolean {
  return (err as { statusCode?: number })?.statusCode === 404
}

/** Drain a Docker progress stream, rejecting on the first `error` line. */
async function drainProgress (stream: NodeJS.ReadableStream): Promise<void> {
  let buffered = ''
  let failure: string | undefined
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buffered += chunk.toString('utf8')
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (line === '') continue
      try {
        const msg = JSON.parse(line)
        if (msg.error != null) failure ??= String(msg.errorDetail?.message ?? msg.error)
      } catch {}
    }
  }
  if (failure != null) throw new Error(failure)
}

export function dockerMigrationOps (docker: Docker): import('./runtime.ts').MigrationRuntime {
  const container = (name: string): Docker.Container => docker.getContainer(name)
  return {
    async inspect (name) {
      try {
        const info: any = await container(name).inspect({ size: true } as any)
        return {
          id: info.Id,
          name: String(info.Name).replace(/^\//, ''),
          image: info.Config?.Image ?? info.Image,
          running: info.State?.Running === true,
          paused: info.State?.Paused === true,
          status: info.State?.Status ?? 'unknown',
          health: info.State?.Health?.Status,
          sizeRootFs: info.SizeRootFs ?? 0,
          inspect: info
        }
      } catch (err) {
        if (isNotFound(err)) return undefined
        throw err
      }
    },
    async pause (name) { await container(name).pause() },
    async unpause (name) { await container(name).unpause() },
    async stopContainer (name, t) {
      try { await container(name).stop({ t }) } catch (err: any) { if (err?.statusCode !== 304) throw err }
    },
    async kill (name) {
      try { await container(name).kill() } catch (err: any) { if (err?.statusCode !== 409) throw err }
    },
    async startContainer (name) {
      try { await container(name).start() } catch (err: any) { if (err?.statusCode !== 304) throw err }
    },
    async removeContainer (name, options = {}) {
      try { await container(name).remove({ force: true, v: options.volumes === true }) } catch (err) { if (!isNotFound(err)) throw err }
    },
    async rename (name, to) { await container(name).rename({ name: to }) },
    async setRestartPolicy (name, policy) { await container(name).update({ RestartPolicy: policy }) },
    async commit (name, repo, tag) {
      const res = await container(name).commit({ repo, tag, pause: false })
      return res.Id as string
    },
    async saveImage (ref) { return await docker.getImage(ref).get() },
    async loadImage (tar) { await drainProgress(await (docker.loadImage as (t: NodeJS.ReadableStream, o: object) => Promise<NodeJS.ReadableStream>)(tar, { quiet: true })) },
    async imageExists (ref) {
      try { await docker.getImage(ref).inspect(); return true } catch (err) { if (isNotFound(err)) return false; throw err }
    },
    async removeImage (ref) {
      try { await docker.getImage(ref).remove({ force: true }) } catch (err) { if (!isNotFound(err)) throw err }
    },
    async createContainer (name, body) {
      const created = await docker.createContainer({ ...body, name } as Docker.ContainerCreateOptions)
      return created.id
    },
    async volumeExists (name) {
      try { await docker.getVolume(name).inspect(); return true } catch (err) { if (isNotFound(err)) return false; throw err }
    },
    async createVolume (name, labels) { await docker.createVolume({ Name: name, Labels: labels }) },
    async removeVolume (name) {
      try { await docker.getVolume(name).remove({ force: true } as any) } catch (err) { if (!isNotFound(err)) throw err }
    },
    async volumeSizes () {
      const df: any = await docker.df()
      return new Map<string, number>((df.Volumes ?? []).map((v: any) => [v.Name, Math.max(0, v.UsageData?.Size ?? 0)]))
    },
    async getArchive (name, path) { return await container(name).getArchive({ path }) as NodeJS.ReadableStream },
    async putArchive (name, path, tar) {
      const res = await container(name).putArchive(tar, { path, noOverwriteDirNonDir: true })
      if (res != null && typeof (res as any).resume === 'function') {
        await new Promise<void>((resolve, reject) => { (res as any).on('end', resolve).on('error', reject).resume() })
      }
    },
    async writableLayerDir (name) {
      const info: any = await container(name).inspect()
      const dir = info?.GraphDriver?.Name === 'overlay2' ? info.GraphDriver.Data?.UpperDir : undefined
      return typeof dir === 'string' && await readable(dir) ? dir : undefined
    },
    async imageLayerDir (ref) {
      const info: any = await docker.getImage(ref).inspect()
      const dir = info?.GraphDriver?.Name === 'overlay2' ? info.GraphDriver.Data?.UpperDir : undefined
      return typeof dir === 'string' && await readable(dir) ? dir : undefined
    },
    async volumeDir (name) {
      const info: any = await docker.getVolume(name).inspect()
      const dir = info?.Driver === 'local' && info?.Options == null ? info.Mountpoint : undefined
      return typeof dir === 'string' && await readable(dir) ? dir : undefined
    },
    async portsInUse () {
      const list = await docker.listContainers({ filters: { status: ['running', 'paused', 'restarting'] } })
      const used = new Set<string>()
      for (const c of list) for (const p of c.Ports ?? []) if (p.PublicPort != null) used.add(`${p.PublicPort}/${p.Type}`)
      // published but not realised (e.g. --network none) still claims the port on start
      for (const c of list) {
        const info: any = await docker.getContainer(c.Id).inspect().catch(() => undefined)
        for (const [key, bindings] of Object.entries(info?.HostConfig?.PortBindings ?? {})) {
          for (const b of (bindings as any[]) ?? []) if (Number(b.HostPort) > 0) used.add(`${Number(b.HostPort)}/${key.split('/')[1] ?? 'tcp'}`)
        }
      }
      return used
    }
  }
}
