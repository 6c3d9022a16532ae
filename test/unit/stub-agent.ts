/**
 * A stub agent for API tests through `app.request()`: one local container
 * (web-1), one migration record, three audit entries, and the two event
 * sources (mesh view, migrations) as real emitters the tests dispatch on.
 */
import { TypedEventEmitter } from '@libp2p/interface'
import type { ApiAgent } from '../../api/app.ts'
import { compilePattern } from '../../node/agent.ts'
import { DialError } from '../../node/errors.ts'
import { parseMultiaddr } from '../../node/mesh/gossip.ts'
import type { MeshViewEvents } from '../../node/mesh/view.ts'
import type { MigrationRecord } from '../../node/migration/journal.ts'
import { MigrationError, type MigrationsEvents } from '../../node/migration/service.ts'

export const TOKEN = 'test-token-0123456789abcdef'
export const capacity = { cpus: 2, load1: 0, memTotal: 1, memFree: 1, diskTotal: 1, diskFree: 1 }

const EPOCH = new Date(0).toISOString()

export const record: MigrationRecord = {
  id: '01a21b22-3118-716a-9b46-1f1b69f76a64',
  role: 'source',
  phase: 'planned',
  phases: [{ phase: 'planned', at: EPOCH }],
  source: '12D3KooWStub',
  target: '12D3KooWOther',
  sourceNode: 'stub',
  targetNode: 'other',
  container: 'web-1',
  name: 'web-1',
  consistency: 'freeze',
  dryRun: false,
  createdAt: EPOCH,
  updatedAt: EPOCH,
  bytes: { total: 1000, moved: 0 }
}

/** An id that is well formed and unknown. */
export const UNKNOWN_ID = '01a21b22-3118-716a-9b46-000000000000'

const entries = [1, 2, 3].map(seq => ({ origin: '12D3KooWStub', seq, time: new Date(seq * 1000).toISOString(), prev: '0'.repeat(64), kind: 'node.joined' }))

export type StubAgent = ApiAgent & {
  joined: string[]
  acts: string[]
  left: number
  paused: boolean
  draining: boolean
  view: TypedEventEmitter<MeshViewEvents>
  events: TypedEventEmitter<MigrationsEvents>
}

function unknown (id: string): MigrationError {
  return new MigrationError('GOTO_ERR_UNKNOWN_MIGRATION', `no migration ${id} on this node`)
}

export function stubAgent (): StubAgent {
  const view = new TypedEventEmitter<MeshViewEvents>()
  const events = new TypedEventEmitter<MigrationsEvents>()
  const migrations = Object.assign(events, {
    begin: async (req: { container: string }) => {
      if (req.container !== 'web-1') throw new MigrationError('GOTO_ERR_UNKNOWN_CONTAINER', `no container "${req.container}" on this node`)
      return record
    },
    finished: async () => ({ ...record, phase: 'activated' as const }),
    list: async () => [record],
    get: async (id: string) => id === record.id ? record : undefined,
    cancel: async (id: string) => {
      if (id !== record.id) throw unknown(id)
      return { ...record, phase: 'aborted' as const }
    },
    rollback: async (id: string) => {
      if (id !== record.id) throw unknown(id)
      return { ...record, phase: 'rolled-back' as const }
    }
  })
  const appended = new Map<string, number>()
  const stub: StubAgent = {
    joined: [],
    acts: [],
    left: 0,
    view,
    events,
    peerId: '12D3KooWStub',
    info: () => ({ peerId: '12D3KooWStub', name: 'stub', version: '0', state: 'active' as const, addrs: [], runtime: 'none', capacity, containers: 0, startedAt: new Date(0).toISOString(), meshId: 'm' }),
    peers: () => [],
    containers: (match?: string) => {
      const pattern = compilePattern(match)
      return [{ id: 'a'.repeat(64), name: 'web-1', image: 'busybox', state: 'running' as const, created: 0, sizeRw: 0, sizeRootFs: 0, labels: {}, volumes: [], movable: true, node: 'stub', peerId: '12D3KooWStub' }]
        .filter(c => pattern == null || pattern.test(c.name))
    },
    join: async (addr: string) => {
      parseMultiaddr(addr)
      if (addr.includes('/tcp/9/')) throw new DialError('cannot join through it')
      stub.joined.push(addr)
      return { peerId: '12D3KooWOther' }
    },
    leave: async () => { stub.left++ },
    audit: {
      list: async (q: { limit?: number, offset?: number } = {}) => entries.slice(q.offset ?? 0, (q.offset ?? 0) + (q.limit ?? entries.length)),
      verify: async () => [],
      refusedCount: 0,
      append: async (kind: string) => {
        stub.acts.push(kind)
        appended.set(kind, (appended.get(kind) ?? 0) + 1)
        return {} as any
      },
      vector: async () => ({ '12D3KooWStub': entries.length }),
      appended
    },
    migrations,
    gossip: { view },
    rebalancer: {
      status: () => ({ enabled: true, paused: stub.paused, draining: stub.draining }),
      preview: async () => ({
        node: 'stub',
        status: { enabled: true, paused: stub.paused, draining: false },
        decision: { action: 'hold' as const, reason: 'load 0.100 is within the watermarks' },
        mean: 0.1,
        band: [0, 0.2] as [number, number],
        loads: [{ peerId: '12D3KooWStub', name: 'stub', load: 0.1, containers: 1 }],
        candidates: [],
        skipped: [{ container: 'web-1', reason: 'not labelled goto.movable=true' }]
      }),
      step: async () => ({ at: EPOCH, action: 'hold' as const, reason: 'load 0.100 is within the watermarks' }),
      pause: async () => { stub.paused = true; return stub.rebalancer.status() },
      resume: async () => { stub.paused = false; return stub.rebalancer.status() }
    },
    paused: false,
    draining: false,
    drainAndLeave: async (options) => {
      stub.draining = true
      const report = { done: true, moved: [{ container: 'web-1', target: '12D3KooWOther', targetName: 'other' }], stayed: [], startedAt: 0, endedAt: 1 }
      options.onProgress?.(report, false)
      options.onProgress?.(report, true)
      stub.left++
      return report
    }
  }
  return stub
}
