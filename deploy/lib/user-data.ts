/**
 * Cloud-init user data for a new agent host: deploy/cloud-init/user-data.yaml
 * with the swarm key, deploy/provision.sh and its arguments filled in. Every
 * value goes in as a JSON string, which YAML reads as the same string, so no
 * name or address can change the document's shape.
 */
import { readFileSync } from 'node:fs'
import { DeployError } from './errors.ts'

const TEMPLATE = readFileSync(new URL('../cloud-init/user-data.yaml', import.meta.url), 'utf8')
const PROVISION_SH = readFileSync(new URL('../provision.sh', import.meta.url), 'utf8')

/** EC2 takes at most 16 KiB of user data (before base64); Azure's customData 64 KiB. */
export const USER_DATA_MAX_BYTES = 16 * 1024

export interface UserDataInit {
  /** https URL of the agent bundle (`npm run deploy:bundle`) the host downloads. */
  agentBundleUrl: string
  swarmKey: string
  /** The host's name in the mesh. */
  name: string
  /** Mesh members to dial at start. */
  bootstrap: string[]
  /** The login user who gets a copy of the API token (`ubuntu` on EC2, the admin user on Azure). */
  operator: string
}

export function renderUserData (init: UserDataInit): string {
  if (!init.agentBundleUrl.startsWith('https://')) {
    throw new DeployError('GOTO_ERR_AGENT_BUNDLE', `--agent-bundle-url must be an https URL (the host downloads the agent from it), not "${init.agentBundleUrl}"`)
  }
  const args = [
    '/usr/local/sbin/goto-provision',
    '--agent-bundle', init.agentBundleUrl,
    '--swarm-key', '/etc/goto/swarm.key',
    '--name', init.name,
    '--operator', init.operator,
    ...init.bootstrap.flatMap(addr => ['--bootstrap', addr])
  ]
  const script = PROVISION_SH.split('\n').map(line => line === '' ? '' : `      ${line}`).join('\n').trimEnd()
  const text = TEMPLATE
    .replace('@SWARM_KEY@', () => JSON.stringify(init.swarmKey))
    .replace('@PROVISION_SH@', () => script)
    .replace('@PROVISION_ARGS@', () => JSON.stringify(args))
  const size = Buffer.byteLength(text)
  if (size > USER_DATA_MAX_BYTES) {
    throw new DeployError('GOTO_ERR_USER_DATA_SIZE', `the user data is ${size} bytes, more than the ${USER_DATA_MAX_BYTES} EC2 accepts`)
  }
  return text
}
