/**
 * `deploy/azure/cli.ts` with the Azure SDK's real clients, pipeline and
 * long-running-operation poller, over a fake Resource Manager given as the
 * pipeline's `httpClient` and a fake token credential: the requests in order,
 * with the bodies ARM receives; refusals; and, as a child process with
 * DefaultAzureCredential, the error when no credential is to be had.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { main } from '../../deploy/azure/cli.ts'
import { fakeArm, FAKE_TOKEN, type FakeArm } from './fake-arm.ts'
import { runTool, assertFailed, tempDir, type Ran } from './run.ts'
import { assertValidCloudConfig } from './validators.ts'

const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGotoGotoGotoGotoGotoGotoGotoGotoGotoGotoGoto operator@laptop'
const SUB = '/subscriptions/00000000-1111-2222-3333-444444444444'

describe('deploy/azure', () => {
  let dir: { path: string, remove: () => Promise<void> }
  let arm: FakeArm
  const cwd = process.cwd()

  before(async () => {
    dir = await tempDir('azure')
    await writeFile(join(dir.path, 'id.pub'), PUBLIC_KEY + '\n')
    process.chdir(dir.path) // where launch writes a new mesh's swarm key
  })
  after(async () => {
    process.chdir(cwd)
    await dir.remove()
  })

  async function cli (args: string[], refuse: string[] = []): Promise<Ran> {
    arm = fakeArm()
    for (const r of refuse) arm.refuse.add(r)
    const stdout: string[] = []
    const stderr: string[] = []
    const code = await main(args, {
      out: line => { stdout.push(line) },
      err: line => { stderr.push(line) },
      env: { HOME: dir.path, AZURE_SUBSCRIPTION_ID: SUB.split('/')[2] }
    }, { credential: arm.credential, httpClient: arm.httpClient, pollMs: 10 })
    return { code, stdout: stdout.join('\n') + '\n', stderr: stderr.join('\n') + '\n' }
  }

  const calls = (): string[] => arm.requests.map(r => `${r.method} ${r.path.slice(SUB.length)}`)
  const put = (type: string): any => arm.requests.find(r => r.method === 'PUT' && r.type === type)?.body

  it('check: who signs in, VM locations, resource groups, VMs and SSH keys, with the credential\'s token', async () => {
    const ran = await cli(['check'])
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual(calls(), [
      'GET /providers/Microsoft.Compute',
      'GET /resourcegroups',
      'GET /providers/Microsoft.Compute/virtualMachines',
      'GET /providers/Microsoft.Compute/sshPublicKeys'
    ])
    assert.ok(arm.requests.every(r => r.authorization === `Bearer ${FAKE_TOKEN}`))
    assert.match(ran.stdout, /^credentials {2}operator@example\.org \(tenant 72f988bf-0000-0000-0000-2d7cd011db47\)/)
    assert.match(ran.stdout, /locations with VMs \(2\): East US, West Europe/)
    assert.match(ran.stdout, /SSH public keys \(0\): none/)
  })

  it('keypair import: the group, then the key resource holding the public key line', async () => {
    const ran = await cli(['keypair', 'import', '--name', 'goto', '--resource-group', 'goto-rg', '--location', 'westeurope', '--public-key', join(dir.path, 'id.pub')])
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual(calls(), ['PUT /resourcegroups/goto-rg', 'PUT /resourceGroups/goto-rg/providers/Microsoft.Compute/sshPublicKeys/goto'])
    assert.equal(put('sshpublickeys').properties.publicKey, PUBLIC_KEY)
    assert.equal(put('sshpublickeys').location, 'westeurope')
    assert.match(ran.stdout, /imported goto \(ssh-ed25519\)/)
  })

  const launchArgs = ['launch', '--name-prefix', 'goto', '--tag', 'demo', '--resource-group', 'goto-rg', '--location', 'westeurope',
    '--admin-cidr', '203.0.113.7/32', '--vpn-cidr', '10.0.0.0/8', '--agent-bundle-url', 'https://downloads.example/goto-node-0.1.0-bundle.tar.gz',
    '--public-key', join('id.pub'), '--bootstrap', '/ip4/10.1.0.4/tcp/4001']

  it('launch: group, VNet, NSG, public IP, NIC, VM in order; SSH keys only; cloud-init as custom data; waits for the VM', async () => {
    const ran = await cli(launchArgs)
    assert.equal(ran.code, 0, ran.stderr)
    const name = /vm {12}(goto-\d{8}t\d{6}z)/.exec(ran.stdout)?.[1] ?? ''
    assert.notEqual(name, '')
    const rg = '/resourceGroups/goto-rg/providers'
    assert.deepEqual(calls(), [
      'PUT /resourcegroups/goto-rg',
      `PUT ${rg}/Microsoft.Network/virtualNetworks/${name}-vnet`,
      `PUT ${rg}/Microsoft.Network/networkSecurityGroups/${name}-nsg`,
      `PUT ${rg}/Microsoft.Network/publicIPAddresses/${name}-ip`,
      `PUT ${rg}/Microsoft.Network/networkInterfaces/${name}-nic`,
      `PUT ${rg}/Microsoft.Compute/virtualMachines/${name}`,
      `GET ${rg}/Microsoft.Compute/virtualMachines/${name}`, // the poller, until provisioning succeeded
      `GET ${rg}/Microsoft.Network/publicIPAddresses/${name}-ip`
    ])
    assert.equal(put('resourcegroups').tags['goto-mesh'], 'demo')
    assert.deepEqual(put('virtualnetworks').properties, {
      addressSpace: { addressPrefixes: ['10.20.0.0/16'] },
      subnets: [{ name: 'goto', properties: { addressPrefix: '10.20.1.0/24' } }]
    })

    const rules = put('networksecuritygroups').properties.securityRules.map((r: any) => [r.name, r.properties.priority, r.properties.access, r.properties.direction, r.properties.protocol, r.properties.sourceAddressPrefix, r.properties.destinationPortRange])
    assert.deepEqual(rules, [
      ['allow-ssh-from-admin', 100, 'Allow', 'Inbound', 'Tcp', '203.0.113.7/32', '22'],
      ['allow-mesh-from-vpn', 110, 'Allow', 'Inbound', 'Tcp', '10.0.0.0/8', '4001'],
      ['deny-ssh-from-others', 4000, 'Deny', 'Inbound', 'Tcp', '*', '22'],
      ['deny-mesh-from-others', 4001, 'Deny', 'Inbound', 'Tcp', '*', '4001']
    ], 'SSH only from the admin range, the mesh port only from the VPN range')

    assert.deepEqual(put('publicipaddresses').sku, { name: 'Standard' })
    const nic = put('networkinterfaces').properties
    assert.match(nic.networkSecurityGroup.id, new RegExp(`/networkSecurityGroups/${name}-nsg$`))
    assert.match(nic.ipConfigurations[0].properties.subnet.id, new RegExp(`/virtualNetworks/${name}-vnet/subnets/goto$`))
    assert.match(nic.ipConfigurations[0].properties.publicIPAddress.id, new RegExp(`/publicIPAddresses/${name}-ip$`))

    const vm = put('virtualmachines').properties
    assert.deepEqual(vm.storageProfile.imageReference, { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' })
    assert.equal(vm.osProfile.adminUsername, 'gotoadmin')
    assert.equal(vm.osProfile.adminPassword, undefined, 'no password')
    assert.equal(vm.osProfile.linuxConfiguration.disablePasswordAuthentication, true)
    assert.deepEqual(vm.osProfile.linuxConfiguration.ssh.publicKeys, [{ path: '/home/gotoadmin/.ssh/authorized_keys', keyData: PUBLIC_KEY }])
    assert.match(vm.networkProfile.networkInterfaces[0].id, new RegExp(`/networkInterfaces/${name}-nic$`))

    const customData = Buffer.from(vm.osProfile.customData, 'base64').toString('utf8')
    const swarmKey = await readFile(join(dir.path, `${name}.swarm.key`), 'utf8')
    assert.ok(customData.includes(JSON.stringify(swarmKey)), 'the new mesh key goes to the host')
    assert.ok(customData.includes('"--operator","gotoadmin"'))
    assert.ok(customData.includes('"--bootstrap","/ip4/10.1.0.4/tcp/4001"'))
    assert.ok(!customData.includes(FAKE_TOKEN.split('.')[1] ?? '-'), 'no Azure credential in the custom data')
    await assertValidCloudConfig(dir.path, customData)

    assert.match(ran.stdout, new RegExp(`running {7}${name} in westeurope: public 20\\.31\\.0\\.7, private 10\\.20\\.1\\.4`))
    assert.match(ran.stdout, /connect {7}ssh gotoadmin@20\.31\.0\.7/)
  })

  it('launch --key-name takes the key from the SSH key resource', async () => {
    arm = fakeArm()
    const args = launchArgs.filter(a => a !== '--public-key' && a !== 'id.pub').concat(['--key-name', 'goto'])
    const ran = await cli(args)
    assertFailed(ran, 1, 'GOTO_ERR_AZURE_CALL', /sshPublicKeys\.get\(goto\) failed \(ResourceNotFound\)/)
    assert.deepEqual(calls(), ['GET /resourceGroups/goto-rg/providers/Microsoft.Compute/sshPublicKeys/goto'])
  })

  it('launch: a refused VM says who refused what, and leaves no key of a mesh that never started', async () => {
    const ran = await cli(launchArgs.map(a => a === 'goto' ? 'refused' : a), ['PUT virtualmachines'])
    assertFailed(ran, 1, 'GOTO_ERR_AZURE_REFUSED', /Azure refused virtualMachines\.createOrUpdate\(refused-\d{8}t\d{6}z\) \(AuthorizationFailed\): The client does not have authorization/)
    const name = /vm {12}(refused-\S+)/.exec(ran.stdout)?.[1] ?? ''
    assert.notEqual(name, '')
    await assert.rejects(readFile(join(dir.path, `${name}.swarm.key`)), { code: 'ENOENT' })
  })

  it('launch: SSH from anywhere is refused before any request; usage errors exit 2', async () => {
    const ran = await cli(launchArgs.map(a => a === '203.0.113.7/32' ? '::/0' : a))
    assertFailed(ran, 1, 'GOTO_ERR_UNSAFE_SSH_SOURCE', /opens SSH to the whole internet/)
    assert.equal(arm.requests.length, 0)
    assertFailed(await cli(['keypair', 'import', '--name', 'x', '--all-regions']), 2, 'GOTO_ERR_USAGE', /Unknown option '--all-regions'/)
    assertFailed(await cli(launchArgs.filter(a => a !== '--location' && a !== 'westeurope')), 2, 'GOTO_ERR_USAGE', /--location is required/)
  })

  it('no credential in DefaultAzureCredential\'s chain: one clear line, exit 1, nothing sent', async () => {
    const ran = await runTool('deploy/azure/cli.ts', ['check'], {
      HOME: dir.path,
      AZURE_SUBSCRIPTION_ID: '00000000-1111-2222-3333-444444444444',
      // the environment credential only: the chain's other members would probe IMDS or run az
      AZURE_TOKEN_CREDENTIALS: 'EnvironmentCredential'
    }, dir.path)
    assertFailed(ran, 1, 'GOTO_ERR_AZURE_NO_CREDENTIALS', /no Azure credentials: run "az login"/)
  })
})
