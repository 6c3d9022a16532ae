/**
 * The agent's configuration, resolved once at start. Precedence, highest
 * first: command-line flags > `GOTO_*` environment variables > the data dir's
 * `config.json` > defaults.
 */
import { readFile } from 'node:fs/promises'
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { ConfigError } from './errors.ts'
import type { AdmissionPolicy } from './migration/policy.ts'
import { parseRate, parseSize } from './chunks/bandwidth.ts'
import { DEFAULT_POLICY, DIMENSIONS, type RebalancePolicy } from './rebalance/decide.ts'

export const DEFAULT_API_HOST = '127.0.0.1'
export const DEFAULT_API_PORT = 7070
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4001'
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
export const CONFIG_FILE = 'config.json'

/** Timing of the gossip and failure detection, in milliseconds. */
export interface GossipTiming {
  /** How often a node sends its small heartbeat (capacity and versions). @default 10000 */
  heartbeatMs: number
  /** Silence after which a connected peer is suspect. @default 30000 */
  suspectAfterMs: number
  /** Time a suspect peer has to come back before it is gone. @default 3000 */
  goneAfterMs: number
  /** Time a gone or left peer stays in the view before it is forgotten. @default 3600000 */
  forgetAfterMs: number
}

export const DEFAULT_GOSSIP: GossipTiming = {
  // liveness comes first from the connections (every agent holds one to every
  // other, pinged by libp2p's connection monitor), so heartbeats only carry
  // capacity and catch a missed change: rare ones keep an idle mesh quiet
  heartbeatMs: 10_000,
  suspectAfterMs: 30_000,
  goneAfterMs: 3000,
  forgetAfterMs: 3_600_000
}

export interface AgentConfig {
  dataDir: string
  /** A name for this host, shown to people and usable as a migration target. @default os.hostname() */
  name: string
  /** Multiaddrs the mesh listens on. @default ['/ip4/0.0.0.0/tcp/4001'] */
  listen: string[]
  /** Multiaddrs announced to peers instead of the listen addresses, where NAT or a VPN needs it. */
  announce: string[]
  /** Where the HTTP API binds. @default 127.0.0.1:7070 */
  api: { host: string, port: number }
  /** Let the API bind beyond loopback (it serves plain HTTP). @default false */
  apiAllowRemote?: boolean
  /** Names accepted in the API's `Host` header besides the loopback ones. @default [] */
  apiHosts?: string[]
  /** `unix:///path`, `tcp://host:port`, or `none` for a member that runs no containers. */
  dockerHost: string
  /** Peers dialled at start, besides the known peers remembered in the store. */
  bootstrap: string[]
  /** When not empty, only these peer ids may connect (a connection gater enforces it). */
  allowPeers: string[]
  gossip: GossipTiming
  migration: {
    policy: AdmissionPolicy
    rollbackRetentionMs?: number
    /** Bytes a second for all the chunks this node sends (GOTO_BWLIMIT; `10M`, `512k` in the file). */
    bwlimit?: number
    /** Pre-copy unless a migration says otherwise. @default true */
    precopy?: boolean
    /** @default 'auto' */
    compression?: 'auto' | 'off'
    /** Chunk streams a target opens to its source. @default 4 */
    streams?: number
    /** How long chunks stay in the store after the last migration that named them. @default 24 h */
    chunkRetentionMs?: number
  }
  /** Interval of the audit log's anti-entropy pull. @default 5000 */
  logSyncMs?: number
  /** How the mesh evens its load (see node/rebalance/decide.ts for every field and its default). */
  rebalance?: RebalancePolicy
  metrics?: {
    /** The CloudWatch publisher (GOTO_CLOUDWATCH=1, GOTO_CLOUDWATCH_ENDPOINT); off unless enabled. */
    cloudwatch?: CloudWatchConfig
  }
}

export interface CloudWatchConfig {
  enabled: boolean
  /** From the standard AWS chain when absent. */
  region?: string
  /** @default 'GoTo' */
  namespace?: string
  /** Another endpoint than the region's, e.g. a VPC endpoint. */
  endpoint?: string
  /** Storage resolution 1 s instead of 60 s. @default false */
  highResolution?: boolean
  /** How often the gauges are sampled. @default 60000 */
  intervalMs?: number
  /** The longest wait between failed sends. @default 60000 */
  retryMaxMs?: number
}

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:7070')

const PolicySchema = z.strictObject({
  allowPrivileged: z.boolean().optional(),
  allowHostNamespaces: z.boolean().optional(),
  allowCapabilities: z.array(z.string()).optional(),
  allowDevices: z.boolean().optional(),
  allowHostPaths: z.array(z.string().startsWith('/')).optional(),
  allowUnconfined: z.boolean().optional()
})

/** The file's schema: every key optional, unknown keys refused so typos surface. */
const FileSchema = z.strictObject({
  name: z.string().min(1).max(253).optional(),
  listen: z.array(z.string()).optional(),
  announce: z.array(z.string()).optional(),
  api: hostPort.optional(),
  apiAllowRemote: z.boolean().optional(),
  apiHosts: z.array(z.string().min(1).max(253)).optional(),
  dockerHost: z.string().optional(),
  bootstrap: z.array(z.string()).optional(),
  allowPeers: z.array(z.string()).optional(),
  gossip: z.strictObject({
    heartbeatMs: z.number().int().min(50).optional(),
    suspectAfterMs: z.number().int().min(100).optional(),
    goneAfterMs: z.number().int().min(100).optional(),
    forgetAfterMs: z.number().int().min(1000).optional()
  }).optional(),
  logSyncMs: z.number().int().min(100).optional(),
  rebalance: z.strictObject({
    enabled: z.boolean().optional(),
    intervalMs: z.number().int().min(100).optional(),
    weights: z.strictObject(Object.fromEntries(DIMENSIONS.map(d => [d, z.number().min(0).max(100).optional()])) as Record<typeof DIMENSIONS[number], z.ZodOptional<z.ZodNumber>>)
      .refine(w => Object.values(w).some(v => (v ?? 0) > 0), 'at least one weight above 0').optional(),
    high: z.number().min(0).max(1).optional(),
    low: z.number().min(0).max(1).optional(),
    ceiling: z.number().min(0).max(1).optional(),
    movable: z.enum(['labelled', 'all']).optional(),
    containerCooldownMs: z.number().int().min(0).optional(),
    nodeCooldownMs: z.number().int().min(0).optional(),
    returnAfterMs: z.number().int().min(0).optional(),
    minGain: z.number().min(0).optional(),
    capacity: z.strictObject({
      memoryBytes: z.union([z.string(), z.number().positive()]).optional(),
      containers: z.number().int().min(1).optional()
    }).optional()
  }).optional(),
  metrics: z.strictObject({
    cloudwatch: z.strictObject({
      enabled: z.boolean(),
      region: z.string().min(1).optional(),
      namespace: z.string().min(1).max(255).optional(),
      endpoint: z.url().optional(),
      highResolution: z.boolean().optional(),
      intervalMs: z.number().int().min(100).optional(),
      retryMaxMs: z.number().int().min(100).optional()
    }).optional()
  }).optional(),
  migration: z.strictObject({
    rollbackRetentionMs: z.number().int().min(0).optional(),
    bwlimit: z.union([z.string(), z.number().positive()]).optional(),
    precopy: z.boolean().optional(),
    compression: z.enum(['auto', 'off']).optional(),
    streams: z.number().int().min(1).max(16).optional(),
    chunkRetentionMs: z.number().int().min(0).optional(),
    policy: PolicySchema.extend({ peers: z.record(z.string().min(1).max(128), PolicySchema).optional() }).optional()
  }).optional()
})

export type ConfigFile = z.infer<typeof FileSchema>

/** Values given on the command line; absent means "not given". */
export interface ConfigFlags {
  dataDir?: string
  name?: string
  listen?: string[]
  api?: string
  dockerHost?: string
  bootstrap?: string[]
}

export function defaultDataDir (env: NodeJS.ProcessEnv = process.env): string {
  if (env.GOTO_DATA_DIR != null && env.GOTO_DATA_DIR !== '') return env.GOTO_DATA_DIR
  if (process.getuid?.() === 0) return '/var/lib/goto'
  const base = env.XDG_DATA_HOME != null && env.XDG_DATA_HOME !== '' ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share')
  return join(base, 'goto')
}

export function parseHostPort (value: string, what: string): { host: string, port: number } {
  const parsed = hostPort.safeParse(value)
  if (!parsed.success) throw new ConfigError(`${what}: "${value}" is not HOST:PORT (e.g. 127.0.0.1:7070)`)
  const at = value.lastIndexOf(':')
  const port = Number(value.slice(at + 1))
  if (port > 65535) throw new ConfigError(`${what}: port ${port} is above 65535`)
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port }
}

export async function readConfigFile (dataDir: string): Promise<ConfigFile> {
  const path = join(dataDir, CONFIG_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    if (err.code === 'ENOENT') return {}
    throw new ConfigError(`cannot read ${path}: ${err.message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err: any) {
    throw new ConfigError(`${path} is not valid JSON: ${err.message}`)
  }
  const parsed = FileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue == null || issue.path.length === 0 ? '' : ` at "${issue.path.join('.')}"`
    throw new ConfigError(`${path}${where}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

function listFromEnv (value: string | undefined): string[] | undefined {
  if (value == null || value.trim() === '') return undefined
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

function intFromEnv (env: NodeJS.ProcessEnv, key: string): number | undefined {
  const value = env[key]
  if (value == null || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`${key}: "${value}" is not a positive integer`)
  return n
}

function rateSetting (value: string | number | undefined, what: string): number | undefined {
  try {
    return parseRate(value)
  } catch (err) {
    throw new ConfigError(`${what}: ${(err as Error).message}`)
  }
}

/** Merge flags, environment, file and defaults into one config. */
export async function resolveConfig (flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Promise<AgentConfig> {
  const dataDir = flags.dataDir ?? defaultDataDir(env)
  const file = await readConfigFile(dataDir)
  const api = flags.api ?? env.GOTO_API_LISTEN ?? file.api
  return {
    dataDir,
    name: flags.name ?? env.GOTO_NAME ?? file.name ?? hostname(),
    listen: flags.listen ?? listFromEnv(env.GOTO_LISTEN) ?? file.listen ?? [DEFAULT_LISTEN],
    announce: listFromEnv(env.GOTO_ANNOUNCE) ?? file.announce ?? [],
    api: api != null ? parseHostPort(api, 'api') : { host: DEFAULT_API_HOST, port: DEFAULT_API_PORT },
    apiAllowRemote: env.GOTO_API_ALLOW_REMOTE != null ? env.GOTO_API_ALLOW_REMOTE === '1' : file.apiAllowRemote ?? false,
    apiHosts: listFromEnv(env.GOTO_API_HOSTS) ?? file.apiHosts ?? [],
    dockerHost: flags.dockerHost ?? env.GOTO_DOCKER_HOST ?? file.dockerHost ?? DEFAULT_DOCKER_HOST,
    bootstrap: flags.bootstrap ?? listFromEnv(env.GOTO_BOOTSTRAP) ?? file.bootstrap ?? [],
    allowPeers: listFromEnv(env.GOTO_ALLOW_PEERS) ?? file.allowPeers ?? [],
    gossip: {
      heartbeatMs: intFromEnv(env, 'GOTO_HEARTBEAT_MS') ?? file.gossip?.heartbeatMs ?? DEFAULT_GOSSIP.heartbeatMs,
      suspectAfterMs: intFromEnv(env, 'GOTO_SUSPECT_AFTER_MS') ?? file.gossip?.suspectAfterMs ?? DEFAULT_GOSSIP.suspectAfterMs,
      goneAfterMs: intFromEnv(env, 'GOTO_GONE_AFTER_MS') ?? file.gossip?.goneAfterMs ?? DEFAULT_GOSSIP.goneAfterMs,
      forgetAfterMs: file.gossip?.forgetAfterMs ?? DEFAULT_GOSSIP.forgetAfterMs
    },
    logSyncMs: file.logSyncMs,
    migration: {
      policy: file.migration?.policy ?? {},
      rollbackRetentionMs: file.migration?.rollbackRetentionMs,
      bwlimit: rateSetting(env.GOTO_BWLIMIT ?? file.migration?.bwlimit, env.GOTO_BWLIMIT != null ? 'GOTO_BWLIMIT' : 'migration.bwlimit'),
      precopy: file.migration?.precopy,
      compression: file.migration?.compression,
      streams: file.migration?.streams,
      chunkRetentionMs: file.migration?.chunkRetentionMs
    },
    rebalance: rebalancePolicy(file.rebalance, env),
    metrics: { cloudwatch: cloudWatchConfig(file.metrics?.cloudwatch, env) }
  }
}

/** The file's `rebalance` over the defaults; GOTO_REBALANCE=0|1 turns this node's own moves off or on. */
function rebalancePolicy (file: ConfigFile['rebalance'], env: NodeJS.ProcessEnv): RebalancePolicy {
  const f = file ?? {}
  let memoryBytes: number | undefined
  if (f.capacity?.memoryBytes != null) {
    try {
      memoryBytes = parseSize(f.capacity.memoryBytes)
    } catch (err) {
      throw new ConfigError(`rebalance.capacity.memoryBytes: ${(err as Error).message}`)
    }
  }
  const enabled = env.GOTO_REBALANCE != null && env.GOTO_REBALANCE !== '' ? env.GOTO_REBALANCE === '1' : f.enabled ?? DEFAULT_POLICY.enabled
  const weights = f.weights != null
    ? Object.fromEntries(DIMENSIONS.map(d => [d, f.weights?.[d] ?? 0])) as RebalancePolicy['weights']
    : DEFAULT_POLICY.weights
  return {
    ...DEFAULT_POLICY,
    ...Object.fromEntries(Object.entries(f).filter(([k, v]) => v != null && k !== 'capacity' && k !== 'weights')),
    enabled,
    weights,
    capacity: {
      memoryBytes,
      containers: f.capacity?.containers ?? DEFAULT_POLICY.capacity.containers
    }
  }
}

/** The file's `metrics.cloudwatch`, with GOTO_CLOUDWATCH=1|0 and GOTO_CLOUDWATCH_ENDPOINT over it. */
function cloudWatchConfig (file: CloudWatchConfig | undefined, env: NodeJS.ProcessEnv): CloudWatchConfig | undefined {
  const enabled = env.GOTO_CLOUDWATCH != null && env.GOTO_CLOUDWATCH !== '' ? env.GOTO_CLOUDWATCH === '1' : file?.enabled
  const endpoint = env.GOTO_CLOUDWATCH_ENDPOINT ?? file?.endpoint
  if (enabled == null) return undefined
  return { ...file, enabled, endpoint }
}
