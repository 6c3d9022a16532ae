/**
 * The migration journal: one record per migration per side, in LevelDB
 * (sublevel `migrations`), rewritten at every phase. The decision to commit
 * is written with `sync` so it survives a crash of the host, not only of the
 * agent. On start the agent resumes or finishes every record that is not final.
 */
import type { Level } from 'level'
import { canMove, isFinal, type Phase, type Role } from '../../protocols/migrate/index.ts'
import type { ContainerSpec } from './spec.ts'
import type { TransferStats } from './transfer.ts'
import { GotoError } from '../errors.ts'

export interface MigrationRecord {
  id: string
  role: Role
  phase: Phase
  phases: Array<{ phase: Phase, at: string }>
  source: string
  target: string
  sourceNode: string
  targetNode: string
  /** The container's name on the source. */
  container: string
  /** Its name on the target. */
  name: string
  consistency: 'freeze' | 'stop'
  dryRun: boolean
  createdAt: string
  updatedAt: string
  actor?: string
  /** Who wanted the move. @default 'manual' */
  purpose?: 'manual' | 'rebalance' | 'drain'
  error?: { code: string, message: string }
  /** Bytes expected (the estimate the offer carried) and bytes moved so far (fetched or already held). */
  bytes: { total: number, moved: number }
  /** Chunks and bytes: in the recipes, already held by the target, sent, on the wire, refused. */
  transfer?: TransferStats
  /** The pre-copy round, while the container still ran: when it ended and what it moved. */
  precopy?: { endedAt: number, bytes: number, movedBytes: number }
  /** Bytes a second, this migration's own limit. */
  bwlimit?: number
  frozenAt?: number
  /** From the freeze to the target's start. */
  downtimeMs?: number
  spec?: ContainerSpec
  /** The tag of the snapshot image on both sides. */
  imageRef?: string
  health?: string
  // source only
  wasRunning?: boolean
  wasPaused?: boolean
  restartPolicy?: { Name: string, MaximumRetryCount?: number }
  rollbackName?: string
  rollbackExpiresAt?: string
  // target only
  token?: string
  tokenExpiresAt?: number
  tokenUsed?: boolean
  imageExisted?: boolean
  /** The pre-copied image is loaded and the volumes are created and filled. */
  preLoaded?: boolean
  createdVolumes?: string[]
  containerCreated?: boolean
}

export class InvalidTransitionError extends GotoError {
  override name = 'InvalidTransitionError'
  override code = 'GOTO_ERR_INVALID_TRANSITION'
}

export interface Journal {
  get(id: string, role: Role): Promise<MigrationRecord | undefined>
  put(record: MigrationRecord, options?: { sync?: boolean }): Promise<void>
  /** Move to `phase`, checking the move is allowed, and persist. */
  move(record: MigrationRecord, phase: Phase, patch?: Partial<MigrationRecord>): Promise<MigrationRecord>
  all(): Promise<MigrationRecord[]>
  pending(): Promise<MigrationRecord[]>
}

export function createJournal (db: Level<string, unknown>): Journal {
  const records = db.sublevel<string, MigrationRecord>('migrations', { valueEncoding: 'json' })
  const key = (id: string, role: Role): string => `${id}!${role}`
  const journal: Journal = {
    async get (id, role) {
      return await records.get(key(id, role))
    },
    async put (record, options = {}) {
      record.updatedAt = new Date().toISOString()
      await records.put(key(record.id, record.role), record, { sync: options.sync === true } as any)
    },
    async move (record, phase, patch = {}) {
      if (record.phase !== phase && !canMove(record.role, record.phase, phase)) {
        throw new InvalidTransitionError(`migration ${record.id} (${record.role}) cannot move from ${record.phase} to ${phase}`)
      }
      Object.assign(record, patch)
      if (record.phase !== phase) {
        record.phase = phase
        record.phases.push({ phase, at: new Date().toISOString() })
      }
      await journal.put(record, { sync: phase === 'committed' })
      return record
    },
    async all () {
      return await records.values().all()
    },
    async pending () {
      return (await records.values().all()).filter(r => !isFinal(r.phase))
    }
  }
  return journal
}
