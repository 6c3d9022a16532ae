/**
 * Measuring tools shared by the bench and its worker processes: one clock for
 * every process, a seeded PRNG, percentiles, the event-loop delay monitor and
 * the kernel's per-process I/O counters.
 */
import { readFileSync } from 'node:fs'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

/**
 * Milliseconds on a clock every process on this host shares: the process's
 * time origin (wall clock at start) plus the monotonic time since. Timestamps
 * taken in two processes can be subtracted.
 */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** mulberry32: a small, fast, seeded PRNG; same seed, same sequence. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [lo, hi) from `random`. */
export function pick (random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo))
}

/** The p-th percentile (0–100) by nearest rank; undefined for no samples. */
export function percentile (samples: readonly number[], p: number): number | undefined {
  if (samples.length === 0) return undefined
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export interface Summary {
  n: number
  p50?: number
  p99?: number
  max?: number
}

export function summarize (samples: readonly number[]): Summary {
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max: percentile(samples, 100) }
}

/** Event-loop delay of one event loop over a window, in ms. */
export interface EldStats {
  p50: number
  p99: number
  max: number
}

/** The worst of several windows or event loops: each figure's maximum. */
export function worstEld (stats: readonly EldStats[]): EldStats | undefined {
  if (stats.length === 0) return undefined
  return {
    p50: Math.max(...stats.map(s => s.p50)),
    p99: Math.max(...stats.map(s => s.p99)),
    max: Math.max(...stats.map(s => s.max))
  }
}

/** Sampling interval of the event-loop delay monitor, ms. */
export const ELD_RESOLUTION_MS = 10

export interface EldMonitor {
  reset(): void
  read(): EldStats
}

/**
 * node:perf_hooks monitorEventLoopDelay. Its histogram records the time
 * between two ticks of a `resolution` ms timer, interval included, so the
 * delay is that value minus the resolution (floored at 0).
 */
export function eldMonitor (): EldMonitor {
  const histogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
  histogram.enable()
  const ms = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS)
  return {
    reset () { histogram.reset() },
    read () {
      if (histogram.count === 0) return { p50: 0, p99: 0, max: 0 }
      return { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) }
    }
  }
}

/**
 * Bytes this process has passed to write()/writev() and got from read()
 * (`wchar`/`rchar` of /proc/self/io). Node writes TCP sockets with
 * write()/writev(), so over a window where the process does nothing but gossip
 * `wchar` is the bytes it put on its connections: libp2p payload with pnet,
 * Noise and Yamux framing, without TCP/IP headers. It also counts IPC and log
 * lines written in the window, which the bench keeps to nearly nothing.
 */
export interface IoCounters {
  wchar: number
  rchar: number
}

export function readIo (pid: number | 'self' = 'self'): IoCounters {
  const fields = new Map<string, number>()
  for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
    const [key, value] = line.split(':')
    if (key != null && value != null) fields.set(key.trim(), Number(value))
  }
  return { wchar: fields.get('wchar') ?? 0, rchar: fields.get('rchar') ?? 0 }
}

/**
 * CPU time (user + system) a process has used, in seconds, from
 * /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
 */
export function readCpuSeconds (pid: number | 'self' = 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name (field 2) may hold spaces; count fields after its ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * The whole machine's CPU time in clock ticks, all CPUs summed
 * (/proc/stat): busy (user, nice, system, irq, softirq, steal) and total.
 * Over a window, busy ÷ total is how loaded the machine was, whoever used it.
 */
export function readHostCpu (): { busy: number, total: number } {
  const cols = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cols
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal }
}

/**
 * Bytes sent on the loopback interface, all processes of this network
 * namespace together, TCP/IP headers included (`/proc/net/dev`, `lo`, tx).
 * Only a cross-check: anything else using loopback at the time is counted too.
 */
export function loopbackTxBytes (): number | undefined {
  try {
    for (const line of readFileSync('/proc/net/dev', 'utf8').split('\n')) {
      const m = /^\s*lo:\s*(.*)$/.exec(line)
      if (m == null) continue
      const cols = m[1]!.trim().split(/\s+/).map(Number)
      return cols[8]
    }
  } catch {}
  return undefined
}
