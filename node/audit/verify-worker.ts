/**
 * A worker thread that checks Ed25519 signatures for the audit log, so a node
 * catching up on a long history uses every core. Input: a list of
 * [spki der, text, signature]; output: a list of booleans in the same order.
 */
import { createPublicKey, verify } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

const keys = new Map<string, ReturnType<typeof createPublicKey>>()

parentPort?.on('message', (msg: { id: number, items: Array<[string, string, string]> }) => {
  const results = msg.items.map(([der, text, signature]) => {
    try {
      let key = keys.get(der)
      if (key == null) {
        key = createPublicKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'spki' })
        keys.set(der, key)
      }
      return verify(null, Buffer.from(text), key, Buffer.from(signature, 'base64url'))
    } catch {
      return false
    }
  })
  parentPort?.postMessage({ id: msg.id, results })
})
