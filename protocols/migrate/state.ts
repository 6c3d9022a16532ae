/**
 * The phases of a migration on each side, and the moves between them. A
 * phase is final when nothing more will happen to the migration without a
 * person asking (a rollback).
 *
 *   source: planned → offered → frozen → transferring → prepared → committed → activated
 *   target: admitted → receiving → prepared → committed → activated
 *   either, before committed: → aborted (cancelled, refused, failed)
 *   either, after activated:  → rolled-back
 */
export type Role = 'source' | 'target'

export const PHASES = ['planned', 'offered', 'admitted', 'frozen', 'receiving', 'transferring', 'prepared', 'committed', 'activated', 'aborted', 'rolled-back', 'dry-run'] as const
export type Phase = typeof PHASES[number]

const SOURCE: Record<Phase, Phase[]> = {
  planned: ['offered', 'aborted'],
  offered: ['frozen', 'aborted', 'dry-run'],
  frozen: ['transferring', 'aborted'],
  transferring: ['prepared', 'aborted'],
  prepared: ['committed', 'aborted'],
  committed: ['activated'],
  activated: ['rolled-back'],
  admitted: [],
  receiving: [],
  aborted: [],
  'rolled-back': [],
  'dry-run': []
}

const TARGET: Record<Phase, Phase[]> = {
  admitted: ['receiving', 'aborted'],
  receiving: ['prepared', 'aborted'],
  prepared: ['committed', 'aborted'],
  committed: ['activated'],
  activated: ['rolled-back'],
  planned: [],
  offered: [],
  frozen: [],
  transferring: [],
  aborted: [],
  'rolled-back': [],
  'dry-run': []
}

export function canMove (role: Role, from: Phase, to: Phase): boolean {
  return (role === 'source' ? SOURCE : TARGET)[from].includes(to)
}

export function isFinal (phase: Phase): boolean {
  return phase === 'activated' || phase === 'aborted' || phase === 'rolled-back' || phase === 'dry-run'
}

/** True once the decision to move is taken: from here the migration only goes forward. */
export function isCommitted (phase: Phase): boolean {
  return phase === 'committed' || phase === 'activated' || phase === 'rolled-back'
}
