/**
 * The data dir: the node's Ed25519 identity, the mesh's swarm key, the API
 * token, the config file and the LevelDB store. Secrets are written 0600 and
 * refused at start when group or others can read them.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, stat, writeFile, copyFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { generateKey } from '@libp2p/pnet'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { CONFIG_FILE } from './config.ts'
import { DataDirError } from './errors.ts'

export const IDENTITY_FILE = 'identity.key'
export const SWARM_KEY_FILE = 'swarm.key'
export const TOKEN_FILE = 'api.token'
export const STORE_DIR = 'db'
/** The chunk store's files (its index lives in the store). */
export const CHUNKS_DIR = 'chunks'

export interface InitOptions {
  /** An existing swarm key to join that mesh; without it a new mesh key is generated. */
  swarmKeyFile?: string
  /** Values written to the new config.json. */
  config?: Record<string, unknown>
}

export interface InitResult {
  dataDir: string
  peerId: string
  swarmKeyPath: string
  /** True when a new swarm key was generated (a new mesh). */
  swarmKeyGenerated: boolean
  tokenPath: string
  configPath: string
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** Check that a swarm key file has the `/key/swarm/psk/1.0.0/` format pnet expects. */
export function checkSwarmKey (bytes: Uint8Array, path: string): void {
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new DataDirError(`${path} is not a swarm key (expected /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits)`)
  }
}

export async function initDataDir (dir: string, options: InitOptions = {}): Promise<InitResult> {
  const dataDir = resolve(dir)
  const identityPath = join(dataDir, IDENTITY_FILE)
  if (await exists(identityPath)) {
    throw new DataDirError(`${dataDir} is already initialised (${IDENTITY_FILE} exists); use another --data-dir, or remove it to start afresh`)
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await chmod(dataDir, 0o700)

  const swarmKeyPath = join(dataDir, SWARM_KEY_FILE)
  let swarmKeyGenerated = false
  if (options.swarmKeyFile != null) {
    let key: Uint8Array
    try {
      key = await readFile(options.swarmKeyFile)
    } catch (err: any) {
      throw new DataDirError(`cannot read the swarm key ${options.swarmKeyFile}: ${err.message}`)
    }
    checkSwarmKey(key, options.swarmKeyFile)
    if (resolve(options.swarmKeyFile) !== swarmKeyPath) await copyFile(options.swarmKeyFile, swarmKeyPath)
  } else {
    const key = new Uint8Array(95)
    generateKey(key)
    await writeFile(swarmKeyPath, key, { mode: 0o600 })
    swarmKeyGenerated = true
  }
  await chmod(swarmKeyPath, 0o600)

  const privateKey = await generateKeyPair('Ed25519')
  await writeFile(identityPath, privateKeyToProtobuf(privateKey), { mode: 0o600 })

  const tokenPath = join(dataDir, TOKEN_FILE)
  await writeFile(tokenPath, randomBytes(32).toString('base64url') + '\n', { mode: 0o600 })

  const configPath = join(dataDir, CONFIG_FILE)
  if (!await exists(configPath)) {
    await writeFile(configPath, JSON.stringify(options.config ?? {}, null, 2) + '\n', { mode: 0o644 })
  }

  return {
    dataDir,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    swarmKeyPath,
    swarmKeyGenerated,
    tokenPath,
    configPath
  }
}

/** Read a secret file, refusing it when it is missing or readable by group or others. */
export async function readSecret (path: string, what: string): Promise<Buffer> {
  let info
  try {
    info = await stat(path)
  } catch (err: any) {
    if (err.code === 'ENOENT') throw new DataDirError(`${what} ${path} is missing: run "goto-node init" first`)
    throw new DataDirError(`cannot read ${what} ${path}: ${err.message}`)
  }
  if ((info.mode & 0o077) !== 0) {
    throw new DataDirError(`${what} ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); run "chmod 600 ${path}"`)
  }
  try {
    return await readFile(path)
  } catch (err: any) {
    throw new DataDirError(`cannot read ${what} ${path}: ${err.message}`)
  }
}

export interface Secrets {
  privateKey: PrivateKey
  swarmKey: Uint8Array
  apiToken: string
}

export async function loadSecrets (dataDir: string): Promise<Secrets> {
  const identityPath = join(dataDir, IDENTITY_FILE)
  const raw = await readSecret(identityPath, 'the identity')
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(raw)
  } catch (err: any) {
    throw new DataDirError(`${identityPath} is not a libp2p private key: ${err.message}`)
  }
  const swarmKeyPath = join(dataDir, SWARM_KEY_FILE)
  const swarmKey = await readSecret(swarmKeyPath, 'the swarm key')
  checkSwarmKey(swarmKey, swarmKeyPath)
  const apiToken = (await readSecret(join(dataDir, TOKEN_FILE), 'the API token')).toString('utf8').trim()
  if (apiToken.length < 16) throw new DataDirError(`the API token in ${join(dataDir, TOKEN_FILE)} is too short`)
  return { privateKey, swarmKey, apiToken }
}

/** The API token alone, for CLI clients. */
export async function readToken (dataDir: string): Promise<string> {
  return (await readSecret(join(dataDir, TOKEN_FILE), 'the API token')).toString('utf8').trim()
}
