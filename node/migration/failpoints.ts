/**
 * Failpoints for the fault tests: `GOTO_FAILPOINTS="source:frozen=crash,target:receiving=cut"`
 * makes the agent kill itself (SIGKILL, as a crash) or cut its connection to
 * the peer when a migration reaches that point; `point=on` arms a fault the
 * code at that point injects itself (a corrupted chunk, a broken stream).
 * `point=cut@N` fires at the Nth time the point is reached. Each fires once
 * per process. Unset in production, where every call is a no-op.
 */
export type FailAction = 'crash' | 'cut' | 'on'

export class CutError extends Error {
  override name = 'CutError'
  code = 'GOTO_ERR_FAILPOINT_CUT'
}

export interface Failpoints {
  /** Crash here, or throw CutError after cutting via `cut`. */
  hit(point: string, cut: () => Promise<void>): Promise<void>
  /** Whether an `on` fault is armed at `point`; true once. */
  armed(point: string): boolean
}

export function parseFailpoints (value: string | undefined): Map<string, { action: FailAction, at: number }> {
  const map = new Map<string, { action: FailAction, at: number }>()
  for (const part of (value ?? '').split(',').map(s => s.trim()).filter(Boolean)) {
    const [point, spec] = part.split('=')
    const [action, at] = (spec ?? '').split('@')
    if (point != null && (action === 'crash' || action === 'cut' || action === 'on')) map.set(point, { action, at: Math.max(1, Number(at ?? 1) || 1) })
  }
  return map
}

export function failpoints (value = process.env.GOTO_FAILPOINTS): Failpoints {
  const map = parseFailpoints(value)
  const fired = new Set<string>()
  const reached = new Map<string, number>()
  return {
    armed (point) {
      if (map.get(point)?.action !== 'on' || fired.has(point)) return false
      fired.add(point)
      return true
    },
    async hit (point, cut) {
      const entry = map.get(point)
      if (entry == null || entry.action === 'on' || fired.has(point)) return
      const n = (reached.get(point) ?? 0) + 1
      reached.set(point, n)
      if (n < entry.at) return
      fired.add(point)
      const action = entry.action
      if (action === 'crash') {
        process.kill(process.pid, 'SIGKILL')
        await new Promise(() => {})
      }
      await cut()
      throw new CutError(`failpoint ${point}: connection cut`)
    }
  }
}
