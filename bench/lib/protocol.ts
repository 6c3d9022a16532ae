/**
 * Messages between the bench and its worker processes (one agent each), over
 * the IPC channel of `child_process.fork`. Requests carry an id and get one
 * reply with the same id; view events flow from the worker unasked.
 */
import type { HostInit, ViewEvent } from './host.ts'
import type { EldStats } from './measure.ts'

export type WorkerRequest =
  | { id: number, cmd: 'init', init: HostInit }
  | { id: number, cmd: 'start' }
  | { id: number, cmd: 'change', op: 'add' | 'remove', name: string }
  | { id: number, cmd: 'leave' }
  | { id: number, cmd: 'eld-reset' }
  | { id: number, cmd: 'eld' }
  | { id: number, cmd: 'echo-server' }
  | { id: number, cmd: 'echo-close' }
  | { id: number, cmd: 'echo-client', host: string, port: number, count: number }

/** What each request answers. */
export interface WorkerResults {
  'init': { peerId: string }
  'start': { t0: number, addr: string }
  'change': { t0: number }
  'leave': { t0: number, t1: number }
  'eld-reset': null
  'eld': EldStats
  'echo-server': { port: number }
  'echo-close': null
  'echo-client': { samples: number[] }
}

export type WorkerMessage =
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: string }
  | { event: ViewEvent }
