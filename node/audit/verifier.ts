/**
 * Signature checks for the audit log, spread over the cores: one worker
 * thread per core beyond the first, and the calling thread takes a share
 * too. Small lists are checked inline, where a thread hop costs more than it saves.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { createPublicKey, verify, type KeyObject } from 'node:crypto'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
export const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export interface VerifyItem {
  /** The origin's key as Ed25519 SPKI DER. */
  der: Buffer
  text: string
  signature: string
}

/** Below this many items a list is checked inline. */
const INLINE_BELOW = 64

export interface Verifier {
  verifyAll(items: VerifyItem[]): Promise<boolean[]>
  close(): Promise<void>
}

export function createVerifier (threads = Math.max(0, availableParallelism() - 1)): Verifier {
  const workers: Worker[] = []
  const pending = new Map<number, (results: boolean[]) => void>()
  let next = 0
  const keys = new Map<string, KeyObject>()
  const inline = (items: VerifyItem[]): boolean[] => items.map(item => {
    try {
      const id = item.der.toString('base64')
      let key = keys.get(id)
      if (key == null) keys.set(id, key = createPublicKey({ key: item.der, format: 'der', type: 'spki' }))
      return verify(null, Buffer.from(item.text), key, Buffer.from(item.signature, 'base64url'))
    } catch {
      return false
    }
  })
  const worker = (i: number): Worker => {
    let w = workers[i]
    if (w == null) {
      const file = import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js'
      w = new Worker(new URL(file, import.meta.url))
      w.unref()
      w.on('message', (msg: { id: number, results: boolean[] }) => { pending.get(msg.id)?.(msg.results); pending.delete(msg.id) })
      workers[i] = w
    }
    return w
  }
  return {
    async verifyAll (items) {
      if (threads === 0 || items.length < INLINE_BELOW) return inline(items)
      const share = Math.ceil(items.length / (threads + 1))
      const jobs: Array<Promise<boolean[]>> = []
      for (let t = 0; t < threads; t++) {
        const part = items.slice((t + 1) * share, (t + 2) * share)
        if (part.length === 0) continue
        const id = next++
        jobs.push(new Promise(resolve => { pending.set(id, resolve) }))
        worker(t).postMessage({ id, items: part.map(p => [p.der.toString('base64'), p.text, p.signature]) })
      }
      const mine = inline(items.slice(0, share))
      return [...mine, ...(await Promise.all(jobs)).flat()]
    },
    async close () {
      await Promise.all(workers.map(async w => await w.terminate()))
      workers.length = 0
    }
  }
}
