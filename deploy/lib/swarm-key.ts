/**
 * The mesh's swarm key for new hosts: the operator's file when given (checked
 * as the agent checks it), else a new key written beside them, 0600, for the
 * hosts that join later.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { checkSwarmKey } from '../../node/data-dir.ts'
import { DeployError } from './errors.ts'

export interface SwarmKey {
  text: string
  /** Where a new key was written, when one was made. */
  createdAt?: string
}

export async function swarmKeyFor (file: string | undefined, newKeyPath: string): Promise<SwarmKey> {
  if (file != null) {
    let bytes: Uint8Array
    try {
      bytes = await readFile(file)
    } catch (err: any) {
      throw new DeployError('GOTO_ERR_SWARM_KEY', `cannot read the swarm key ${file}: ${err.code ?? err.message}`)
    }
    try {
      checkSwarmKey(bytes, file)
    } catch (err: any) {
      throw new DeployError('GOTO_ERR_SWARM_KEY', err.message)
    }
    return { text: new TextDecoder().decode(bytes) }
  }
  const key = new Uint8Array(95)
  generateKey(key)
  await writeFile(newKeyPath, key, { mode: 0o600, flag: 'wx' }).catch((err: any) => {
    throw new DeployError('GOTO_ERR_SWARM_KEY', `cannot write a new swarm key to ${newKeyPath}: ${err.code ?? err.message}`)
  })
  return { text: new TextDecoder().decode(key), createdAt: newKeyPath }
}

/** A launch that failed leaves no key of a mesh that never started. */
export async function forgetNewKey (key: SwarmKey): Promise<void> {
  if (key.createdAt != null) await rm(key.createdAt, { force: true })
}
