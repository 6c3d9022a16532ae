/** Signatures with the node's Ed25519 key, checked against the key inside a peer id. */
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

const encoder = new TextEncoder()

export async function signText (key: PrivateKey, text: string): Promise<string> {
  return Buffer.from(await key.sign(encoder.encode(text))).toString('base64url')
}

export async function verifyText (peerId: string, text: string, signature: string): Promise<boolean> {
  try {
    const key = peerIdFromString(peerId).publicKey
    if (key == null) return false
    return await key.verify(encoder.encode(text), Buffer.from(signature, 'base64url'))
  } catch {
    return false
  }
}
