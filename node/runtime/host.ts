import { statfs } from 'node:fs/promises'
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os'
import type { HostCapacity } from './runtime.ts'

/** Capacity of this host read from the OS, disk measured at `path`. */
export async function hostCapacity (path: string): Promise<HostCapacity> {
  const fs = await statfs(path)
  return {
    cpus: availableParallelism(),
    load1: loadavg()[0] ?? 0,
    memTotal: totalmem(),
    memFree: freemem(),
    diskTotal: fs.blocks * fs.bsize,
    diskFree: fs.bavail * fs.bsize
  }
}
