/**
 * The rebalancer service over a real LevelDB store, audit log and journal,
 * with the mesh view and the migration engine stubbed: pause kept across a
 * restart, what it gossips, admission of rebalance offers while paused, and a
 * refusal that makes it plan again elsewhere at once.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { TypedEventEmitter } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { createAuditLog, type AuditLog } from '../../node/audit/log.ts'
import { createJournal } from '../../node/migration/journal.ts'
import { DEFAULT_POLICY, type RebalancePolicy } from '../../node/rebalance/decide.ts'
import { rebalancer, type RebalancerComponents } from '../../node/rebalance/service.ts'
import { createLogger } from '../../node/logger.ts'
import type { Capacity, ContainerEntry, NodeState } from '../../protocols/node-state/index.ts'
import type { MigrationRecord } from '../../node/migration/journal.ts'
import type { MigrationsEvents } from '../../node/migration/service.ts'
import type { OfferPayload } from '../../protocols/migrate/index.ts'

const GiB = 1024 ** 3
const dirs: string[] = []
const dbs: Array<Level<string, unknown>> = []
after(async () => {
  for (const db of dbs) await db.close().catch(() => {})
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const policy: RebalancePolicy = { ...DEFAULT_POLICY, intervalMs: 3_600_000, movable: 'all', weights: { memReserved: 1, memUsed: 0, cpu: 0, disk: 0, containers: 0 }, capacity: { memoryBytes: 4 * GiB, containers: 100 } }

function capacity (extra: Partial<Capacity> = {}): Capacity {
  return { cpus: 4, load1: 0, memTotal: 16 * GiB, memFree: 8 * GiB, diskTotal: 100 * GiB, diskFree: 90 * GiB, memAlloc: 4 * GiB, maxContainers: 100, memInFlight: 0, incoming: 0, outgoing: 0, ...extra }
}

function entry (name: string, mem: number): ContainerEntry {
  return { id: name.padEnd(12, '0').replace(/[^0-9a-f]/g, 'a'), name, image: 'busybox', state: 'running', created: 0, sizeRw: 0, sizeRootFs: 1000, labels: {}, volumes: [], movable: true, mem, cpu: 0 }
}

function state (peerId: string, name: string, containers: ContainerEntry[], cap = capacity()): NodeState {
  return { v: 1, type: 'state', peerId, incarnation: 1, seq: 1, time: 0, name, addrs: [], state: 'active', capacity: cap, runtime: 'docker', containers }
}

async function setup (dir?: string, peerCapacity = capacity()): Promise<{ dir: string, db: Level<string, unknown>, audit: AuditLog, components: RebalancerComponents, begun: string[], finish: (record: Partial<MigrationRecord>) => void }> {
  const path = dir ?? await mkdtemp(join(tmpdir(), 'goto-rebalance-'))
  if (dir == null) dirs.push(path)
  const db = new Level<string, unknown>(path, { valueEncoding: 'json' })
  await db.open()
  dbs.push(db)
  const key = await generateKeyPair('Ed25519')
  const audit = createAuditLog(db, peerIdFromPrivateKey(key).toString(), key)
  const self = state('me', 'me', [entry('a1', 1 * GiB), entry('a2', 1 * GiB), entry('a3', 1 * GiB)])
  const peers = [state('p1', 'p1', [], peerCapacity), state('p2', 'p2', [entry('b1', 256 * 1024 ** 2)], peerCapacity)]
  const begun: string[] = []
  let finishNext: (record: MigrationRecord) => void = () => {}
  const events = new TypedEventEmitter<MigrationsEvents>()
  const migrations = Object.assign(events, {
    inFlight: async () => ({ incoming: 0, outgoing: 0, memInFlight: 0 }),
    begin: async (req: { container: string, target: string }) => {
      begun.push(`${req.container}→${req.target}`)
      return { id: `m${begun.length}` } as MigrationRecord
    },
    finished: async (id: string) => await new Promise<MigrationRecord>(resolve => { finishNext = (r) => { resolve({ ...r, id }) } })
  })
  const components = {
    gossip: {
      localState: () => self,
      view: { peers: () => peers.map(p => ({ peerId: p.peerId, status: 'alive', nodeStatus: 'active', state: p, capacity: p.capacity })) },
      refresh: async () => {},
      announce: async () => {},
      setStatus: () => {}
    },
    migrations,
    journal: createJournal(db),
    runtime: { description: 'docker 24', listContainers: async () => [], inspect: async () => undefined },
    audit,
    db,
    logger: createLogger('test', { level: 'error' })
  } as unknown as RebalancerComponents
  return { dir: path, db, audit, components, begun, finish: (r) => { finishNext(r as MigrationRecord) } }
}

describe('rebalancer service', () => {
  it('keeps a pause across a restart, logs it, and holds while paused', async () => {
    const first = await setup()
    const r1 = rebalancer({ policy })(first.components)
    await r1.start()
    assert.equal((await r1.pause('alice')).paused, true)
    const held = await r1.step()
    assert.equal(held.action, 'hold')
    assert.match(held.reason, /paused/)
    await r1.stop()
    await first.db.close()
    const second = await setup(first.dir)
    const r2 = rebalancer({ policy })(second.components)
    await r2.start()
    assert.equal(r2.status().paused, true, 'still paused after a restart')
    assert.equal((await r2.resume('bob')).paused, false)
    await r2.stop()
    const kinds = (await second.audit.list()).map(e => [e.kind, e.actor])
    assert.deepEqual(kinds.filter(([k]) => String(k).startsWith('rebalance.')), [['rebalance.paused', 'alice'], ['rebalance.resumed', 'bob']])
  })

  it('gossips what it offers and what is in flight; a node without containers offers nothing', async () => {
    const { components } = await setup()
    const r = rebalancer({ policy })(components)
    // its three containers may all move (movable: all, none arrived by a migration)
    assert.deepEqual(await r.capacityExtra(capacity()), { memAlloc: 4 * GiB, maxContainers: 100, incoming: 0, outgoing: 0, memInFlight: 0, sheddable: 3 })
    const byHost = rebalancer({ policy: { ...policy, capacity: { containers: 10 } } })(components)
    assert.equal((await byHost.capacityExtra(capacity())).memAlloc, 16 * GiB)
    const none = rebalancer({ policy })({ ...components, runtime: { ...components.runtime, description: 'none' } })
    assert.equal((await none.capacityExtra(capacity())).memAlloc, 0)
  })

  it('refuses rebalance offers while paused, not a person\'s', async () => {
    const { components } = await setup()
    const r = rebalancer({ policy })(components)
    await r.start()
    await r.pause()
    const offer = (purpose: 'rebalance' | 'manual'): OfferPayload => ({ id: 'x', source: 'p1', target: 'me', time: 0, spec: { name: 'c', image: 'i', config: {}, hostConfig: { MemoryReservation: 128 * 1024 ** 2 }, mounts: [] }, diskBytes: 1000, memoryBytes: 0, consistency: 'freeze', dryRun: false, purpose })
    assert.equal((await r.admission(offer('rebalance'), { incoming: 0, outgoing: 0, memInFlight: 0 }))?.code, 'PAUSED')
    assert.equal(await r.admission(offer('manual'), { incoming: 0, outgoing: 0, memInFlight: 0 }), undefined)
    await r.resume()
    assert.equal((await r.admission(offer('rebalance'), { incoming: 1, outgoing: 0, memInFlight: 0 }))?.code, 'TARGET_BUSY')
    await r.stop()
  })

  it('writes the move and its reason to the log, and after a refusal plans again at once, leaving that target out', async () => {
    const { components, audit, begun, finish } = await setup()
    const r = rebalancer({ policy })(components)
    await r.start()
    const first = await r.step()
    assert.equal(first.action, 'move')
    assert.equal(begun.length, 1)
    const [container, target] = begun[0]!.split('→') as [string, string]
    assert.equal(target, 'p1', 'the emptiest peer first')
    assert.match(first.reason, /over the high watermark/)
    assert.equal(r.status().moving, 'm1')
    assert.equal((await r.step()).action, 'hold', 'one move at a time')
    finish({ phase: 'aborted', error: { code: 'GOTO_ERR_TARGET_BUSY', message: 'p1 is taking another move' } })
    // the refusal is logged and the next plan, at once, picks the other peer for that container
    for (let i = 0; i < 100 && begun.length < 2; i++) await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(begun.length, 2)
    assert.notEqual(begun[1], `${container}→p1`)
    const log = await audit.list()
    const move = log.find(e => e.kind === 'rebalance.move')
    assert.equal((move?.details as any).container, container)
    assert.match((move?.details as any).reason, /moving a\d .* to p1/)
    const refused = log.find(e => e.kind === 'rebalance.refused')
    assert.deepEqual([(refused?.details as any).code, (refused?.details as any).targetName], ['TARGET_BUSY', 'p1'])
    finish({ phase: 'activated' })
    await r.stop()
  })

  it('a node that wants to shed load and cannot says why in the log, once for each kind of reason', async () => {
    // the peers offer 512 MiB each: none has room for a 1 GiB container
    const { components, audit, begun } = await setup(undefined, capacity({ memAlloc: 512 * 1024 ** 2 }))
    const r = rebalancer({ policy })(components)
    await r.start()
    for (let i = 0; i < 3; i++) assert.equal((await r.step()).action, 'hold')
    assert.equal(begun.length, 0)
    const holds = (await audit.list()).filter(e => e.kind === 'rebalance.hold')
    assert.equal(holds.length, 1)
    assert.match((holds[0]?.details as any).reason, /over, but no peer below the mean has room for any movable container/)
    await r.stop()
  })
})
