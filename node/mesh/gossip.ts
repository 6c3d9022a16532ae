/**
 * The gossip service: tells the mesh what this node runs and has free, keeps
 * the mesh view of everyone else, and keeps this node connected to every
 * live peer.
 *
 * - A full NodeState goes out on any change of inventory or status, and on
 *   every new connection (direct exchange, with the members each side knows).
 * - A small Heartbeat goes out every `heartbeatMs`; a peer that sees a newer
 *   seq than it holds fetches the full state directly.
 * - A lost connection makes a peer suspect at once; silence does too, later;
 *   a suspect peer that stays silent for `goneAfterMs` is gone. A leaving node
 *   sends its "leaving" state to every peer directly before it goes.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId } from '@libp2p/interface'
import {
  STATE_PROTOCOL, MAX_INBOUND_STREAMS, MAX_PEER_HINTS, answerStateExchange, decodeStateMessage, encodeStateMessage, exchangeState, isFresh,
  type Capacity, type ContainerEntry, type ExchangeSide, type Heartbeat, type NodeState, type NodeStatus
} from '../../protocols/node-state/index.ts'
import type { GossipsubMessage } from '@libp2p/gossipsub'
import { MeshView } from './view.ts'
import { DialError, InvalidMultiaddrError } from '../errors.ts'
import { errorMessage, type Logger } from '../logger.ts'
import type { GossipTiming } from '../config.ts'
import type { ContainerRuntime, ContainerSummary } from '../runtime/runtime.ts'
import type { Store } from '../store.ts'
import type { MeshNode } from './libp2p.ts'

export interface GossipComponents {
  libp2p: MeshNode
  runtime: ContainerRuntime
  store: Store
  logger: Logger
}

export interface GossipInit {
  name: string
  topic: string
  timing: GossipTiming
  /** Addresses dialled at start besides the remembered peers. */
  bootstrap?: string[]
  /** Delay before an inventory change is read, so a burst of events costs one read. @default 50 */
  debounceMs?: number
  /** How often the node retries peers it lost and the bootstrap list when alone. @default 5000 */
  redialMs?: number
  /** Figures added to the host's capacity at every read: what the node offers and has in flight. */
  capacityExtra?: (host: Capacity) => Partial<Capacity> | Promise<Partial<Capacity>>
}

export interface Gossip {
  readonly view: MeshView
  start(): Promise<void>
  stop(): Promise<void>
  /** This node's current full state. */
  localState(): NodeState
  /** Dial a peer by multiaddr, swap states, and return its peer id. */
  join(addr: string, options?: { signal?: AbortSignal }): Promise<string>
  /** Tell every peer this node is leaving; the caller stops the node after. */
  leave(options?: { signal?: AbortSignal }): Promise<void>
  /** Re-read the inventory now and publish it if it changed. */
  refresh(): Promise<void>
  /** Re-read the capacity and send a heartbeat now (after a reservation changed). */
  announce(): Promise<void>
  /** Mark this node draining (nobody sends it work) or active again; gossiped at once. */
  setStatus(status: 'active' | 'draining'): void
}

export function parseMultiaddr (addr: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new InvalidMultiaddrError(`"${addr}" is not a multiaddr (e.g. /ip4/10.0.0.2/tcp/4001/p2p/12D3KooW…): ${errorMessage(err)}`)
  }
  const protos = ma.getComponents().map(c => c.name)
  if (!protos.includes('tcp')) throw new InvalidMultiaddrError(`"${addr}" has no /tcp/ part; agents speak TCP`)
  return ma
}

function toEntry (c: ContainerSummary): ContainerEntry {
  return {
    id: c.id,
    name: c.name,
    image: c.image,
    state: c.state as ContainerEntry['state'],
    created: c.created,
    sizeRw: c.sizeRw,
    sizeRootFs: c.sizeRootFs,
    labels: Object.fromEntries(Object.entries(c.labels).slice(0, 64).map(([k, v]) => [k.slice(0, 512), v.slice(0, 512)])),
    volumes: c.volumes.slice(0, 64),
    movable: c.movable,
    ...(c.mem != null ? { mem: c.mem } : {}),
    ...(c.cpu != null ? { cpu: c.cpu } : {})
  }
}

const EMPTY_CAPACITY: Capacity = { cpus: 0, load1: 0, memTotal: 0, memFree: 0, diskTotal: 0, diskFree: 0 }

export function gossip (init: GossipInit): (components: GossipComponents) => Gossip {
  return (components) => new GossipService(components, init)
}

class GossipService implements Gossip {
  readonly view: MeshView
  readonly #c: GossipComponents
  readonly #init: GossipInit
  readonly #log: Logger
  readonly #exchanges = new Map<string, Promise<void>>()
  readonly #dialing = new Set<string>()
  #incarnation = 0
  #seq = 0
  #status: NodeStatus = 'active'
  #containers: ContainerEntry[] = []
  #capacity: Capacity = EMPTY_CAPACITY
  #timers: NodeJS.Timeout[] = []
  #debounce: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #refreshAgain = false
  #shutdown = new AbortController()
  #unsubscribeRuntime: (() => void) | undefined
  #running = false

  constructor (components: GossipComponents, init: GossipInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger
    this.view = new MeshView(init.timing)
    this.view.addEventListener('peer:status', (evt) => {
      const { peerId, from, to, record } = evt.detail
      this.#log.info('peer status', { peer: peerId, name: record.state.name, from, to })
      if (to === 'left') void this.#c.store.forgetPeer(peerId).catch(() => {})
    })
  }

  get #libp2p (): MeshNode { return this.#c.libp2p }

  localState (): NodeState {
    return {
      v: 1,
      type: 'state',
      peerId: this.#libp2p.peerId.toString(),
      incarnation: this.#incarnation,
      seq: this.#seq,
      time: Date.now(),
      name: this.#init.name,
      addrs: this.#libp2p.getMultiaddrs().map(ma => ma.toString()).slice(0, 32),
      state: this.#status,
      capacity: this.#capacity,
      runtime: this.#c.runtime.description.slice(0, 256),
      containers: this.#containers
    }
  }

  #heartbeat (): Heartbeat {
    return {
      v: 1,
      type: 'hb',
      peerId: this.#libp2p.peerId.toString(),
      incarnation: this.#incarnation,
      seq: this.#seq,
      time: Date.now(),
      state: this.#status,
      capacity: this.#capacity
    }
  }

  async start (): Promise<void> {
    this.#shutdown = new AbortController()
    this.#incarnation = Date.now()
    this.#seq = 0
    this.#status = 'active'
    this.#capacity = await this.#readCapacity()
    this.#containers = (await this.#c.runtime.listContainers()).map(toEntry)

    const libp2p = this.#libp2p
    const pubsub = libp2p.services.pubsub
    await libp2p.handle(STATE_PROTOCOL, async (stream, connection) => {
      const remote = connection.remotePeer.toString()
      try {
        await answerStateExchange(stream, remote, () => this.#exchangeSide(), (side) => { this.#takeExchange(side) }, { signal: this.#shutdown.signal })
        this.view.connected(remote, Date.now())
      } catch (err) {
        this.#log.warn('state exchange refused', { peer: remote, error: errorMessage(err) })
      }
    }, { maxInboundStreams: MAX_INBOUND_STREAMS })

    pubsub.addEventListener('gossipsub:message', this.#onMessage)
    pubsub.subscribe(this.#init.topic)
    libp2p.addEventListener('connection:open', this.#onConnectionOpen)
    libp2p.addEventListener('peer:connect', this.#onPeerConnect)
    libp2p.addEventListener('peer:disconnect', this.#onPeerDisconnect)
    this.#unsubscribeRuntime = this.#c.runtime.onChange(() => { this.#scheduleRefresh() })

    const t = this.#init.timing
    this.#timers.push(setInterval(() => { void this.#beat().catch(() => {}) }, t.heartbeatMs))
    this.#timers.push(setInterval(() => { this.view.tick(Date.now()) }, Math.max(50, Math.min(500, Math.floor(t.goneAfterMs / 4)))))
    this.#timers.push(setInterval(() => { void this.#redial().catch((err: unknown) => { this.#log.debug('redial failed', { error: errorMessage(err) }) }) }, this.#init.redialMs ?? 5000))
    this.#running = true

    void this.#dialInitial().catch((err: unknown) => { this.#log.debug('initial dials failed', { error: errorMessage(err) }) })
  }

  async stop (): Promise<void> {
    this.#running = false
    this.#shutdown.abort()
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    clearTimeout(this.#debounce)
    this.#unsubscribeRuntime?.()
    const libp2p = this.#libp2p
    libp2p.removeEventListener('connection:open', this.#onConnectionOpen)
    libp2p.removeEventListener('peer:connect', this.#onPeerConnect)
    libp2p.removeEventListener('peer:disconnect', this.#onPeerDisconnect)
    libp2p.services.pubsub.removeEventListener('gossipsub:message', this.#onMessage)
    await this.#refreshing?.catch(() => {})
  }

  async #dialInitial (): Promise<void> {
    const known = await this.#c.store.knownPeers()
    const targets = [
      ...(this.#init.bootstrap ?? []),
      ...known.flatMap(p => p.addrs.slice(0, 4))
    ]
    await Promise.all(targets.map(async addr => {
      try {
        await this.#dialAddr(addr)
      } catch (err) {
        this.#log.debug('initial dial failed', { addr, error: errorMessage(err) })
      }
    }))
  }

  async #dialAddr (addr: string): Promise<PeerId> {
    const ma = parseMultiaddr(addr)
    const conn = await this.#libp2p.dial(ma, { signal: AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(5000)]) })
    return conn.remotePeer
  }

  /** Keep connected: retry lost peers, and the bootstrap list while alone. */
  async #redial (): Promise<void> {
    if (!this.#running) return
    for (const record of this.view.peers()) {
      if ((record.status === 'suspect' || record.status === 'gone') && !this.#isConnected(record.peerId)) {
        this.#dialPeer(record.peerId, record.state.addrs)
      }
    }
    if (this.#libp2p.getConnections().length === 0) await this.#dialInitial()
  }

  #isConnected (peerId: string): boolean {
    return this.#libp2p.getConnections(peerIdFromString(peerId)).length > 0
  }

  /** Dial a peer we heard of but are not connected to; at most one dial per peer at a time. */
  #dialPeer (peerId: string, addrs: string[]): void {
    if (!this.#running || this.#dialing.has(peerId) || peerId === this.#libp2p.peerId.toString()) return
    const mas = addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
    if (mas.length === 0) return
    this.#dialing.add(peerId)
    this.#log.debug('dialling', { peer: peerId })
    void (async () => {
      try {
        await this.#libp2p.peerStore.merge(peerIdFromString(peerId), { multiaddrs: mas.map(ma => ma.decapsulateCode(421)) })
        await this.#libp2p.dial(peerIdFromString(peerId), { signal: AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(5000)]) })
      } catch (err) {
        this.#log.debug('dial failed', { peer: peerId, error: errorMessage(err) })
      } finally {
        this.#dialing.delete(peerId)
      }
    })()
  }

  readonly #onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    if (connection.direction !== 'outbound') return
    // a failed exchange is logged in #exchangeWith; the next heartbeat or redial tries again
    void this.#exchangeWith(connection.remotePeer.toString()).catch(() => {})
  }

  readonly #onPeerConnect = (evt: CustomEvent<PeerId>): void => {
    this.view.connected(evt.detail.toString(), Date.now())
  }

  readonly #onPeerDisconnect = (evt: CustomEvent<PeerId>): void => {
    const peerId = evt.detail.toString()
    this.view.disconnected(peerId, Date.now())
    const record = this.view.get(peerId)
    if (record != null && record.status !== 'left' && this.#running) {
      // one quick try: a connection can drop while the peer lives on
      setTimeout(() => { if (!this.#isConnected(peerId)) this.#dialPeer(peerId, record.state.addrs) }, 200).unref()
    }
  }

  /** Swap full states with a connected peer; one exchange per peer at a time. */
  async #exchangeWith (peerId: string): Promise<void> {
    const running = this.#exchanges.get(peerId)
    if (running != null) return await running
    const task = (async () => {
      try {
        const stream = await this.#libp2p.dialProtocol(peerIdFromString(peerId), STATE_PROTOCOL, { signal: AbortSignal.any([this.#shutdown.signal, AbortSignal.timeout(5000)]) })
        const remote = await exchangeState(stream, peerId, this.#exchangeSide(), { signal: this.#shutdown.signal })
        this.#takeExchange(remote)
        this.view.connected(peerId, Date.now())
      } catch (err) {
        this.#log.debug('state exchange failed', { peer: peerId, error: errorMessage(err) })
        throw err
      } finally {
        this.#exchanges.delete(peerId)
      }
    })()
    this.#exchanges.set(peerId, task)
    return await task
  }

  /** Our state and the live members we know, for a push-pull exchange. */
  #exchangeSide (): ExchangeSide {
    return {
      state: this.localState(),
      peers: this.view.peers()
        .filter(p => p.status === 'alive' || p.status === 'suspect')
        .slice(0, MAX_PEER_HINTS)
        .map(p => ({ peerId: p.peerId, addrs: p.state.addrs }))
    }
  }

  #takeExchange (side: ExchangeSide): void {
    this.#log.debug('states exchanged', { peer: side.state.peerId, hints: side.peers.length })
    this.#takeState(side.state)
    if (side.state.state === 'leaving') return
    for (const hint of side.peers) {
      const record = this.view.get(hint.peerId)
      if (record?.status === 'left' || record?.status === 'alive') continue
      if (!this.#isConnected(hint.peerId)) this.#dialPeer(hint.peerId, hint.addrs)
    }
  }

  #takeState (state: NodeState): void {
    if (state.peerId === this.#libp2p.peerId.toString()) return
    const before = this.view.get(state.peerId)?.state.addrs.join(' ')
    const { accepted } = this.view.applyState(state, Date.now())
    if (!accepted) return
    if (state.state !== 'leaving') {
      if (before !== state.addrs.join(' ')) {
        void this.#c.store.rememberPeer({ peerId: state.peerId, addrs: state.addrs, name: state.name, lastSeen: Date.now() }).catch(() => {})
      }
      if (!this.#isConnected(state.peerId)) this.#dialPeer(state.peerId, state.addrs)
    }
  }

  readonly #onMessage = (evt: CustomEvent<GossipsubMessage>): void => {
    const msg = evt.detail.msg
    if (msg.topic !== this.#init.topic) return
    if (msg.type !== 'signed') {
      this.#log.warn('unsigned state message dropped')
      return
    }
    let message
    try {
      message = decodeStateMessage(msg.data)
    } catch (err) {
      this.#log.warn('bad state message', { from: msg.from.toString(), error: errorMessage(err) })
      return
    }
    const from = msg.from.toString()
    if (message.peerId !== from) {
      this.#log.warn('state message names another peer than its signer', { from, names: message.peerId })
      return
    }
    if (!isFresh(message, Date.now())) {
      // a replay from after gossipsub forgot the message's id, or a clock far off: either way not news
      this.#log.warn('stale state message dropped', { from, type: message.type, ageMs: Date.now() - message.time })
      return
    }
    if (message.type === 'state') {
      this.#takeState(message)
    } else if (this.view.applyHeartbeat(message, Date.now())) {
      if (this.#isConnected(from)) {
        void this.#exchangeWith(from).catch(() => {})
      } else {
        const addrs = this.view.get(from)?.state.addrs
        if (addrs != null) {
          this.#dialPeer(from, addrs)
        } else {
          // a member we never met: the peer that relayed it knows its addresses
          const relay = evt.detail.propagationSource?.toString()
          if (relay != null && relay !== from && this.#isConnected(relay)) void this.#exchangeWith(relay).catch(() => {})
        }
      }
    }
  }

  #publish (message: NodeState | Heartbeat): void {
    if (!this.#running && message.state !== 'leaving') return
    try {
      const pubsub = this.#libp2p.services.pubsub
      pubsub.publish(this.#init.topic, encodeStateMessage(message)).catch((err: unknown) => {
        this.#log.debug('publish failed', { error: errorMessage(err) })
      })
    } catch (err) {
      this.#log.debug('publish failed', { error: errorMessage(err) })
    }
  }

  async #readCapacity (): Promise<Capacity> {
    const host = await this.#c.runtime.capacity()
    return { ...host, ...await this.#init.capacityExtra?.(host) }
  }

  async #beat (): Promise<void> {
    try {
      this.#capacity = await this.#readCapacity()
    } catch (err) {
      this.#log.debug('capacity read failed', { error: errorMessage(err) })
    }
    this.#publish(this.#heartbeat())
  }

  async announce (): Promise<void> {
    await this.#beat()
  }

  setStatus (status: 'active' | 'draining'): void {
    if (this.#status === 'leaving' || this.#status === status) return
    this.#status = status
    this.#bump()
  }

  #scheduleRefresh (): void {
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => { void this.refresh() }, this.#init.debounceMs ?? 50)
  }

  async refresh (): Promise<void> {
    if (this.#refreshing != null) {
      this.#refreshAgain = true
      return await this.#refreshing
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#refreshAgain = false
          const containers = (await this.#c.runtime.listContainers()).map(toEntry)
          if (JSON.stringify(containers) !== JSON.stringify(this.#containers)) {
            this.#containers = containers
            this.#bump()
          }
        } while (this.#refreshAgain && this.#running)
      } catch (err) {
        this.#log.warn('inventory read failed', { error: errorMessage(err) })
      } finally {
        this.#refreshing = undefined
      }
    })()
    return await this.#refreshing
  }

  /** A new full state: next seq, published at once. */
  #bump (): void {
    this.#seq++
    this.#publish(this.localState())
  }

  async join (addr: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    const ma = parseMultiaddr(addr)
    let peer: PeerId
    try {
      const conn = await this.#libp2p.dial(ma, { signal: AbortSignal.any([this.#shutdown.signal, options.signal ?? AbortSignal.timeout(10_000)]) })
      peer = conn.remotePeer
    } catch (err) {
      throw new DialError(`cannot join through ${addr}: ${errorMessage(err)} (is the agent running there, and does it hold the same swarm key?)`)
    }
    const peerId = peer.toString()
    try {
      await this.#exchangeWith(peerId)
    } catch (err) {
      throw new DialError(`connected to ${peerId} but it did not answer the state exchange: ${errorMessage(err)}`)
    }
    return peerId
  }

  async leave (options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#status === 'leaving') return
    this.#status = 'leaving'
    this.#seq++
    const state = this.localState()
    this.#running = false
    this.#publish(state)
    const signal = AbortSignal.any([options.signal ?? AbortSignal.timeout(3000), AbortSignal.timeout(3000)])
    const peers = new Set(this.#libp2p.getConnections().map(c => c.remotePeer.toString()))
    await Promise.allSettled([...peers].map(async peerId => {
      const stream = await this.#libp2p.dialProtocol(peerIdFromString(peerId), STATE_PROTOCOL, { signal })
      await exchangeState(stream, peerId, { state, peers: [] }, { signal })
    }))
  }
}
