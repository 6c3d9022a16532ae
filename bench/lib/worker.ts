/**
 * A worker process of the process mesh: one agent, driven by the bench over
 * IPC (see protocol.ts). It reports every change of its mesh view with the
 * time it saw it, and measures its own event-loop delay. It exits when the
 * bench goes away, so a killed bench leaves no agents behind.
 */
import { startEchoServer, measureEcho, type EchoServer } from './echo.ts'
import { createHost, describeReason, type BenchHost, type ViewEvent } from './host.ts'
import { eldMonitor, now } from './measure.ts'
import type { WorkerMessage, WorkerRequest } from './protocol.ts'

if (process.send == null) {
  process.stderr.write('bench/lib/worker.ts is started by bench/gossip.ts over IPC, not by hand\n')
  process.exit(2)
}

const eld = eldMonitor()
let host: BenchHost | undefined
let echo: EchoServer | undefined

function send (message: WorkerMessage): void {
  // a closed channel means the bench is gone; the 'disconnect' handler exits
  if (process.connected) process.send?.(message)
}

function emit (event: ViewEvent): void {
  send({ event })
}

function need (): BenchHost {
  if (host == null) throw new Error('no agent yet: send init first')
  return host
}

async function handle (req: WorkerRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'init':
      host = await createHost(req.init, emit)
      return { peerId: host.agent.peerId }
    case 'start':
      return await need().start()
    case 'change':
      return { t0: need().change(req.op, req.name) }
    case 'leave': {
      const result = await need().leave()
      // the leave is done; linger a moment so the reply gets out, then go
      setTimeout(() => { process.exit(0) }, 100).unref()
      return result
    }
    case 'eld-reset':
      eld.reset()
      return null
    case 'eld':
      return eld.read()
    case 'echo-server':
      echo = await startEchoServer(need().ip)
      return { port: echo.port }
    case 'echo-close':
      await echo?.close()
      echo = undefined
      return null
    case 'echo-client':
      return { samples: await measureEcho(req.host, req.port, need().ip, req.count) }
  }
}

process.on('message', (req: WorkerRequest) => {
  handle(req).then(
    result => { send({ id: req.id, ok: true, result }) },
    (err: unknown) => { send({ id: req.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }) }
  )
})

process.on('disconnect', () => { process.exit(0) })

// Node ends a process on an unhandled rejection, and goto-node sets no handler,
// so a real agent would exit here. The worker reports it and keeps going, so
// one fault does not hide every figure after it; the bench prints them all.
process.on('unhandledRejection', (reason) => {
  emit({ kind: 'fault', observer: host?.index ?? -1, what: 'unhandled rejection (a goto-node process would exit)', detail: describeReason(reason), t: now() })
})
