/**
 * The migration engine: moves one container, with its config and volumes,
 * from this node (source) to a peer (target), or receives one.
 *
 * The source runs the steps of DESIGN.md in order — plan, offer, freeze,
 * snapshot and stream, prepare, commit — and the target answers each. Both
 * journal every phase before acting on it. Before the commit decision every
 * failure resumes the source's original and cleans the target; after it the
 * migration only goes forward. Sessions that break, and agents that restart,
 * are finished by one resolver loop that reads the journal.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { posix } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter, type Stream, type Connection } from '@libp2p/interface'
import {
  MIGRATE_PROTOCOL, MAX_INBOUND_STREAMS, OFFER_BURST, OFFER_RATE, TOKEN_TTL_MS, ACTIVATE_TIMEOUT_MS, isCommitted, isFinal,
  parseManifest, parseOfferPayload, session, type Control, type Manifest, type OfferPayload, type RefusalCode, type Session
} from '../../protocols/migrate/index.ts'
import { MigrationError } from './errors.ts'
import { errorMessage, type Logger } from '../logger.ts'
import { signText, verifyText } from '../signing.ts'
import { RateLimiter } from '../rate-limit.ts'
import { checkPolicy, policyFor, type AdmissionPolicy } from './policy.ts'
import { publishedPorts, specFromInspect, type ContainerSpec } from './spec.ts'
import { uuidv7 } from './ids.ts'
import { assemble, ChunkServer, chunkInto, emptyStats, Fetcher, recipeDigest, type Serving } from './transfer.ts'
import { CHUNKS_PROTOCOL } from '../../protocols/chunks/index.ts'
import { TokenBucket } from '../chunks/bandwidth.ts'
import type { ChunkStore } from '../chunks/store.ts'
import { archiveListing, canReadXattrs, deltaSince, listTree, packDelta, type Listing } from '../runtime/delta.ts'
import { fillContainerName, Unpacker } from './unpack.ts'
import { resourcesOf } from '../runtime/docker.ts'
import { failpoints as createFailpoints, type Failpoints } from './failpoints.ts'
import type { AuditLog } from '../audit/log.ts'
import type { Gossip } from '../mesh/gossip.ts'
import type { MeshNode } from '../mesh/libp2p.ts'
import type { ContainerRuntime } from '../runtime/runtime.ts'
import type { Journal, MigrationRecord } from './journal.ts'
import type { PrivateKey } from '@libp2p/interface'

export { MigrationError }

export interface MigrateRequest {
  /** Name (or id) of the container on this node. */
  container: string
  /** Peer id, node name, or an IP of the target. */
  target: string
  /** Its name on the target. @default the same name */
  name?: string
  /** @default 'freeze' */
  consistency?: 'freeze' | 'stop'
  /** Seconds a graceful stop may take. @default 10 */
  stopTimeout?: number
  dryRun?: boolean
  /** Move a container with bind mounts of host paths (the target's policy must allow the paths). @default false */
  allowBindMounts?: boolean
  /** Bytes a second for this migration's chunks (the node's own limit applies too). */
  bwlimit?: number
  /** Send the bulk while the container still runs. @default the node's setting (on) */
  precopy?: boolean
  /** Who asked, for the audit log. */
  actor?: string
  /** A person's move, the mesh evening its load, or a node draining; the target judges each its own way. @default 'manual' */
  purpose?: 'manual' | 'rebalance' | 'drain'
}

/** Moves this node has in flight, and the memory reserved by those coming in. */
export interface InFlight {
  incoming: number
  outgoing: number
  memInFlight: number
}

/** The moves in flight among journal records: not final, not dry runs. */
export function inFlightOf (records: MigrationRecord[]): InFlight {
  const pending = records.filter(r => !r.dryRun && !isFinal(r.phase))
  const incoming = pending.filter(r => r.role === 'target')
  return {
    incoming: incoming.length,
    outgoing: pending.filter(r => r.role === 'source').length,
    memInFlight: incoming.reduce((sum, r) => sum + resourcesOf(r.spec?.hostConfig ?? {}).mem, 0)
  }
}

/** A check the owner of the node adds to admission (the rebalancer's); undefined admits. */
export type AdmissionHook = (offer: OfferPayload, inFlight: InFlight) => Promise<{ code: RefusalCode, reason: string } | undefined>

export interface MigrationsInit {
  policy?: AdmissionPolicy
  /** How long the source keeps its stopped original. @default 24 h */
  rollbackRetentionMs?: number
  /** Disk the target keeps free beyond the estimate: bytes, and a factor on the estimate. */
  diskMarginBytes?: number
  diskMarginFactor?: number
  /** Interval of the loop that finishes broken sessions. @default 1000 */
  resolveMs?: number
  /** Bytes a second for all the chunks this node sends. */
  bwlimit?: number
  /** Pre-copy unless a request says otherwise. @default true */
  precopy?: boolean
  /** zstd on chunks that shrink by a tenth or more ('auto'), or never. @default 'auto' */
  compression?: 'auto' | 'off'
  /** Chunk streams a target opens to its source. @default 4 */
  streams?: number
  /** How long chunks stay in the store after the last migration that named them. @default 24 h */
  chunkRetentionMs?: number
  failpoints?: Failpoints
  /** Checked after the node's own admission checks, with the moves in flight. */
  admission?: AdmissionHook
}

/** The listings a delta is taken against, and when they were taken. */
interface DeltaBase {
  at: number
  layer: { dir: string, listing: Listing }
  volumes: Array<{ destination: string, dir: string, listing: Listing }>
}

export interface MigrationsComponents {
  libp2p: MeshNode
  runtime: ContainerRuntime
  gossip: Gossip
  journal: Journal
  audit: AuditLog
  privateKey: PrivateKey
  logger: Logger
  chunks: ChunkStore
}

export interface MigrationsEvents {
  /** A record changed (phase or progress). */
  update: CustomEvent<MigrationRecord>
}

const PHASE_TIMEOUT_MS = 10 * 60_000
/** The longest an offer's admission checks may take (they call the engine, under the admission lock). */
const ADMISSION_TIMEOUT_MS = 30_000

/**
 * The most a source may announce for an offer of `offered` bytes: a pre-copy
 * round and a whole final snapshot, each with a tenth to spare (tar headers,
 * an estimate taken a moment earlier), and 256 MiB besides.
 */
function announcedCap (offered: number): number {
  return Math.ceil(offered * 2.2) + 256 * 1024 * 1024
}

function refusal (code: RefusalCode, reason: string): { code: RefusalCode, reason: string } {
  return { code, reason }
}

async function portFree (port: number, host: string): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen({ port, host: host === '' ? '0.0.0.0' : host, exclusive: true }, () => { server.close(() => { resolve(true) }) })
  })
}

function imageRefFor (name: string, id: string): string {
  return `goto-migrate/${name.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}:${id.slice(0, 8)}`
}

export class Migrations extends TypedEventEmitter<MigrationsEvents> {
  readonly #c: MigrationsComponents
  readonly #init: MigrationsInit
  readonly #log: Logger
  readonly #fail: Failpoints
  /** Migrations a live session is driving; the resolver leaves these alone. */
  readonly #active = new Map<string, AbortController>()
  /** Source sessions running, so stop() lets them finish their abort path. */
  readonly #tasks = new Set<Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #resolving = false
  #prunedAt = 0
  /** The records of sessions this node receives now, by migration. */
  readonly #receiving = new Map<string, MigrationRecord>()
  /** Progress writes in flight, by record. */
  readonly #writing = new Map<string, Promise<void>>()
  #shutdown = new AbortController()
  readonly #server: ChunkServer
  readonly #nodeBucket: TokenBucket | undefined
  readonly #offers = new RateLimiter({ rate: OFFER_RATE, burst: OFFER_BURST })

  constructor (components: MigrationsComponents, init: MigrationsInit = {}) {
    super()
    this.#c = components
    this.#init = init
    this.#log = components.logger
    this.#fail = init.failpoints ?? createFailpoints()
    this.#server = new ChunkServer(components.chunks, components.logger, init.compression)
    this.#nodeBucket = init.bwlimit != null ? new TokenBucket(init.bwlimit) : undefined
  }

  get #me (): string { return this.#c.libp2p.peerId.toString() }

  async start (): Promise<void> {
    this.#shutdown = new AbortController()
    await this.#c.libp2p.handle(MIGRATE_PROTOCOL, async (stream, connection) => {
      await this.#serve(stream, connection)
    }, { maxInboundStreams: MAX_INBOUND_STREAMS })
    await this.#c.libp2p.handle(CHUNKS_PROTOCOL, async (stream, connection) => {
      await this.#server.handle(stream, connection)
    }, { maxInboundStreams: MAX_INBOUND_STREAMS })
    const resolve = (): void => { void this.#resolve().catch((err: unknown) => { this.#log.debug('resolver failed', { error: errorMessage(err) }) }) }
    this.#timer = setInterval(resolve, this.#init.resolveMs ?? 1000)
    resolve()
  }

  async stop (): Promise<void> {
    this.#shutdown.abort()
    clearInterval(this.#timer)
    for (const controller of this.#active.values()) controller.abort(new MigrationError('GOTO_ERR_AGENT_STOPPING', 'the agent is stopping'))
    // a session aborted before the commit resumes the original; give it the time to
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...this.#tasks]), new Promise(resolve => { timer = setTimeout(resolve, 10_000) })])
    clearTimeout(timer)
    await this.#c.libp2p.unhandle(MIGRATE_PROTOCOL).catch(() => {})
    await this.#c.libp2p.unhandle(CHUNKS_PROTOCOL).catch(() => {})
    await this.#c.chunks.flush().catch(() => {})
  }

  async list (): Promise<MigrationRecord[]> {
    return (await this.#c.journal.all()).sort((a, b) => b.createdAt.localeCompare(a.createdAt))
  }

  /** The record of a migration, the source's where this node holds both. */
  async get (id: string): Promise<MigrationRecord | undefined> {
    return await this.#c.journal.get(id, 'source') ?? await this.#c.journal.get(id, 'target')
  }

  async #save (record: MigrationRecord, phase?: MigrationRecord['phase'], patch: Partial<MigrationRecord> = {}): Promise<MigrationRecord> {
    // after any progress write of this record still in flight, which must not land over this one
    await this.#writing.get(`${record.id}!${record.role}`)
    if (phase != null) {
      await this.#c.journal.move(record, phase, patch)
      await this.#c.audit.append(`migration.${phase}`, { migration: record.id, actor: record.actor, details: { role: record.role, container: record.container, source: record.source, target: record.target } }).catch(() => {})
      this.#log.info('migration phase', { id: record.id, role: record.role, phase })
    } else {
      Object.assign(record, patch)
      await this.#c.journal.put(record)
    }
    this.safeDispatchEvent('update', { detail: record })
    return record
  }

  /**
   * Progress between phases: journalled (the API reads the journal) and
   * announced, without waiting; one write at a time per record, skipped while
   * one is in flight, so none lands over a later phase.
   */
  #progress (record: MigrationRecord): void {
    const key = `${record.id}!${record.role}`
    if (!this.#writing.has(key) && !isFinal(record.phase)) {
      this.#writing.set(key, this.#c.journal.put(record).catch(() => {}).finally(() => { this.#writing.delete(key) }))
    }
    this.safeDispatchEvent('update', { detail: record })
  }

  // ───────────────────────────── source ─────────────────────────────

  #resolveTarget (target: string): { peerId: string, name: string } {
    const peers = this.#c.gossip.view.peers()
    const byId = peers.find(p => p.peerId === target)
    const matches = byId != null
      ? [byId]
      : peers.filter(p => p.state.name === target || p.state.addrs.some(a => a.includes(`/ip4/${target}/`) || a.includes(`/ip6/${target}/`) || a.includes(`/dns4/${target}/`)))
    if (matches.length === 0) throw new MigrationError('GOTO_ERR_UNKNOWN_TARGET', `no peer in the mesh is "${target}" (give a peer id, node name or IP from "goto-node peers")`)
    if (matches.length > 1) throw new MigrationError('GOTO_ERR_AMBIGUOUS_TARGET', `"${target}" names ${matches.length} peers; give a peer id`)
    const peer = matches[0]!
    if (peer.peerId === this.#me) throw new MigrationError('GOTO_ERR_UNKNOWN_TARGET', 'the target is this node')
    if (peer.status !== 'alive') throw new MigrationError('GOTO_ERR_TARGET_UNAVAILABLE', `${peer.state.name} is ${peer.status}`)
    if (peer.nodeStatus !== 'active') throw new MigrationError('GOTO_ERR_TARGET_UNAVAILABLE', `${peer.state.name} is ${peer.nodeStatus}`)
    return { peerId: peer.peerId, name: peer.state.name }
  }

  /**
   * Plan a migration and run it in the background; resolves with the record
   * once it is planned (its id known). `finished(id)` waits for the end.
   */
  async begin (req: MigrateRequest): Promise<MigrationRecord> {
    const runtime = this.#c.runtime
    const details = await runtime.inspect(req.container)
    if (details == null) throw new MigrationError('GOTO_ERR_UNKNOWN_CONTAINER', `no container "${req.container}" on this node`)
    if (details.name.includes('-goto-rollback-')) throw new MigrationError('GOTO_ERR_UNKNOWN_CONTAINER', `"${details.name}" is a rollback point, not a live container`)
    const target = this.#resolveTarget(req.target)
    const spec = specFromInspect(details.inspect)
    if (req.name != null) spec.name = req.name
    const binds = spec.mounts.filter(m => m.type === 'bind')
    if (binds.length > 0 && req.allowBindMounts !== true) {
      throw new MigrationError('GOTO_ERR_HOST_PATH', `"${details.name}" bind-mounts host paths (${binds.map(b => b.source).join(', ')}), which do not move with it; pass --allow-bind-mounts if the target has the same paths`)
    }
    for (const active of await this.#c.journal.pending()) {
      if (active.role === 'source' && active.container === details.name) {
        throw new MigrationError('GOTO_ERR_MIGRATION_IN_PROGRESS', `"${details.name}" is already moving (migration ${active.id})`)
      }
    }
    const sizes = await runtime.volumeSizes().catch(() => new Map<string, number>())
    const volumeBytes = spec.mounts.filter(m => m.type === 'volume').reduce((sum, m) => sum + (sizes.get(m.source) ?? 0), 0)
    const id = uuidv7()
    const now = new Date().toISOString()
    const record: MigrationRecord = {
      id,
      role: 'source',
      phase: 'planned',
      phases: [{ phase: 'planned', at: now }],
      source: this.#me,
      target: target.peerId,
      sourceNode: this.#c.gossip.localState().name,
      targetNode: target.name,
      container: details.name,
      name: spec.name,
      consistency: req.consistency ?? 'freeze',
      dryRun: req.dryRun === true,
      purpose: req.purpose,
      createdAt: now,
      updatedAt: now,
      actor: req.actor,
      bytes: { total: details.sizeRootFs + volumeBytes, moved: 0 },
      spec,
      wasRunning: details.running,
      wasPaused: details.paused,
      restartPolicy: details.inspect.HostConfig?.RestartPolicy ?? { Name: 'no' },
      imageRef: imageRefFor(spec.name, id),
      bwlimit: req.bwlimit,
      transfer: emptyStats()
    }
    await this.#c.audit.append('migration.planned', { migration: id, actor: req.actor, details: { role: 'source', container: details.name, target: target.peerId, dryRun: record.dryRun } })
    await this.#c.journal.put(record)
    const controller = new AbortController()
    this.#active.set(id, controller)
    const task: Promise<void> = this.#runSource(record, req, controller.signal).finally(() => {
      this.#active.delete(id)
      this.#tasks.delete(task)
    })
    this.#tasks.add(task)
    return record
  }

  /** Resolve when the migration reaches a final phase (on either side of this node). */
  async finished (id: string, options: { signal?: AbortSignal } = {}): Promise<MigrationRecord> {
    for (;;) {
      const record = await this.get(id)
      if (record == null) throw new MigrationError('GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id}`)
      if (isFinal(record.phase) && !this.#active.has(id)) return record
      await new Promise<void>((resolve, reject) => {
        const done = (): void => { cleanup(); resolve() }
        const timer = setTimeout(done, 500)
        const onUpdate = (evt: CustomEvent<MigrationRecord>): void => { if (evt.detail.id === id) done() }
        const onAbort = (): void => { cleanup(); reject(options.signal?.reason ?? new Error('aborted')) }
        const cleanup = (): void => {
          clearTimeout(timer)
          this.removeEventListener('update', onUpdate)
          options.signal?.removeEventListener('abort', onAbort)
        }
        this.addEventListener('update', onUpdate)
        options.signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
  }

  async migrate (req: MigrateRequest, options: { signal?: AbortSignal } = {}): Promise<MigrationRecord> {
    const record = await this.begin(req)
    return await this.finished(record.id, options)
  }

  async #open (peerId: string, signal: AbortSignal): Promise<Session> {
    const stream = await this.#c.libp2p.dialProtocol(peerIdFromString(peerId), MIGRATE_PROTOCOL, { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) })
    return session(stream)
  }

  async #cut (peerId: string): Promise<void> {
    await this.#c.libp2p.hangUp(peerIdFromString(peerId)).catch(() => {})
  }

  async #runSource (record: MigrationRecord, req: MigrateRequest, signal: AbortSignal): Promise<void> {
    const runtime = this.#c.runtime
    const spec = record.spec as ContainerSpec
    let s: Session | undefined
    let serving: Serving | undefined
    const sig = AbortSignal.any([signal, this.#shutdown.signal])
    try {
      // offer
      s = await this.#open(record.target, sig)
      const payload: OfferPayload = {
        id: record.id,
        source: record.source,
        target: record.target,
        time: Date.now(),
        spec,
        diskBytes: record.bytes.total,
        memoryBytes: Number(spec.hostConfig.Memory ?? 0) || Number(spec.hostConfig.MemoryReservation ?? 0) || 0,
        consistency: record.consistency,
        dryRun: record.dryRun,
        ...(record.purpose != null ? { purpose: record.purpose } : {})
      }
      const text = JSON.stringify(payload)
      await s.send({ type: 'offer', payload: text, signature: await signText(this.#c.privateKey, text) }, { signal: sig })
      const accept = await s.expect('accept', { signal: sig })
      if (record.dryRun) {
        await s.send({ type: 'abort', id: record.id, reason: 'dry run' }, { signal: sig }).catch(() => {})
        await s.close()
        await this.#save(record, 'offered')
        await this.#save(record, 'dry-run')
        return
      }
      await this.#save(record, 'offered')
      await this.#fail.hit('source:offered', async () => { await this.#cut(record.target) })
      await s.send({ type: 'transfer', id: record.id, token: accept.token }, { signal: sig })
      await s.expect('ok', { signal: sig })
      serving = this.#serveChunks(record)

      // pre-copy: the bulk crosses while the container still runs
      let delta: DeltaBase | undefined
      if ((req.precopy ?? this.#init.precopy ?? true) && record.wasRunning === true) {
        const preRef = `${record.imageRef as string}-pre`
        try {
          delta = await this.#deltaBase(record, spec)
          await runtime.commit(record.container, ...preRef.split(':') as [string, string])
          const before = record.transfer?.movedBytes ?? 0
          let bytes = (await this.#sendBlob(s, record, serving, 'pre:image', await runtime.saveImage(preRef), sig)).bytes
          for (const mount of spec.mounts.filter(m => m.type === 'volume')) {
            bytes += (await this.#sendBlob(s, record, serving, `pre:volume:${mount.destination}`, await runtime.getArchive(record.container, mount.destination), sig)).bytes
          }
          if (delta != null && !await this.#deltaListings(record, delta, preRef)) delta = undefined
          await s.send({ type: 'sync', id: record.id }, { signal: sig })
          await s.expect('ok', { signal: AbortSignal.any([sig, AbortSignal.timeout(PHASE_TIMEOUT_MS)]) })
          await this.#save(record, undefined, { precopy: { endedAt: Date.now(), bytes, movedBytes: (record.transfer?.movedBytes ?? 0) - before } })
        } finally {
          await runtime.removeImage(preRef).catch(() => {})
        }
      }

      // freeze: downtime starts
      const frozenAt = Date.now()
      if (record.wasRunning === true && record.wasPaused !== true) {
        if (record.consistency === 'stop') await runtime.stopContainer(record.container, req.stopTimeout ?? 10)
        else await runtime.pause(record.container)
      }
      await this.#save(record, 'frozen', { frozenAt })
      await this.#fail.hit('source:frozen', async () => { await this.#cut(record.target) })

      // snapshot: after a pre-copy only what changed since; either way only the chunks the target lacks cross
      const blobs: Manifest['blobs'] = []
      if (delta != null) {
        await this.#save(record, 'transferring')
        // the volumes first: one sent whole must be made afresh before the container exists
        for (const v of delta.volumes) {
          const changes = await deltaSince(v.dir, delta.at, v.listing, { overlay: false })
          // a plain tar cannot delete: a volume that lost files since is sent whole (its chunks mostly held)
          blobs.push(changes.deleted.length > 0
            ? await this.#sendBlob(s, record, serving, `volume:${v.destination}`, await runtime.getArchive(record.container, v.destination), sig)
            : await this.#sendBlob(s, record, serving, `delta:volume:${v.destination}`, packDelta(v.dir, changes, { layer: false, prefix: `${posix.basename(v.destination)}/` }), sig))
        }
        const layer = await deltaSince(delta.layer.dir, delta.at, delta.layer.listing, { overlay: true })
        blobs.push(await this.#sendBlob(s, record, serving, 'delta:image', packDelta(delta.layer.dir, layer, { layer: true }), sig))
      } else {
        await runtime.commit(record.container, ...(record.imageRef as string).split(':') as [string, string])
        await this.#save(record, 'transferring')
        blobs.push(await this.#sendBlob(s, record, serving, 'image', await runtime.saveImage(record.imageRef as string), sig))
        for (const mount of spec.mounts.filter(m => m.type === 'volume')) {
          blobs.push(await this.#sendBlob(s, record, serving, `volume:${mount.destination}`, await runtime.getArchive(record.container, mount.destination), sig))
        }
      }

      // prepare: the target checks every hash against this signed manifest
      const manifest: Manifest = { id: record.id, source: record.source, target: record.target, blobs }
      const manifestText = JSON.stringify(manifest)
      await s.send({ type: 'prepare', payload: manifestText, signature: await signText(this.#c.privateKey, manifestText) }, { signal: sig })
      await s.expect('prepared', { signal: AbortSignal.any([sig, AbortSignal.timeout(PHASE_TIMEOUT_MS)]) })
      await this.#save(record, 'prepared')
      await this.#fail.hit('source:prepared', async () => { await this.#cut(record.target) })
      if (sig.aborted) throw sig.reason
    } catch (err) {
      s?.abort(err as Error)
      // a cancel or a stop surfaces as whatever the interrupted call threw; report why it was interrupted
      await this.#abortSource(record, sig.aborted ? sig.reason : err)
      return
    } finally {
      this.#server.end(record.id)
    }

    // commit: the decision, then only forward
    try {
      await this.#save(record, 'committed')
      await this.#retireOriginal(record)
      await this.#fail.hit('source:committed', async () => { await this.#cut(record.target) })
      await s.send({ type: 'commit', id: record.id })
      const activated = await s.expect('activated', { signal: AbortSignal.timeout(ACTIVATE_TIMEOUT_MS) })
      await s.close()
      await this.#finishSource(record, activated.at, activated.health)
    } catch (err) {
      s.abort(err as Error)
      this.#log.warn('commit not acknowledged yet; will resend', { id: record.id, error: errorMessage(err) })
      // the resolver resends the commit until the target answers
    }
  }

  /**
   * What the final round needs to send only the changes after the pre-copy:
   * where the writable layer and the volumes live on this host, listed now.
   * Undefined (with the reason logged) when the engine does not allow it;
   * the final round then sends a whole new snapshot, of which only the new
   * chunks cross.
   */
  async #deltaBase (record: MigrationRecord, spec: ContainerSpec): Promise<DeltaBase | undefined> {
    const runtime = this.#c.runtime
    const why = (reason: string): undefined => {
      this.#log.info('pre-copy without a delta: the final round sends a whole snapshot', { id: record.id, reason })
      return undefined
    }
    const dir = await runtime.writableLayerDir(record.container).catch(() => undefined)
    if (dir == null) return why('the writable layer is not an overlay2 directory this agent can read')
    if (!await canReadXattrs()) return why('getfattr (Debian package attr) is missing')
    const volumes: DeltaBase['volumes'] = []
    for (const m of spec.mounts.filter(m => m.type === 'volume')) {
      const vdir = await runtime.volumeDir(m.source).catch(() => undefined)
      if (vdir == null) return why(`volume ${m.source} is not a local directory this agent can read`)
      volumes.push({ destination: m.destination, dir: vdir, listing: new Map() })
    }
    // the moment goes before the snapshot reads anything: whatever changes after it ships again
    return { at: Date.now(), layer: { dir, listing: new Map() }, volumes }
  }

  /**
   * What the pre-copy holds, exactly: the committed layer's own directory
   * (a listing of the container's, taken apart from the commit, could miss a
   * file made and deleted in between), and each volume's names read back from
   * the archive that was sent.
   */
  async #deltaListings (record: MigrationRecord, delta: DeltaBase, preRef: string): Promise<boolean> {
    const layerDir = await this.#c.runtime.imageLayerDir(preRef).catch(() => undefined)
    if (layerDir == null) {
      this.#log.info('pre-copy without a delta: the final round sends a whole snapshot', { id: record.id, reason: 'the committed layer is not an overlay2 directory this agent can read' })
      return false
    }
    delta.layer.listing = await listTree(layerDir)
    for (const v of delta.volumes) {
      const recipe = await this.#c.chunks.recipe(record.id, `pre:volume:${v.destination}`)
      if (recipe == null) return false
      v.listing = await archiveListing(assemble(this.#c.chunks, recipe.chunks, undefined), `${posix.basename(v.destination)}/`)
    }
    return true
  }

  /** Serve this migration's chunks to its target, within its and the node's bandwidth limits. */
  #serveChunks (record: MigrationRecord): Serving {
    const buckets = [...(record.bwlimit != null ? [new TokenBucket(record.bwlimit)] : []), ...(this.#nodeBucket != null ? [this.#nodeBucket] : [])]
    const stats = record.transfer ??= emptyStats()
    let lastUpdate = 0
    return this.#server.serve(record.id, {
      peer: record.target,
      hashes: new Set(),
      buckets,
      stats,
      corruptNext: this.#fail.armed('source:corrupt-chunk'),
      breakNext: this.#fail.armed('source:break-chunk-stream'),
      onProgress: () => {
        if (Date.now() - lastUpdate < 250) return
        lastUpdate = Date.now()
        this.#progress(record)
      }
    })
  }

  /** Cut a snapshot stream into the store and send its recipe; the target pulls what it lacks. */
  async #sendBlob (s: Session, record: MigrationRecord, serving: Serving, name: string, source: NodeJS.ReadableStream, signal: AbortSignal): Promise<Manifest['blobs'][number]> {
    try {
      return await this.#sendRecipe(s, record, serving, name, source, signal)
    } finally {
      // an engine stream left unread holds its container or image locked (an archive keeps the
      // container's lock, so even inspect waits): end it whatever happened
      (source as { destroy?: () => void }).destroy?.()
    }
  }

  async #sendRecipe (s: Session, record: MigrationRecord, serving: Serving, name: string, source: NodeJS.ReadableStream, signal: AbortSignal): Promise<Manifest['blobs'][number]> {
    await s.send({ type: 'blob', id: record.id, name }, { signal })
    let first = true
    // progress of this round (pre-copy, then the final): the image, then each volume
    let roundBytes = name.endsWith('image') ? 0 : record.bytes.moved
    let lastProgress = 0
    const result = await chunkInto(this.#c.chunks, source as AsyncIterable<Uint8Array>, async batch => {
      await s.send({ type: 'recipe', id: record.id, name, chunks: batch.map(c => [c.hash, c.size] as [string, number]) }, { signal })
      if (first && name.endsWith('image')) {
        first = false
        await this.#fail.hit('source:transfer', async () => { await this.#cut(record.target) })
      }
    }, {
      signal,
      onChunk: (hash, size) => {
        serving.hashes.add(hash)
        serving.stats.chunks++
        serving.stats.bytes += size
        roundBytes += size
        // never backwards: after a pre-copy the final round only adds what changed
        record.bytes.moved = Math.min(record.bytes.total, Math.max(record.bytes.moved, roundBytes))
        if (Date.now() - lastProgress >= 250) {
          lastProgress = Date.now()
          this.#progress(record)
        }
      }
    })
    await this.#c.chunks.putRecipe({ migration: record.id, blob: name, chunks: result.chunks, createdAt: Date.now() })
    await s.send({ type: 'blob-end', id: record.id, name, bytes: result.bytes, sha256: result.sha256 }, { signal })
    await this.#save(record)
    return { name, bytes: result.bytes, sha256: result.sha256, chunks: result.chunks.length, recipe: recipeDigest(result.chunks) }
  }

  /** Before the decision: the original runs again as it was; nothing is left of the snapshot. */
  async #abortSource (record: MigrationRecord, err: unknown): Promise<void> {
    const runtime = this.#c.runtime
    const code = (err as { code?: string })?.code
    const message = errorMessage(err)
    this.#log.warn('migration aborted', { id: record.id, error: message })
    try {
      const details = await runtime.inspect(record.container)
      if (details != null) {
        if (details.paused && record.wasPaused !== true) await runtime.unpause(record.container)
        else if (!details.running && record.wasRunning === true) await runtime.startContainer(record.container)
      }
      await runtime.removeImage(record.imageRef as string).catch(() => {})
      await runtime.removeImage(`${record.imageRef as string}-pre`).catch(() => {})
    } catch (restoreErr) {
      this.#log.error('could not restore the original after an abort', { id: record.id, error: errorMessage(restoreErr) })
    }
    await this.#save(record, 'aborted', { error: { code: typeof code === 'string' && code.startsWith('GOTO_ERR') ? code : 'GOTO_ERR_MIGRATION_FAILED', message } })
    // tell the target, best effort; it also asks us when it has prepared
    void this.#tellPeer(record, { type: 'abort', id: record.id, reason: message }).catch(() => {})
  }

  /** After the decision: the original is stopped for good and kept, renamed, as the rollback point. */
  async #retireOriginal (record: MigrationRecord): Promise<void> {
    const runtime = this.#c.runtime
    const rollbackName = record.rollbackName ?? `${record.container}-goto-rollback-${record.id.slice(0, 8)}`
    const current = await runtime.inspect(record.container) ?? await runtime.inspect(rollbackName)
    if (current == null) throw new MigrationError('GOTO_ERR_UNKNOWN_CONTAINER', `the original ${record.container} is gone`)
    if (current.running || current.paused) await runtime.kill(current.id)
    await runtime.setRestartPolicy(current.id, { Name: 'no' })
    if (current.name !== rollbackName) await runtime.rename(current.id, rollbackName)
    await this.#save(record, undefined, {
      rollbackName,
      rollbackExpiresAt: new Date(Date.now() + (this.#init.rollbackRetentionMs ?? 24 * 3600_000)).toISOString()
    })
  }

  async #finishSource (record: MigrationRecord, at: number, health: string | undefined): Promise<void> {
    await this.#c.runtime.removeImage(record.imageRef as string).catch(() => {})
    const downtimeMs = record.frozenAt != null ? Math.max(0, at - record.frozenAt) : undefined
    const healthy = health == null || health === 'healthy' || health === 'running'
    await this.#save(record, 'activated', {
      downtimeMs,
      health,
      // done: the progress is whole, whatever the estimate was
      bytes: { total: Math.max(record.bytes.total, record.bytes.moved), moved: Math.max(record.bytes.total, record.bytes.moved) },
      error: healthy ? undefined : { code: 'GOTO_ERR_ACTIVATION', message: `the container on ${record.targetNode} is ${String(health)}` }
    })
  }

  async #tellPeer (record: MigrationRecord, message: Control): Promise<Control> {
    const s = await this.#open(record.role === 'source' ? record.target : record.source, this.#shutdown.signal)
    try {
      await s.send(message)
      const reply = await s.readControl({ signal: AbortSignal.timeout(ACTIVATE_TIMEOUT_MS) })
      await s.close()
      return reply
    } catch (err) {
      s.abort(err as Error)
      throw err
    }
  }

  /** Cancel before the commit: the source as before, the target clean. */
  async cancel (id: string): Promise<MigrationRecord> {
    const record = await this.#c.journal.get(id, 'source')
    if (record == null) throw new MigrationError('GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id} started on this node`)
    if (isCommitted(record.phase)) throw new MigrationError('GOTO_ERR_ALREADY_COMMITTED', `migration ${id} is ${record.phase}; roll it back instead`)
    if (isFinal(record.phase)) return record
    this.#active.get(id)?.abort(new MigrationError('GOTO_ERR_CANCELLED', 'cancelled by request'))
    return await this.finished(id)
  }

  /** Bring the container back to the source: the target's copy is removed, the original starts under its name. */
  async rollback (id: string, actor?: string): Promise<MigrationRecord> {
    const record = await this.#c.journal.get(id, 'source')
    if (record == null) {
      const target = await this.#c.journal.get(id, 'target')
      if (target == null) throw new MigrationError('GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id} on this node`)
      // from the target: ask the source to run it
      const reply = await this.#tellPeer(target, { type: 'rollback', id })
      if (reply.type === 'error' || reply.type === 'reject') throw new MigrationError(`GOTO_ERR_${reply.code}`, reply.reason)
      return await this.#c.journal.get(id, 'target') ?? target
    }
    if (record.phase !== 'activated') throw new MigrationError('GOTO_ERR_BAD_STATE', `migration ${id} is ${record.phase}; only an activated migration rolls back`)
    const runtime = this.#c.runtime
    const point = record.rollbackName != null ? await runtime.inspect(record.rollbackName) : undefined
    if (point == null) throw new MigrationError('GOTO_ERR_NO_ROLLBACK_POINT', `the rollback point of ${id} is gone (pruned?)`)
    await this.#c.audit.append('migration.rollback-requested', { migration: id, actor })
    const reply = await this.#tellPeer(record, { type: 'rollback', id })
    if (reply.type !== 'ok') throw new MigrationError('GOTO_ERR_ROLLBACK_FAILED', `the target did not remove its copy: ${reply.type === 'error' ? reply.reason : reply.type}`)
    await runtime.rename(point.id, record.container)
    await runtime.setRestartPolicy(point.id, record.restartPolicy ?? { Name: 'no' })
    if (record.wasRunning === true) await runtime.startContainer(point.id)
    if (record.wasPaused === true) await runtime.pause(point.id)
    return await this.#save(record, 'rolled-back', { actor })
  }

  // ───────────────────────────── target ─────────────────────────────

  async #serve (stream: Stream, connection: Connection): Promise<void> {
    const remote = connection.remotePeer.toString()
    const s = session(stream)
    let record: MigrationRecord | undefined
    try {
      const first = await s.readControl({ signal: this.#shutdown.signal })
      switch (first.type) {
        case 'offer':
          record = await this.#admit(s, remote, first.payload, first.signature)
          if (record != null) await this.#receive(s, remote, record)
          return
        case 'query': {
          const mine = await this.#c.journal.get(first.id, 'source') ?? await this.#c.journal.get(first.id, 'target')
          await s.send({ type: 'outcome', id: first.id, phase: mine?.phase ?? 'unknown' })
          await s.close()
          return
        }
        case 'commit': {
          const mine = await this.#known(s, first.id, remote, 'target')
          if (mine == null) return
          await this.#activate(s, mine)
          return
        }
        case 'abort': {
          const mine = await this.#known(s, first.id, remote, 'target')
          if (mine == null) return
          if (isCommitted(mine.phase)) {
            await s.send({ type: 'error', id: mine.id, code: 'BAD_STATE', reason: `migration is ${mine.phase}` })
          } else {
            await this.#cleanTarget(mine, first.reason)
            await s.send({ type: 'ok', id: mine.id, step: 'abort' })
          }
          await s.close()
          return
        }
        case 'rollback':
          await this.#serveRollback(s, first.id, remote)
          return
        case 'transfer': {
          // a transfer belongs on its offer's stream: anything else is a replay or a guess
          const mine = await this.#c.journal.get(first.id, 'target')
          const code: RefusalCode = mine == null ? 'UNKNOWN_MIGRATION' : mine.tokenUsed === true ? 'TOKEN_USED' : mine.token !== first.token ? 'BAD_TOKEN' : 'BAD_STATE'
          await this.#c.audit.append('security.bad-token', { migration: first.id, details: { peer: remote, code } }).catch(() => {})
          await s.send({ type: 'error', id: first.id, code, reason: code === 'TOKEN_USED' ? 'the token was used already' : code === 'BAD_TOKEN' ? 'the token is wrong' : code === 'UNKNOWN_MIGRATION' ? 'no such migration was admitted' : 'a transfer must follow its offer on the same stream' })
          await s.close()
          return
        }
        default:
          await s.send({ type: 'error', id: '', code: 'BAD_STATE', reason: `a session cannot start with "${first.type}"` })
          await s.close()
      }
    } catch (err) {
      this.#log.warn('migration stream failed', { peer: remote, id: record?.id, error: errorMessage(err) })
      s.abort(err as Error)
    } finally {
      if (record != null) {
        this.#active.delete(record.id)
        this.#receiving.delete(record.id)
      }
    }
  }

  async #known (s: Session, id: string, remote: string, role: 'source' | 'target'): Promise<MigrationRecord | undefined> {
    // a session still receiving holds the live record: act on that one, never on an older copy
    const mine = (role === 'target' ? this.#receiving.get(id) : undefined) ?? await this.#c.journal.get(id, role)
    if (mine == null || (role === 'target' ? mine.source : mine.target) !== remote) {
      await s.send({ type: 'error', id, code: 'UNKNOWN_MIGRATION', reason: `no migration ${id} with this peer` })
      await s.close()
      return undefined
    }
    return mine
  }

  async #admit (s: Session, remote: string, text: string, signature: string): Promise<MigrationRecord | undefined> {
    let offer: OfferPayload
    try {
      offer = parseOfferPayload(text)
    } catch (err) {
      await s.send({ type: 'error', id: '', code: 'BAD_STATE', reason: errorMessage(err) })
      await s.close()
      return undefined
    }
    const refuse = async (code: RefusalCode, reason: string): Promise<undefined> => {
      this.#log.warn('migration refused', { id: offer.id, peer: remote, code, reason })
      await this.#c.audit.append('migration.refused', { migration: offer.id, details: { role: 'target', source: remote, code, reason, container: offer.spec.name } }).catch(() => {})
      await s.send({ type: 'reject', id: offer.id, code, reason })
      await s.close()
      return undefined
    }
    if (!this.#offers.take(remote)) {
      // no audit entry: a flood of offers must not become a flood of synced writes
      this.#log.warn('offer refused: rate limit', { id: offer.id, peer: remote })
      await s.send({ type: 'reject', id: offer.id, code: 'RATE_LIMITED', reason: `more than ${OFFER_BURST} offers at once or ${OFFER_RATE} a second from this peer; try again in ${this.#offers.retryAfter(remote)} s` })
      await s.close()
      return undefined
    }
    // one admission at a time, so two offers never both count the same free memory
    const release = await this.#admissionLock()
    let verdict
    let record: MigrationRecord | undefined
    try {
      // bounded: a hung engine call must not hold every later admission behind this one
      verdict = await Promise.race([
        this.#check(remote, offer, text, signature),
        new Promise<{ code: RefusalCode, reason: string }>(resolve => { setTimeout(resolve, ADMISSION_TIMEOUT_MS, refusal('INTERNAL', `admission took over ${ADMISSION_TIMEOUT_MS / 1000} s; try again`)).unref() })
      ])
      if (verdict == null && !offer.dryRun) record = await this.#register(remote, offer)
    } finally {
      release()
    }
    if (verdict != null) return await refuse(verdict.code, verdict.reason)
    if (record == null) {
      // a dry run: admitted, nothing kept
      await s.send({ type: 'accept', id: offer.id, token: '', expiresAt: 0 })
      await s.readControl({ signal: AbortSignal.timeout(5000) }).catch(() => undefined)
      await s.close()
      return undefined
    }
    await s.send({ type: 'accept', id: record.id, token: record.token as string, expiresAt: record.tokenExpiresAt as number })
    await this.#fail.hit('target:admitted', async () => { await this.#cut(remote) })
    return record
  }

  #admitting: Promise<void> = Promise.resolve()

  /** Wait for the admission before this one; the function returned lets the next one in. */
  async #admissionLock (): Promise<() => void> {
    const before = this.#admitting
    let release: () => void = () => {}
    this.#admitting = new Promise(resolve => { release = resolve })
    await before
    return release
  }

  /** Moves in flight from and to this node, from the journal. */
  async inFlight (): Promise<InFlight> {
    return inFlightOf(await this.#c.journal.pending())
  }

  /** An admitted offer, journalled with its token. */
  async #register (remote: string, offer: OfferPayload): Promise<MigrationRecord> {
    const now = new Date().toISOString()
    const token = randomBytes(32).toString('base64url')
    const record: MigrationRecord = {
      id: offer.id,
      role: 'target',
      phase: 'admitted',
      phases: [{ phase: 'admitted', at: now }],
      source: remote,
      target: this.#me,
      sourceNode: this.#c.gossip.view.get(remote)?.state.name ?? remote,
      targetNode: this.#c.gossip.localState().name,
      container: offer.spec.name,
      name: offer.spec.name,
      consistency: offer.consistency,
      dryRun: false,
      purpose: offer.purpose,
      createdAt: now,
      updatedAt: now,
      bytes: { total: offer.diskBytes, moved: 0 },
      spec: offer.spec as ContainerSpec,
      imageRef: imageRefFor(offer.spec.name, offer.id),
      token,
      tokenExpiresAt: Date.now() + TOKEN_TTL_MS,
      tokenUsed: false,
      createdVolumes: []
    }
    this.#active.set(record.id, new AbortController())
    this.#receiving.set(record.id, record)
    await this.#c.journal.put(record)
    await this.#c.audit.append('migration.admitted', { migration: record.id, details: { role: 'target', source: remote, container: record.name } })
    this.#log.info('migration phase', { id: record.id, role: 'target', phase: 'admitted' })
    return record
  }

  /** The admission checks, in order; undefined admits. */
  async #check (remote: string, offer: OfferPayload, text: string, signature: string): Promise<{ code: RefusalCode, reason: string } | undefined> {
    const runtime = this.#c.runtime
    const peer = this.#c.gossip.view.get(remote)
    if (peer == null || (peer.status !== 'alive' && peer.status !== 'suspect')) return refusal('NOT_MEMBER', 'the source is not a live member of this node\'s mesh view')
    if (offer.source !== remote || !await verifyText(remote, text, signature)) return refusal('BAD_SIGNATURE', 'the offer\'s signature does not hold for the sending peer\'s key')
    if (offer.target !== this.#me) return refusal('WRONG_TARGET', 'the offer names another target')
    if (this.#c.runtime.description === 'none') return refusal('NO_RUNTIME', 'this node runs no containers')
    if (this.#c.gossip.localState().state !== 'active') return refusal('DRAINING', 'this node is draining or leaving')
    if (await this.#c.journal.get(offer.id, 'target') != null) return refusal('BAD_TOKEN', 'this migration was offered before')
    const spec = offer.spec as ContainerSpec
    const violation = checkPolicy(spec, policyFor(this.#init.policy ?? {}, remote))
    if (violation != null) return refusal(violation.code, violation.reason)
    // by name only: the engine also resolves a name like "f15" as the prefix of another container's id
    if ((await runtime.inspect(spec.name))?.name === spec.name) return refusal('NAME_TAKEN', `a container named "${spec.name}" exists on this node`)
    const stale = await this.#staleRollbackPoint(spec)
    for (const m of spec.mounts.filter(m => m.type === 'volume')) {
      if (await runtime.volumeExists(m.source) && stale?.spec?.mounts.some(v => v.type === 'volume' && v.source === m.source) !== true) {
        return refusal('VOLUME_EXISTS', `a volume named "${m.source}" exists on this node`)
      }
    }
    const inUse = await runtime.portsInUse()
    for (const p of publishedPorts(spec)) {
      if (inUse.has(`${p.hostPort}/${p.proto}`) || (p.proto === 'tcp' && !await portFree(p.hostPort, p.hostIp))) {
        return refusal('PORT_TAKEN', `host port ${p.hostPort}/${p.proto} is taken on this node`)
      }
    }
    const capacity = await runtime.capacity()
    if (offer.memoryBytes > capacity.memFree) return refusal('INSUFFICIENT_MEMORY', `the container asks for ${offer.memoryBytes} bytes of memory, ${capacity.memFree} are free`)
    const need = Math.ceil(offer.diskBytes * (this.#init.diskMarginFactor ?? 1.2)) + (this.#init.diskMarginBytes ?? 64 * 1024 * 1024)
    if (need > capacity.diskFree) return refusal('INSUFFICIENT_DISK', `the move needs ${need} bytes of disk with margin, ${capacity.diskFree} are free on the engine's data root`)
    if (this.#init.admission != null) return await this.#init.admission(offer, await this.inFlight())
    return undefined
  }

  async #receive (s: Session, remote: string, record: MigrationRecord): Promise<void> {
    const runtime = this.#c.runtime
    const spec = record.spec as ContainerSpec
    const signal = this.#shutdown.signal
    const stats = emptyStats()
    let lastUpdate = 0
    const fetcher = new Fetcher({
      libp2p: this.#c.libp2p,
      store: this.#c.chunks,
      log: this.#log,
      peer: remote,
      migration: record.id,
      streams: this.#init.streams,
      stats,
      signal,
      onProgress: () => {
        record.bytes.moved = stats.heldBytes + stats.movedBytes
        if (Date.now() - lastUpdate < 250) return
        lastUpdate = Date.now()
        this.#progress(record)
      },
      onRefused: async hash => {
        await this.#c.audit.append('security.bad-chunk', { migration: record.id, details: { peer: remote, chunk: hash } }).catch(() => {})
      },
      afterStore: async () => { await this.#fail.hit('target:chunk-stored', async () => { await this.#cut(remote) }) }
    })
    const unpacker = new Unpacker({
      runtime,
      store: this.#c.chunks,
      whenStored: async hash => { await fetcher.whenStored(hash) },
      migration: record.id,
      spec,
      imageRef: record.imageRef as string,
      beforeVolumes: async () => {
        const stale = await this.#staleRollbackPoint(spec)
        if (stale != null) await this.#retireRollbackPoint(stale, `superseded by migration ${record.id}, which brings ${spec.name} back`)
      },
      onVolume: async name => {
        if (!(record.createdVolumes ?? []).includes(name)) record.createdVolumes?.push(name)
        await this.#save(record)
      }
    })
    let receiving = false
    let committed = false
    try {
      // the token: single use, bound to this migration and this peer, expiring
      const transfer = await s.readControl({ signal: AbortSignal.any([signal, AbortSignal.timeout(TOKEN_TTL_MS)]) })
      if (transfer.type === 'abort') {
        await this.#cleanTarget(record, transfer.reason)
        return
      }
      if (transfer.type !== 'transfer' || transfer.id !== record.id) throw new MigrationError('GOTO_ERR_BAD_STATE', `expected the transfer of ${record.id}`)
      const fresh = await this.#c.journal.get(record.id, 'target') as MigrationRecord
      const refusalOf = fresh.tokenUsed === true ? 'TOKEN_USED' : transfer.token !== fresh.token ? 'BAD_TOKEN' : Date.now() > (fresh.tokenExpiresAt ?? 0) ? 'TOKEN_EXPIRED' : undefined
      if (refusalOf != null) {
        await this.#c.audit.append('security.bad-token', { migration: record.id, details: { peer: remote, code: refusalOf } }).catch(() => {})
        await s.send({ type: 'error', id: record.id, code: refusalOf, reason: refusalOf === 'TOKEN_USED' ? 'the token was used already' : refusalOf === 'BAD_TOKEN' ? 'the token is wrong' : 'the token expired' })
        if (!fresh.tokenUsed) await this.#cleanTarget(record, refusalOf)
        await s.close()
        return
      }
      record.imageExisted = await runtime.imageExists(record.imageRef as string)
      record.transfer = stats
      await this.#save(record, 'receiving', { tokenUsed: true })
      await s.send({ type: 'ok', id: record.id, step: 'transfer' })

      for (;;) {
        const message = await s.readControl({ signal: AbortSignal.any([signal, AbortSignal.timeout(PHASE_TIMEOUT_MS)]) })
        if (fetcher.failed != null) throw fetcher.failed
        if (message.type === 'blob') {
          unpacker.begin(message.name)
        } else if (message.type === 'recipe') {
          const refs = message.chunks.map(([hash, size]) => ({ hash, size }))
          // no more than the offer admitted, twice over (a pre-copy round, then a whole final snapshot) with room
          const announced = stats.bytes + refs.reduce((sum, r) => sum + r.size, 0)
          if (announced > announcedCap(record.bytes.total)) {
            throw new MigrationError('GOTO_ERR_INSUFFICIENT_DISK', `the source sends ${announced} bytes, more than the ${record.bytes.total} it offered allow`)
          }
          const missing = new Set(await this.#c.chunks.missing(refs.map(r => r.hash)))
          for (const ref of refs) {
            stats.chunks++
            stats.bytes += ref.size
            if (!missing.has(ref.hash)) {
              stats.held++
              stats.heldBytes += ref.size
              record.bytes.moved += ref.size
            }
          }
          // wanted before the unpacker sees them, so it waits for exactly these
          fetcher.want(refs.filter(r => missing.has(r.hash)))
          unpacker.recipe(message.name, refs)
          if (!receiving) {
            receiving = true
            await this.#fail.hit('target:receiving', async () => { await this.#cut(remote) })
          }
        } else if (message.type === 'blob-end') {
          const blob = unpacker.end(message.name, { bytes: message.bytes, sha256: message.sha256 })
          await this.#c.chunks.putRecipe({ migration: record.id, blob: message.name, chunks: blob.chunks, createdAt: Date.now() })
        } else if (message.type === 'sync') {
          // the pre-copied image and volumes are in the engine, while the source still runs
          await fetcher.drained()
          await unpacker.settled()
          await this.#save(record, undefined, { preLoaded: unpacker.preLoaded })
          await s.send({ type: 'ok', id: record.id, step: 'sync' })
        } else if (message.type === 'prepare') {
          const manifest = parseManifest(message.payload)
          if (manifest.id !== record.id || manifest.source !== remote || !await verifyText(remote, message.payload, message.signature)) {
            await this.#c.audit.append('security.bad-signature', { migration: record.id, details: { peer: remote } }).catch(() => {})
            throw new MigrationError('GOTO_ERR_BAD_SIGNATURE', 'the manifest\'s signature does not hold')
          }
          if (manifest.blobs.filter(b => b.name === 'image' || b.name === 'delta:image').length !== 1) throw new MigrationError('GOTO_ERR_BAD_STATE', 'the manifest must list one image')
          for (const blob of manifest.blobs) {
            const mine = unpacker.blobs.get(blob.name)
            if (mine?.end == null || mine.end.sha256 !== blob.sha256 || mine.end.bytes !== blob.bytes || mine.chunks.length !== blob.chunks || recipeDigest(mine.chunks) !== blob.recipe) {
              throw new MigrationError('GOTO_ERR_BAD_CHUNK', `blob ${blob.name} does not match the manifest`)
            }
          }
          await fetcher.drained()
          await unpacker.finish()
          await this.#save(record, undefined, { containerCreated: true })
          await this.#save(record, 'prepared')
          await this.#fail.hit('target:prepared', async () => { await this.#cut(remote) })
          await s.send({ type: 'prepared', id: record.id })
        } else if (message.type === 'commit') {
          committed = true
          await this.#activate(s, record)
          return
        } else if (message.type === 'abort') {
          await this.#cleanTarget(record, message.reason)
          return
        } else {
          throw new MigrationError('GOTO_ERR_BAD_STATE', `unexpected "${message.type}" while receiving`)
        }
      }
    } catch (err) {
      const code = (err as { code?: string }).code
      const wire = (typeof code === 'string' && code.startsWith('GOTO_ERR_') ? code.slice(9) : 'INTERNAL') as RefusalCode
      await s.send({ type: 'error', id: record.id, code: (['BAD_CHUNK', 'BAD_SIGNATURE', 'BAD_STATE', 'BAD_ARCHIVE', 'INSUFFICIENT_DISK'] as string[]).includes(wire) ? wire : 'INTERNAL', reason: errorMessage(err) }).catch(() => {})
      s.abort(err as Error)
      fetcher.close(err as Error)
      await unpacker.abandon(err as Error)
      // not prepared: the source cannot have decided, so clean up now; prepared: wait for its word
      if (!committed && (record.phase === 'admitted' || record.phase === 'receiving')) await this.#cleanTarget(record, errorMessage(err))
      throw err
    } finally {
      fetcher.close()
      await this.#c.chunks.flush().catch(() => {})
    }
  }

  /** The target's half of the commit: start, check it runs (and is healthy), answer. Idempotent. */
  async #activate (s: Session, record: MigrationRecord): Promise<void> {
    if (record.phase === 'activated') {
      await s.send({ type: 'activated', id: record.id, at: Date.parse(record.phases.at(-1)?.at ?? '') || Date.now(), health: record.health })
      await s.close()
      return
    }
    if (record.phase !== 'prepared' && record.phase !== 'committed') {
      await s.send({ type: 'error', id: record.id, code: 'BAD_STATE', reason: `migration is ${record.phase}, not prepared` })
      await s.close()
      return
    }
    await this.#save(record, 'committed')
    await this.#fail.hit('target:committed', async () => { await this.#cut(record.source) })
    const { at, health } = await this.#startAndCheck(record)
    await this.#save(record, 'activated', { health })
    await this.#fail.hit('target:activated', async () => { await this.#cut(record.source) })
    await s.send({ type: 'activated', id: record.id, at, health })
    await s.close()
  }

  async #startAndCheck (record: MigrationRecord): Promise<{ at: number, health: string }> {
    const runtime = this.#c.runtime
    await runtime.startContainer(record.name)
    const at = Date.now()
    const deadline = at + ACTIVATE_TIMEOUT_MS
    for (;;) {
      const details = await runtime.inspect(record.name)
      if (details == null) return { at, health: 'missing' }
      if (!details.running) return { at, health: details.status }
      if (details.health == null) {
        // no healthcheck: it runs; give it a moment to fall over if it will
        await new Promise(resolve => setTimeout(resolve, 300))
        const again = await runtime.inspect(record.name)
        return { at, health: again?.running === true ? 'running' : again?.status ?? 'missing' }
      }
      if (details.health === 'healthy' || details.health === 'unhealthy' || Date.now() > deadline) return { at, health: details.health }
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  }

  /** Leave nothing of an uncommitted migration: no container, volume or image it made. */
  async #cleanTarget (record: MigrationRecord, reason: string): Promise<void> {
    const runtime = this.#c.runtime
    if (record.containerCreated === true || await runtime.inspect(record.name).then(d => d?.inspect?.Config?.Image === record.imageRef, () => false)) {
      await runtime.removeContainer(record.name, { volumes: false }).catch(() => {})
    }
    await runtime.removeContainer(fillContainerName(record.id), { volumes: false }).catch(() => {})
    for (const volume of record.createdVolumes ?? []) await runtime.removeVolume(volume).catch(() => {})
    if (record.imageExisted !== true) await runtime.removeImage(record.imageRef as string).catch(() => {})
    await runtime.removeImage(`${record.imageRef as string}-pre`).catch(() => {})
    if (!isFinal(record.phase)) await this.#save(record, 'aborted', { error: { code: 'GOTO_ERR_ABORTED', message: reason } })
  }

  async #serveRollback (s: Session, id: string, remote: string): Promise<void> {
    const asTarget = await this.#c.journal.get(id, 'target')
    if (asTarget != null && asTarget.source === remote) {
      if (asTarget.phase !== 'activated' && asTarget.phase !== 'rolled-back') {
        await s.send({ type: 'error', id, code: 'BAD_STATE', reason: `migration is ${asTarget.phase}` })
      } else {
        await this.#c.runtime.removeContainer(asTarget.name, { volumes: false })
        for (const volume of asTarget.createdVolumes ?? []) await this.#c.runtime.removeVolume(volume).catch(() => {})
        await this.#c.runtime.removeImage(asTarget.imageRef as string).catch(() => {})
        if (asTarget.phase !== 'rolled-back') await this.#save(asTarget, 'rolled-back')
        await s.send({ type: 'ok', id, step: 'rollback' })
      }
      await s.close()
      return
    }
    const asSource = await this.#c.journal.get(id, 'source')
    if (asSource != null && asSource.target === remote) {
      try {
        await this.rollback(id, `peer ${remote}`)
        await s.send({ type: 'ok', id, step: 'rollback' })
      } catch (err) {
        await s.send({ type: 'error', id, code: 'BAD_STATE', reason: errorMessage(err) })
      }
      await s.close()
      return
    }
    await s.send({ type: 'error', id, code: 'UNKNOWN_MIGRATION', reason: `no migration ${id} with this peer` })
    await s.close()
  }

  // ───────────────────────────── resolver ─────────────────────────────

  /** Finish what broken sessions and restarts left: the journal says what each record needs. */
  async #resolve (): Promise<void> {
    if (this.#resolving || this.#shutdown.signal.aborted) return
    this.#resolving = true
    try {
      for (const record of await this.#c.journal.pending()) {
        if (this.#active.has(record.id)) continue
        try {
          await this.#resolveOne(record)
        } catch (err) {
          this.#log.debug('could not resolve migration yet', { id: record.id, role: record.role, phase: record.phase, error: errorMessage(err) })
        }
      }
      // rollback points expire on a scale of hours: no need to scan every record every second
      const retention = this.#init.rollbackRetentionMs ?? 24 * 3600_000
      if (Date.now() - this.#prunedAt >= Math.min(60_000, Math.max(1000, retention / 2))) {
        this.#prunedAt = Date.now()
        await this.#prune()
        const gc = await this.#c.chunks.gc({ retentionMs: this.#init.chunkRetentionMs ?? 24 * 3600_000, graceMs: 60_000, live: id => this.#active.has(id) })
        if (gc.removed > 0) this.#log.info('chunk store collected', { ...gc })
      }
    } finally {
      this.#resolving = false
    }
  }

  async #resolveOne (record: MigrationRecord): Promise<void> {
    if (record.role === 'source') {
      if (!isCommitted(record.phase)) {
        await this.#abortSource(record, new MigrationError('GOTO_ERR_INTERRUPTED', `the migration was interrupted in phase ${record.phase}`))
        return
      }
      // committed: make sure the original is retired, then resend the commit
      await this.#retireOriginal(record)
      const reply = await this.#tellPeer(record, { type: 'commit', id: record.id })
      if (reply.type === 'activated') await this.#finishSource(record, reply.at, reply.health)
      else throw new Error(`target answered ${reply.type}`)
      return
    }
    switch (record.phase) {
      case 'admitted':
      case 'receiving':
        await this.#cleanTarget(record, `the session broke in phase ${record.phase}`)
        return
      case 'prepared': {
        const reply = await this.#tellPeer(record, { type: 'query', id: record.id })
        if (reply.type !== 'outcome') return
        if (reply.phase === 'committed' || reply.phase === 'activated') {
          // the source decided; it will also resend the commit, and activation is idempotent
          await this.#save(record, 'committed')
          const { health } = await this.#startAndCheck(record)
          await this.#save(record, 'activated', { health })
        } else if (reply.phase === 'aborted' || reply.phase === 'unknown' || reply.phase === 'dry-run') {
          await this.#cleanTarget(record, `the source says ${reply.phase}`)
        }
        return
      }
      case 'committed': {
        const { health } = await this.#startAndCheck(record)
        await this.#save(record, 'activated', { health })
      }
    }
  }

  /** Remove rollback points whose retention ran out. */
  async #prune (): Promise<void> {
    const now = Date.now()
    for (const record of await this.#c.journal.all()) {
      if (record.role !== 'source' || record.phase !== 'activated' || record.rollbackName == null) continue
      if (record.rollbackExpiresAt == null || Date.parse(record.rollbackExpiresAt) > now) continue
      await this.#retireRollbackPoint(record, 'retention ran out')
    }
  }

  /**
   * The rollback point this node keeps of a container that a migration now
   * brings back (same name): it is stale, since the container moved on, and
   * its volumes carry the names the returning container needs.
   */
  async #staleRollbackPoint (spec: ContainerSpec): Promise<MigrationRecord | undefined> {
    const records = await this.#c.journal.all()
    return records.find(r => r.role === 'source' && r.phase === 'activated' && r.rollbackName != null && r.container === spec.name)
  }

  async #retireRollbackPoint (record: MigrationRecord, reason: string): Promise<void> {
    const point = record.rollbackName != null ? await this.#c.runtime.inspect(record.rollbackName) : undefined
    if (point != null) await this.#c.runtime.removeContainer(point.id, { volumes: true })
    for (const m of record.spec?.mounts ?? []) if (m.type === 'volume') await this.#c.runtime.removeVolume(m.source).catch(() => {})
    await this.#c.audit.append('migration.pruned', { migration: record.id, details: { rollbackName: record.rollbackName, reason } }).catch(() => {})
    await this.#save(record, undefined, { rollbackName: undefined, rollbackExpiresAt: undefined })
  }
}

export function migrations (init: MigrationsInit = {}): (components: MigrationsComponents) => Migrations {
  return (components) => new Migrations(components, init)
}

