/**
 * What the Azure commands do, as calls on the Resource Manager clients they
 * are given: `check` shows the subscription, `importSshKey` stores a public
 * key as an SSH key resource, `launch` builds one agent host (network, a
 * locked-down NSG, a public IP, a NIC, an Ubuntu LTS VM that takes SSH keys
 * only, with cloud-init as its custom data). Every SDK error becomes a
 * DeployError with a stable code.
 *
 * @example
 * ```ts
 * const clients = azureClients(new DefaultAzureCredential(), subscriptionId)
 * await check(clients, console.log)
 * ```
 */
import { ComputeManagementClient, type ComputeManagementClientOptionalParams, type VirtualMachine } from '@azure/arm-compute'
import { NetworkManagementClient, type SecurityRule } from '@azure/arm-network'
import { ResourceManagementClient } from '@azure/arm-resources'
import { DeployError } from '../lib/errors.ts'
import { oneLine } from '../lib/cli.ts'
import { MESH_PORT, SSH_PORT, type Cidr } from '../lib/net.ts'

export type TokenCredential = ConstructorParameters<typeof ComputeManagementClient>[0]
export type HttpClient = NonNullable<ComputeManagementClientOptionalParams['httpClient']>

export interface AzureClients {
  credential: TokenCredential
  /** The token scope of the Resource Manager these clients call. */
  scope: string
  resources: ResourceManagementClient
  network: NetworkManagementClient
  compute: ComputeManagementClient
  /** How often a long-running operation is polled, in milliseconds. */
  pollMs: number
}

export interface ClientInit {
  /** Another Resource Manager endpoint (a sovereign cloud's). @default https://management.azure.com */
  endpoint?: string
  /** The pipeline's transport; the SDK's own by default. */
  httpClient?: HttpClient
  /** @default 5000 */
  pollMs?: number
}

export function azureClients (credential: TokenCredential, subscriptionId: string, init: ClientInit = {}): AzureClients {
  const options = {
    ...(init.endpoint != null ? { endpoint: init.endpoint } : {}),
    ...(init.httpClient != null ? { httpClient: init.httpClient } : {})
  }
  return {
    credential,
    scope: `${new URL(init.endpoint ?? 'https://management.azure.com').origin}/.default`,
    resources: new ResourceManagementClient(credential, subscriptionId, options),
    network: new NetworkManagementClient(credential, subscriptionId, options),
    compute: new ComputeManagementClient(credential, subscriptionId, options),
    pollMs: init.pollMs ?? 5000
  }
}

/** Turn an SDK failure into one of ours, naming the operation. */
export function cloudError (err: any, operation: string): DeployError {
  if (err instanceof DeployError) return err
  const name = String(err?.name ?? '')
  const code = String(err?.code ?? '')
  const message = oneLine(String(err?.message ?? err))
  if (['CredentialUnavailableError', 'AggregateAuthenticationError', 'AuthenticationRequiredError', 'AuthenticationError'].includes(name)) {
    return new DeployError('GOTO_ERR_AZURE_NO_CREDENTIALS', 'no Azure credentials: run "az login", or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (any source DefaultAzureCredential knows)')
  }
  if (err?.statusCode === 401 || err?.statusCode === 403 || /AuthorizationFailed|InvalidAuthenticationToken/.test(code)) {
    return new DeployError('GOTO_ERR_AZURE_REFUSED', `Azure refused ${operation} (${code || err?.statusCode}): ${message}`)
  }
  return new DeployError('GOTO_ERR_AZURE_CALL', `${operation} failed (${code || name || 'error'}): ${message}`)
}

async function call<T> (operation: string, fn: () => PromiseLike<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw cloudError(err, operation)
  }
}

async function collect<T> (operation: string, pages: AsyncIterable<T>): Promise<T[]> {
  return await call(operation, async () => {
    const all: T[] = []
    for await (const item of pages) all.push(item)
    return all
  })
}

/** Who the credential's token names: a user's sign-in name or an application id, and the tenant. */
export async function signedInAs (c: AzureClients): Promise<string> {
  const token = await call('getToken', async () => await c.credential.getToken(c.scope))
  if (token == null) throw new DeployError('GOTO_ERR_AZURE_NO_CREDENTIALS', 'the credential gave no token')
  let claims: Record<string, unknown> = {}
  try {
    claims = JSON.parse(Buffer.from(token.token.split('.')[1] ?? '', 'base64url').toString('utf8'))
  } catch {
    return 'a token that is not a JWT'
  }
  const who = claims.upn ?? claims.unique_name ?? claims.appid ?? claims.oid ?? 'an unnamed identity'
  return `${String(who)} (tenant ${String(claims.tid ?? '?')})`
}

/** Who signs in, the locations that offer VMs, resource groups, VMs and SSH keys of the subscription. */
export async function check (c: AzureClients, out: (line: string) => void): Promise<number> {
  out(`credentials  ${await signedInAs(c)} (DefaultAzureCredential)`)
  const provider = await call('providers.get(Microsoft.Compute)', () => c.resources.providers.get('Microsoft.Compute'))
  const locations = provider.resourceTypes?.find(t => t.resourceType === 'virtualMachines')?.locations ?? []
  out(`locations with VMs (${locations.length}): ${[...locations].sort().join(', ')}`)
  const groups = await collect('resourceGroups.list', c.resources.resourceGroups.list())
  out(`\nresource groups (${groups.length}):`)
  for (const g of groups) out(`  ${g.name ?? ''}  ${g.location}  ${g.tags?.['goto-mesh'] != null ? `goto-mesh=${g.tags['goto-mesh']}` : ''}`.trimEnd())
  const vms = await collect('virtualMachines.listAll', c.compute.virtualMachines.listAll())
  out(`\nvirtual machines (${vms.length}):`)
  for (const vm of vms) out(`  ${vm.name ?? ''}  ${vm.location}  ${vm.hardwareProfile?.vmSize ?? ''}  ${vm.provisioningState ?? ''}`.trimEnd())
  const keys = await collect('sshPublicKeys.listBySubscription', c.compute.sshPublicKeys.listBySubscription())
  out(`\nSSH public keys (${keys.length}): ${keys.map(k => k.name ?? '').join(', ') || 'none'}`)
  return 0
}

export interface KeyInit {
  resourceGroup: string
  location: string
  name: string
  publicKey: string
  tag?: string
}

function tags (name: string, tag?: string): Record<string, string> {
  return { 'goto-managed-by': 'goto-deploy', 'goto-name': name, ...(tag != null ? { 'goto-mesh': tag } : {}) }
}

async function ensureGroup (c: AzureClients, group: string, location: string, tag?: string): Promise<void> {
  await call(`resourceGroups.createOrUpdate(${group})`, () => c.resources.resourceGroups.createOrUpdate(group, { location, tags: tags(group, tag) }))
}

/** Store the key as an SSH public key resource (the group is made when missing). */
export async function importSshKey (c: AzureClients, init: KeyInit): Promise<string> {
  await ensureGroup(c, init.resourceGroup, init.location, init.tag)
  const res = await call(`sshPublicKeys.create(${init.name})`, () => c.compute.sshPublicKeys.create(init.resourceGroup, init.name, {
    location: init.location,
    tags: tags(init.name, init.tag),
    publicKey: init.publicKey
  }))
  return res.id ?? ''
}

/** The public key of an SSH key resource made by `importSshKey`. */
export async function storedSshKey (c: AzureClients, resourceGroup: string, name: string): Promise<string> {
  const res = await call(`sshPublicKeys.get(${name})`, () => c.compute.sshPublicKeys.get(resourceGroup, name))
  if (res.publicKey == null) throw new DeployError('GOTO_ERR_SSH_KEY', `the SSH key resource ${name} holds no public key`)
  return res.publicKey
}

export interface LaunchInit {
  resourceGroup: string
  location: string
  /** The host's name: the VM's, its resources' prefix and the agent's name. */
  name: string
  tag: string
  vmSize: string
  /** The VM's login user, who signs in with `publicKey` only. */
  adminUser: string
  publicKey: string
  adminCidr: Cidr
  vpnCidr: Cidr
  /** The VNet's range and the subnet's, inside it. */
  vnetCidr: string
  subnetCidr: string
  diskGb: number
  /** The rendered cloud-init user data. */
  customData: string
}

export interface Launched {
  vmId: string
  publicIp: string
  privateIp: string
}

/**
 * Inbound rules: SSH from the admin range and the mesh port from the VPN range;
 * then each port denied to everyone else, ahead of Azure's default rule that
 * admits the whole virtual network (and whatever is peered or routed into it).
 */
export function securityRules (admin: Cidr, vpn: Cidr): SecurityRule[] {
  const rule = (name: string, priority: number, access: 'Allow' | 'Deny', port: number, source: string, description: string): SecurityRule => ({
    name,
    priority,
    access,
    direction: 'Inbound',
    protocol: 'Tcp',
    sourceAddressPrefix: source,
    sourcePortRange: '*',
    destinationAddressPrefix: '*',
    destinationPortRange: String(port),
    description
  })
  return [
    rule('allow-ssh-from-admin', 100, 'Allow', SSH_PORT, admin.text, 'SSH from the admin range'),
    rule('allow-mesh-from-vpn', 110, 'Allow', MESH_PORT, vpn.text, 'goto-node mesh from the VPN range'),
    rule('deny-ssh-from-others', 4000, 'Deny', SSH_PORT, '*', 'SSH from nowhere else'),
    rule('deny-mesh-from-others', 4001, 'Deny', MESH_PORT, '*', 'the mesh port from nowhere else')
  ]
}

/** Resource group, VNet and subnet, NSG, public IP, NIC, VM, in that order; waits for each. */
export async function launch (c: AzureClients, init: LaunchInit, out: (line: string) => void): Promise<Launched> {
  const { resourceGroup: rg, location, name } = init
  const lro = { updateIntervalInMs: c.pollMs }
  await ensureGroup(c, rg, location, init.tag)

  const vnet = await call(`virtualNetworks.createOrUpdate(${name}-vnet)`, () => c.network.virtualNetworks.createOrUpdate(rg, `${name}-vnet`, {
    location,
    tags: tags(name, init.tag),
    addressSpace: { addressPrefixes: [init.vnetCidr] },
    subnets: [{ name: 'goto', addressPrefix: init.subnetCidr }]
  }, lro))
  const subnetId = vnet.subnets?.[0]?.id
  if (subnetId == null) throw new DeployError('GOTO_ERR_AZURE_CALL', `virtual network ${name}-vnet came back without its subnet`)
  out(`network       ${name}-vnet ${init.vnetCidr}, subnet ${init.subnetCidr}`)

  const nsg = await call(`networkSecurityGroups.createOrUpdate(${name}-nsg)`, () => c.network.networkSecurityGroups.createOrUpdate(rg, `${name}-nsg`, {
    location,
    tags: tags(name, init.tag),
    securityRules: securityRules(init.adminCidr, init.vpnCidr)
  }, lro))
  out(`security      ${name}-nsg: tcp/${SSH_PORT} from ${init.adminCidr.text}, tcp/${MESH_PORT} from ${init.vpnCidr.text}, both from nowhere else`)

  const ip = await call(`publicIPAddresses.createOrUpdate(${name}-ip)`, () => c.network.publicIPAddresses.createOrUpdate(rg, `${name}-ip`, {
    location,
    tags: tags(name, init.tag),
    sku: { name: 'Standard' },
    publicIPAllocationMethod: 'Static'
  }, lro))

  const nic = await call(`networkInterfaces.createOrUpdate(${name}-nic)`, () => c.network.networkInterfaces.createOrUpdate(rg, `${name}-nic`, {
    location,
    tags: tags(name, init.tag),
    networkSecurityGroup: { id: nsg.id },
    ipConfigurations: [{ name: 'primary', subnet: { id: subnetId }, publicIPAddress: { id: ip.id, deleteOption: 'Delete' }, privateIPAllocationMethod: 'Dynamic' }]
  }, lro))

  const vm: VirtualMachine = {
    location,
    tags: tags(name, init.tag),
    hardwareProfile: { vmSize: init.vmSize },
    storageProfile: {
      imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
      osDisk: { createOption: 'FromImage', diskSizeGB: init.diskGb, managedDisk: { storageAccountType: 'StandardSSD_LRS' }, deleteOption: 'Delete' }
    },
    osProfile: {
      computerName: name,
      adminUsername: init.adminUser,
      customData: Buffer.from(init.customData).toString('base64'),
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: { publicKeys: [{ path: `/home/${init.adminUser}/.ssh/authorized_keys`, keyData: init.publicKey }] }
      }
    },
    networkProfile: { networkInterfaces: [{ id: nic.id, primary: true, deleteOption: 'Delete' }] }
  }
  out(`vm            ${name} (${init.vmSize}, Ubuntu 24.04 LTS) starting…`)
  const created = await call(`virtualMachines.createOrUpdate(${name})`, () => c.compute.virtualMachines.createOrUpdate(rg, name, vm, lro))
  const address = await call(`publicIPAddresses.get(${name}-ip)`, () => c.network.publicIPAddresses.get(rg, `${name}-ip`))
  return {
    vmId: created.id ?? '',
    publicIp: address.ipAddress ?? '',
    privateIp: nic.ipConfigurations?.[0]?.privateIPAddress ?? ''
  }
}
