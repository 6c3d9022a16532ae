/**
 * The operator's SSH public key, read from a `.pub` file. Both clouds take the
 * key itself; a private key given by mistake is refused before anything is sent.
 */
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { DeployError } from './errors.ts'

export interface PublicKey {
  /** `ssh-ed25519`, `ssh-rsa` or `ecdsa-sha2-nistp…`. */
  type: string
  /** The whole line: type, base64 body and comment. */
  line: string
}

const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+={0,2}(?: .*)?$/

/** ~/.ssh/id_ed25519.pub: where "ssh-keygen -t ed25519" puts the key. */
export function defaultPublicKeyPath (env: NodeJS.ProcessEnv): string {
  return join(env.HOME ?? homedir(), '.ssh', 'id_ed25519.pub')
}

export async function readPublicKey (path: string): Promise<PublicKey> {
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch (err: any) {
    throw new DeployError('GOTO_ERR_SSH_KEY', `cannot read the SSH public key ${path}: ${err.code ?? err.message} (make one with "ssh-keygen -t ed25519", or pass --public-key FILE)`)
  }
  if (text.includes('PRIVATE KEY')) {
    throw new DeployError('GOTO_ERR_SSH_KEY', `${path} is a private key; pass the public half (the .pub file) — a private key never leaves this machine`)
  }
  const line = text.split('\n')[0] ?? ''
  const match = KEY_LINE.exec(line)
  if (match == null || text.includes('\n')) {
    throw new DeployError('GOTO_ERR_SSH_KEY', `${path} is not one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp…)`)
  }
  return { type: match[1] ?? '', line }
}
