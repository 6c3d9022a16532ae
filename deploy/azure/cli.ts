/**
 * `npm run deploy:azure -- COMMAND`: the Go-To hosts on Azure. Credentials
 * come from DefaultAzureCredential (environment, workload or managed identity,
 * `az login`, …), the subscription from --subscription or AZURE_SUBSCRIPTION_ID.
 *
 *   node deploy/azure/cli.ts check
 *   node deploy/azure/cli.ts keypair import --name goto --resource-group goto --location westeurope
 *   node deploy/azure/cli.ts launch --name-prefix goto --tag demo --resource-group goto --location westeurope \
 *     --admin-cidr 203.0.113.7/32 --vpn-cidr 10.0.0.0/8 --agent-bundle-url https://…/goto-node-0.1.0-bundle.tar.gz
 */
import { resolve } from 'node:path'
import { DefaultAzureCredential } from '@azure/identity'
import { runCli, processIo, required, integer, str, list, type Command, type Io, type Values } from '../lib/cli.ts'
import { UsageError } from '../lib/errors.ts'
import { adminCidr, vpnCidr, parseCidr, MESH_PORT } from '../lib/net.ts'
import { defaultPublicKeyPath, readPublicKey } from '../lib/ssh-key.ts'
import { swarmKeyFor, forgetNewKey } from '../lib/swarm-key.ts'
import { renderUserData } from '../lib/user-data.ts'
import { hostName } from '../lib/names.ts'
import { azureClients, check, importSshKey, launch, storedSshKey, type AzureClients, type HttpClient, type TokenCredential } from './arm.ts'

const PROGRAM = 'goto-azure'
/** The VM's login user; not `goto`, which is the agent's own system user. */
const ADMIN_USER = 'gotoadmin'

/** What the command line builds its clients from; tests give their own credential and transport. */
export interface AzureSetup {
  credential?: TokenCredential
  httpClient?: HttpClient
  pollMs?: number
}

function clients (values: Values, io: Io, setup: AzureSetup): AzureClients {
  const subscription = str(values.subscription) ?? io.env.AZURE_SUBSCRIPTION_ID
  if (subscription == null || subscription === '') throw new UsageError('no subscription: pass --subscription, or set AZURE_SUBSCRIPTION_ID')
  return azureClients(setup.credential ?? new DefaultAzureCredential(), subscription, {
    endpoint: str(values['arm-endpoint']),
    httpClient: setup.httpClient,
    pollMs: setup.pollMs
  })
}

const COMMON = {
  subscription: { type: 'string' },
  'arm-endpoint': { type: 'string' }
} as const

const COMMON_HELP = `  --subscription ID        the subscription (default: $AZURE_SUBSCRIPTION_ID)
  --arm-endpoint URL       another Resource Manager endpoint, for a sovereign cloud (default https://management.azure.com)

Credentials: DefaultAzureCredential: AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, a workload or managed
identity, or "az login"; AZURE_TOKEN_CREDENTIALS narrows the chain (e.g. AzureCliCredential).`

function commands (setup: AzureSetup): Record<string, Command> {
  return {
    check: {
      summary: 'show who signs in, the locations that offer VMs, and the subscription\'s resource groups, VMs and SSH keys',
      usage: 'goto-azure check [--subscription ID]',
      details: COMMON_HELP,
      options: { ...COMMON },
      positionals: [0, 0],
      async run (values, _, io) {
        return await check(clients(values, io, setup), io.out)
      }
    },

    'keypair import': {
      summary: 'store your SSH public key as an Azure SSH key resource, for launch --key-name',
      usage: 'goto-azure keypair import --name NAME --resource-group RG --location LOCATION [--public-key FILE]',
      details: `  --name NAME              the SSH key resource's name
  --resource-group RG      where it goes (made when missing)
  --location LOCATION      e.g. westeurope
  --public-key FILE        an OpenSSH public key (default: ~/.ssh/id_ed25519.pub); only the public half is sent
Azure puts the key itself on each VM, so one resource serves every location: there is no --all-regions here.

${COMMON_HELP}`,
      options: { ...COMMON, name: { type: 'string' }, 'resource-group': { type: 'string' }, location: { type: 'string' }, 'public-key': { type: 'string' } },
      positionals: [0, 0],
      async run (values, _, io) {
        const name = required(values, 'name')
        const resourceGroup = required(values, 'resource-group')
        const location = required(values, 'location')
        const key = await readPublicKey(str(values['public-key']) ?? defaultPublicKeyPath(io.env))
        const id = await importSshKey(clients(values, io, setup), { resourceGroup, location, name, publicKey: key.line })
        io.out(`imported ${name} (${key.type}): ${id}`)
        return 0
      }
    },

    launch: {
      summary: 'start one agent host: Ubuntu LTS, SSH keys only, a locked-down NSG, cloud-init that installs and joins the agent',
      usage: 'goto-azure launch --name-prefix PREFIX --tag TAG --resource-group RG --location LOCATION --admin-cidr CIDR --vpn-cidr CIDR --agent-bundle-url URL [options]',
      details: `  --name-prefix PREFIX     the host is named PREFIX-<UTC time>: the VM, its resources' prefix, the mesh name
  --tag TAG                the goto-mesh tag on everything made, to find one mesh's hosts
  --resource-group RG      where everything goes (made when missing; deleting it is the teardown)
  --location LOCATION      e.g. westeurope
  --admin-cidr CIDR        who may SSH in, e.g. 203.0.113.7/32; 0.0.0.0/0 is refused without --allow-any-ssh
  --vpn-cidr CIDR          the private range the mesh port (tcp/${MESH_PORT}) is opened to: the VPN's, e.g. 10.0.0.0/8
  --agent-bundle-url URL   https URL of the agent bundle (npm run deploy:bundle), which the host downloads
  --swarm-key FILE         the mesh's key; without it a new mesh starts and its key is written to ./PREFIX-<time>.swarm.key
  --bootstrap MULTIADDR    a mesh member to join through, e.g. /ip4/10.0.1.4/tcp/${MESH_PORT}; repeat for more
  --public-key FILE        the login key (default: ~/.ssh/id_ed25519.pub) …
  --key-name NAME          … or an SSH key resource in the group (see "keypair import")
  --vm-size SIZE           default Standard_B2s
  --vnet-cidr CIDR         the new VNet's range (default 10.20.0.0/16)
  --subnet-cidr CIDR       its subnet (default 10.20.1.0/24)
  --disk-gb N              OS disk, StandardSSD (default 30)
  --allow-any-ssh          accept an --admin-cidr of 0.0.0.0/0 or ::/0

The VM accepts SSH keys only: password login is disabled. Its login user is ${ADMIN_USER}. No Azure
credential is put on the VM; the swarm key is the one secret in its custom data.

${COMMON_HELP}`,
      options: {
        ...COMMON,
        'name-prefix': { type: 'string' },
        tag: { type: 'string' },
        'resource-group': { type: 'string' },
        location: { type: 'string' },
        'admin-cidr': { type: 'string' },
        'vpn-cidr': { type: 'string' },
        'agent-bundle-url': { type: 'string' },
        'swarm-key': { type: 'string' },
        bootstrap: { type: 'string', multiple: true },
        'public-key': { type: 'string' },
        'key-name': { type: 'string' },
        'vm-size': { type: 'string' },
        'vnet-cidr': { type: 'string' },
        'subnet-cidr': { type: 'string' },
        'disk-gb': { type: 'string' },
        'allow-any-ssh': { type: 'boolean' }
      },
      positionals: [0, 0],
      async run (values, _, io) {
        const name = hostName(required(values, 'name-prefix'))
        const tag = required(values, 'tag')
        const resourceGroup = required(values, 'resource-group')
        const location = required(values, 'location')
        const admin = adminCidr(required(values, 'admin-cidr'), values['allow-any-ssh'] === true)
        const vpn = vpnCidr(required(values, 'vpn-cidr'))
        const agentBundleUrl = required(values, 'agent-bundle-url')
        const vnetCidr = parseCidr(str(values['vnet-cidr']) ?? '10.20.0.0/16', 'vnet-cidr').text
        const subnetCidr = parseCidr(str(values['subnet-cidr']) ?? '10.20.1.0/24', 'subnet-cidr').text
        if (values['key-name'] != null && values['public-key'] != null) throw new UsageError('give --public-key or --key-name, not both')
        const c = clients(values, io, setup)
        const keyName = str(values['key-name'])
        const publicKey = keyName != null
          ? await storedSshKey(c, resourceGroup, keyName)
          : (await readPublicKey(str(values['public-key']) ?? defaultPublicKeyPath(io.env))).line
        const swarm = await swarmKeyFor(str(values['swarm-key']), resolve(`${name}.swarm.key`))
        const customData = renderUserData({ agentBundleUrl, swarmKey: swarm.text, name, bootstrap: list(values.bootstrap), operator: ADMIN_USER })

        const host = await launch(c, {
          resourceGroup,
          location,
          name,
          tag,
          vmSize: str(values['vm-size']) ?? 'Standard_B2s',
          adminUser: ADMIN_USER,
          publicKey,
          adminCidr: admin,
          vpnCidr: vpn,
          vnetCidr,
          subnetCidr,
          diskGb: integer(values, 'disk-gb', 30),
          customData
        }, io.out).catch(async (err: unknown) => {
          await forgetNewKey(swarm)
          throw err
        })
        io.out(`running       ${name} in ${location}: public ${host.publicIp || '(none)'}, private ${host.privateIp}`)
        io.out(swarm.createdAt != null
          ? `swarm key     a new mesh; its key is in ${swarm.createdAt} (0600): launch the other hosts with --swarm-key ${swarm.createdAt}`
          : 'swarm key     the one given: this host joins that mesh')
        io.out(`connect       ssh ${ADMIN_USER}@${host.publicIp || host.privateIp}   (cloud-init installs the agent in a few minutes)`)
        io.out(`the agent     ssh ${ADMIN_USER}@${host.publicIp || host.privateIp} goto-node status`)
        io.out(`mesh          other hosts join with --bootstrap /ip4/${host.privateIp}/tcp/${MESH_PORT} (across the VPN)`)
        io.out(`teardown      az vm delete -g ${resourceGroup} -n ${name} --yes   (disk, NIC and public IP go with it), or: az group delete -n ${resourceGroup}`)
        return 0
      }
    }
  }
}

export async function main (argv: string[], io: Io = processIo(), setup: AzureSetup = {}): Promise<number> {
  return await runCli(PROGRAM, 'Go-To agent hosts on Azure', commands(setup), argv, io)
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
