/**
 * Failpoints for the fault tests: `GOTO_FAILPOINTS="source:frozen=crash,target:receiving=cut"`
 * makes the agent kill itself (SIGKILL, as a crash) or cut its connection to
 * the peer when a migration reaches that point. Unset in production, where
 * every call is a no-op.
 */
export type FailAction = 'crash' | 'cut'

export class CutError extends Error {
  override name = 'CutError'
  code = 'GOTO_ERR_FAILPOINT_CUT'
}

export interface Failpoints {
  /** Crash here, or throw CutError after cutting via `cut`. */
  hit(point: string, cut: () => Promise<void>): Promise<void>
}

export function parseFailpoints (value: string | undefined): Map<string, FailAction> {
  const map = new Map<string, FailAction>()
  for (const part of (value ?? '').split(',').map(s => s.trim()).filter(Boolean)) {
    const [point, action] = part.split('=')
    if (point != null && (action === 'crash' || action === 'cut')) map.set(point, action)
  }
  return map
}

export function failpoints (value = process.env.GOTO_FAILPOINTS): Failpoints {
  const map = parseFailpoints(value)
  const fired = new Set<string>()
  return {
    async hit (point, cut) {
      const action = map.get(point)
      if (action == null || fired.has(point)) return
      fired.add(point)
      if (action === 'crash') {
        process.kill(process.pid, 'SIGKILL')
        await new Promise(() => {})
      }
      await cut()
      throw new CutError(`failpoint ${point}: connection cut`)
    }
  }
}
