/**
 * The timings the agents run with, read from the agent's own code rather than
 * copied into the bench, so the report and the bench's waits follow the agent
 * when its defaults change:
 *
 * - gossip timing: `DEFAULT_GOSSIP` (node/config.ts), with `--heartbeat-ms`;
 * - the connection monitor's ping interval and minimum ping timeout: read from
 *   a mesh node built by the agent's own `createMeshNode` (never started), so
 *   they are whatever node/mesh/libp2p.ts configures or libp2p defaults to.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { generateKey } from '@libp2p/pnet'
import { DEFAULT_GOSSIP } from '../../node/config.ts'
import { createMeshNode } from '../../node/mesh/libp2p.ts'

export interface AgentTiming {
  /** GossipInit.debounceMs default; createAgent does not expose it. */
  debounceMs: number
  heartbeatMs: number
  suspectAfterMs: number
  goneAfterMs: number
  /** The gossip's view tick (gossip.ts: goneAfter / 4, within 50–500 ms). */
  viewTickMs: number
  /** libp2p connection monitor: ping interval; null if it could not be read. */
  connectionPingMs: number | null
  /** libp2p connection monitor: the least time a ping may take before the connection is aborted; null if unread. */
  connectionPingTimeoutMinMs: number | null
}

/** The connection monitor of a mesh node as the agent builds it (libp2p internals, read defensively). */
async function connectionMonitor (): Promise<{ pingMs: number | null, timeoutMinMs: number | null }> {
  try {
    const swarmKey = new Uint8Array(95)
    generateKey(swarmKey)
    const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), swarmKey, listen: [], topics: [] })
    try {
      const monitor = (node as unknown as { components?: { connectionMonitor?: { pingIntervalMs?: unknown, timeout?: { minTimeout?: unknown } } } })
        .components?.connectionMonitor
      const num = (v: unknown): number | null => typeof v === 'number' && Number.isFinite(v) ? v : null
      return { pingMs: num(monitor?.pingIntervalMs), timeoutMinMs: num(monitor?.timeout?.minTimeout) }
    } finally {
      await node.stop()
    }
  } catch {
    return { pingMs: null, timeoutMinMs: null }
  }
}

export async function agentTiming (heartbeatMs: number = DEFAULT_GOSSIP.heartbeatMs): Promise<AgentTiming> {
  const monitor = await connectionMonitor()
  return {
    debounceMs: 50,
    heartbeatMs,
    suspectAfterMs: DEFAULT_GOSSIP.suspectAfterMs,
    goneAfterMs: DEFAULT_GOSSIP.goneAfterMs,
    viewTickMs: Math.max(50, Math.min(500, Math.floor(DEFAULT_GOSSIP.goneAfterMs / 4))),
    connectionPingMs: monitor.pingMs,
    connectionPingTimeoutMinMs: monitor.timeoutMinMs
  }
}

/**
 * How long after the soak's last resume anything that stop caused can still
 * show: a silence long enough to make it suspect (suspectAfter), or a ping
 * sent while it was stopped timing out; then goneAfter, and a view tick.
 */
export function soakTailMs (t: AgentTiming): number {
  return Math.max(10_000, Math.max(t.suspectAfterMs, t.connectionPingTimeoutMinMs ?? 0) + t.goneAfterMs + t.viewTickMs)
}

/** The idle window: two periods of the slowest periodic traffic (heartbeats, connection pings), at least 10 s. */
export function idleWindowMs (t: AgentTiming): number {
  return Math.max(10_000, 2 * Math.max(t.heartbeatMs, t.connectionPingMs ?? 0))
}
