/**
 * The in-process mesh runs in a process of its own, forked by bench/gossip.ts:
 * its event loop then carries the agents and nothing else, /proc/self/io
 * counts only their traffic, and if an agent's code takes the process down
 * (all agents share it) the bench survives to say so.
 *
 * IPC: receives `{ options }`, sends `{ progress }` lines and one `{ outcome }`.
 */
import { inProcessMesh, type MeshInit } from './mesh.ts'
import { measureMesh, type MeshFailure, type MeshOptions, type MeshResult } from './phases.ts'

export type InProcessRequest = { options: Omit<MeshOptions, 'say'>, mesh: MeshInit }
export type InProcessMessage = { progress: string } | { outcome: MeshResult | MeshFailure }

if (process.send == null) {
  process.stderr.write('bench/lib/inproc-main.ts is started by bench/gossip.ts over IPC, not by hand\n')
  process.exit(2)
}

const send = (message: InProcessMessage, then?: () => void): void => { process.send?.(message, undefined, {}, () => { then?.() }) }

process.once('message', (req: InProcessRequest) => {
  void (async () => {
    const outcome = await measureMesh(inProcessMesh(req.mesh), { ...req.options, say: line => { send({ progress: line }) } })
    // leave once the outcome is written out
    send({ outcome }, () => { process.exit(0) })
  })()
})
process.on('disconnect', () => { process.exit(0) })
