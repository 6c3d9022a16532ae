/**
 * Process bookkeeping for the harness: everything it starts lives under one
 * root folder and names that folder on its command line (dockerd, its
 * containerd and shims, the agents), so a crashed or interrupted run can be
 * found and ended by scanning /proc, and its mounts by /proc/self/mountinfo.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

export const HARNESS_BASE = process.env.GOTO_HARNESS_DIR ?? '/tmp/goto-harness'

/** Pids of processes whose command line mentions `path`. */
export function processesUnder (path: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (cmdline.includes(path)) pids.push(pid)
    } catch {}
  }
  return pids
}

export function mountsUnder (path: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .map(line => line.split(' ')[4] ?? '')
      .filter(mount => mount.startsWith(path + '/'))
      .sort((a, b) => b.length - a.length)
  } catch {
    return []
  }
}

/** Kill every process under `root`, unmount what is mounted there, delete it. Synchronous, for exit handlers. */
export function destroyRoot (root: string): void {
  for (let round = 0; round < 3; round++) {
    const pids = processesUnder(root)
    if (pids.length === 0) break
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    execFileSync('sleep', ['0.2'])
  }
  for (const mount of mountsUnder(root)) {
    try { execFileSync('umount', ['-l', mount], { stdio: 'ignore' }) } catch {}
  }
  try { rmSync(root, { recursive: true, force: true, maxRetries: 3 }) } catch {}
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** End what earlier runs left behind: roots whose owning process is gone. */
export function cleanupStale (): void {
  if (!existsSync(HARNESS_BASE)) return
  for (const name of readdirSync(HARNESS_BASE)) {
    const owner = Number(name.split('-')[0])
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) continue
    destroyRoot(join(HARNESS_BASE, name))
  }
}

const roots = new Set<string>()
let hooked = false

/** A new root folder for this process, destroyed at exit whatever happens. */
export function makeRoot (label: string): string {
  cleanupStale()
  const root = join(HARNESS_BASE, `${process.pid}-${label}-${Math.random().toString(36).slice(2, 8)}`)
  mkdirSync(root, { recursive: true })
  roots.add(root)
  if (!hooked) {
    hooked = true
    process.on('exit', () => { for (const r of roots) destroyRoot(r) })
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        for (const r of roots) destroyRoot(r)
        process.exit(130)
      })
    }
  }
  return root
}

export function releaseRoot (root: string): void {
  destroyRoot(root)
  roots.delete(root)
}
