/**
 * The baseline: round trips of a small message over a plain loopback TCP
 * connection between two agents' addresses, served and timed by the same
 * event loops the agents run on. It is what one hop costs on this machine at
 * this moment, with no libp2p, encryption or gossip on top, so a gossip figure
 * divided by it says how much the mesh adds, however loaded the machine is.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { sleep } from './measure.ts'

const PAYLOAD = 64

export interface EchoServer {
  port: number
  close(): Promise<void>
}

export async function startEchoServer (host: string): Promise<EchoServer> {
  const sockets = new Set<Socket>()
  const server: Server = createServer(socket => {
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('data', chunk => { socket.write(chunk) })
    socket.on('error', () => {})
    socket.on('close', () => { sockets.delete(socket) })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => { resolve() })
  })
  const address = server.address()
  if (address == null || typeof address === 'string') throw new Error('echo server has no port')
  return {
    port: address.port,
    async close () {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}

/**
 * `count` round trips of 64 bytes from `localAddress` to host:port, `gapMs`
 * apart (so each samples an ordinary moment of the event loop, not a hot
 * loop); the round-trip times in ms.
 */
export async function measureEcho (host: string, port: number, localAddress: string, count: number, gapMs = 10): Promise<number[]> {
  const socket = connect({ host, port, localAddress, noDelay: true })
  // one round trip at a time: `pending` settles the current one
  let pending: { resolve: () => void, reject: (err: Error) => void, got: number } | undefined
  socket.on('data', chunk => {
    if (pending == null) return
    pending.got += chunk.length
    if (pending.got >= PAYLOAD) pending.resolve()
  })
  socket.on('error', err => { pending?.reject(err) })
  await new Promise<void>((resolve, reject) => {
    pending = { resolve, reject, got: 0 }
    socket.once('connect', resolve)
  })
  const samples: number[] = []
  const message = Buffer.alloc(PAYLOAD, 0x61)
  try {
    for (let i = 0; i < count; i++) {
      const start = performance.now()
      await new Promise<void>((resolve, reject) => {
        pending = { resolve, reject, got: 0 }
        socket.write(message)
      })
      samples.push(performance.now() - start)
      pending = undefined
      await sleep(gapMs)
    }
  } finally {
    socket.destroy()
  }
  return samples
}
