/**
 * The Docker Engine behind the ContainerRuntime interface, through dockerode.
 * Inventory changes are driven by the engine's event stream (reconnected when
 * it breaks) with a slow poll as a safety net.
 */
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
          movable: labels[PINNED_LABEL] !== 'true'
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
