/**
 * `deploy/aws/cli.ts` run as a person runs it, its real SDK clients sent by
 * AWS_ENDPOINT_URL to a local endpoint that decodes EC2 Query and SSM JSON
 * requests: the calls, in order, with their parameters and signing region;
 * and the errors for missing credentials, refused calls and unsafe ranges.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFakeAws, type FakeAws } from './fake-aws.ts'
import { runTool, assertFailed, tempDir, type Ran } from './run.ts'
import { assertValidCloudConfig } from './validators.ts'

const CLI = 'deploy/aws/cli.ts'
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGotoGotoGotoGotoGotoGotoGotoGotoGotoGotoGoto operator@laptop'

describe('deploy/aws', () => {
  let dir: { path: string, remove: () => Promise<void> }
  let aws: FakeAws

  before(async () => {
    dir = await tempDir('aws')
    await writeFile(join(dir.path, 'id.pub'), PUBLIC_KEY + '\n')
  })
  after(async () => { await dir.remove() })

  async function cli (args: string[], account: Parameters<typeof startFakeAws>[0] = {}, credentials = true): Promise<Ran> {
    aws = await startFakeAws(account)
    try {
      return await runTool(CLI, args, {
        HOME: dir.path,
        AWS_ENDPOINT_URL: aws.url,
        AWS_EC2_METADATA_DISABLED: 'true',
        ...(credentials ? { AWS_ACCESS_KEY_ID: 'AKIAGOTOTESTKEY12345', AWS_SECRET_ACCESS_KEY: 'test-secret' } : {})
      }, dir.path)
    } finally {
      await aws.close()
    }
  }

  const actions = (): string[] => aws.calls.map(c => `${c.region} ${c.action}`)

  it('check: the credentials, then the regions, then each region\'s instances and key pairs', async () => {
    const ran = await cli(['check', '--region', 'eu-west-1'], { keyPairs: { 'us-east-1': ['goto'] } })
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual(actions(), [
      'eu-west-1 ec2:DescribeRegions',
      'ap-south-1 ec2:DescribeInstances', 'ap-south-1 ec2:DescribeKeyPairs',
      'eu-west-1 ec2:DescribeInstances', 'eu-west-1 ec2:DescribeKeyPairs',
      'us-east-1 ec2:DescribeInstances', 'us-east-1 ec2:DescribeKeyPairs'
    ])
    assert.ok(aws.calls.every(c => c.accessKey === 'AKIAGOTOTESTKEY12345'), 'signed with the chain\'s credentials')
    assert.match(ran.stdout, /credentials {2}AKIA…2345/)
    assert.doesNotMatch(ran.stdout, /test-secret|AKIAGOTOTESTKEY12345/)
    assert.match(ran.stdout, /us-east-1\s+https:\/\/ec2\.us-east-1\.amazonaws\.com/)
    assert.match(ran.stdout, /us-east-1\n {2}instances: none\n {2}key pairs: goto \(ed25519\)/)
  })

  it('keypair import --all-regions: into every region that lacks it; one that refuses is named, the rest still done', async () => {
    const ran = await cli(['keypair', 'import', '--name', 'goto', '--public-key', join(dir.path, 'id.pub'), '--all-regions', '--region', 'eu-west-1'], {
      keyPairs: { 'eu-west-1': ['goto'] },
      refuse: {}
    })
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual(actions(), [
      'eu-west-1 ec2:DescribeRegions',
      'ap-south-1 ec2:DescribeKeyPairs', 'ap-south-1 ec2:ImportKeyPair',
      'eu-west-1 ec2:DescribeKeyPairs',
      'us-east-1 ec2:DescribeKeyPairs', 'us-east-1 ec2:ImportKeyPair'
    ])
    const lookup = aws.calls[1]?.params ?? {}
    assert.equal(lookup['Filter.1.Name'], 'key-name')
    assert.equal(lookup['Filter.1.Value.1'], 'goto')
    const imported = aws.calls.filter(c => c.action === 'ec2:ImportKeyPair')
    for (const call of imported) {
      assert.equal(call.params.KeyName, 'goto')
      assert.equal(Buffer.from(call.params.PublicKeyMaterial, 'base64').toString(), PUBLIC_KEY, 'the public key line, nothing else')
      assert.equal(call.params['TagSpecification.1.ResourceType'], 'key-pair')
    }
    assert.match(ran.stdout, /eu-west-1\s+goto is already there/)

    const refused = await cli(['keypair', 'import', '--name', 'goto', '--public-key', join(dir.path, 'id.pub'), '--all-regions', '--region', 'eu-west-1'], {
      refuse: { 'ec2:ImportKeyPair': 'UnauthorizedOperation' },
      regions: ['eu-west-1']
    })
    assertFailed(refused, 1, 'GOTO_ERR_AWS_KEY_IMPORT', /not imported into eu-west-1/)
    assert.match(refused.stdout, /GOTO_ERR_AWS_REFUSED: AWS refused ImportKeyPair in eu-west-1 \(UnauthorizedOperation\)/)
  })

  it('keypair import refuses a private key before any call', async () => {
    await writeFile(join(dir.path, 'id'), '-----BEGIN OPENSSH PRIVATE KEY-----\nxxx\n-----END OPENSSH PRIVATE KEY-----\n')
    const ran = await cli(['keypair', 'import', '--name', 'goto', '--public-key', join(dir.path, 'id'), '--region', 'eu-west-1'])
    assertFailed(ran, 1, 'GOTO_ERR_SSH_KEY', /is a private key/)
    assert.equal(aws.calls.length, 0)
  })

  // each test its own prefix: a launch names its host (and a new mesh's key file) by the second
  const launchArgs = (prefix: string): string[] => ['launch', '--name-prefix', prefix, '--tag', 'demo', '--key-name', 'goto', '--region', 'eu-west-1',
    '--admin-cidr', '203.0.113.7/32', '--vpn-cidr', '10.0.0.0/8', '--agent-bundle-url', 'https://downloads.example/goto-node-0.1.0-bundle.tar.gz',
    '--bootstrap', '/ip4/10.1.0.4/tcp/4001', '--poll-seconds', '1']

  it('launch: the AMI from SSM, a two-rule security group, an IMDSv2 instance with cloud-init, waited until running', async () => {
    const ran = await cli(launchArgs('goto'), { keyPairs: { 'eu-west-1': ['goto'] }, pendingPolls: 1 })
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual(actions(), [
      'eu-west-1 ssm:GetParameter',
      'eu-west-1 ec2:DescribeKeyPairs',
      'eu-west-1 ec2:DescribeVpcs',
      'eu-west-1 ec2:CreateSecurityGroup',
      'eu-west-1 ec2:AuthorizeSecurityGroupIngress',
      'eu-west-1 ec2:RunInstances',
      'eu-west-1 ec2:DescribeInstances', // pending
      'eu-west-1 ec2:DescribeInstances' // running
    ])
    const call = (action: string): Record<string, string> => aws.calls.find(c => c.action === action)?.params ?? {}
    assert.deepEqual(call('ssm:GetParameter'), { Name: '/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id' })
    assert.deepEqual([call('ec2:DescribeVpcs')['Filter.1.Name'], call('ec2:DescribeVpcs')['Filter.1.Value.1']], ['is-default', 'true'])

    const group = call('ec2:CreateSecurityGroup')
    assert.match(group.GroupName ?? '', /^goto-\d{8}t\d{6}z$/)
    assert.equal(group.VpcId, 'vpc-0default')
    assert.equal(group['TagSpecification.1.ResourceType'], 'security-group')

    const ingress = call('ec2:AuthorizeSecurityGroupIngress')
    assert.deepEqual(ingress, {
      Action: 'AuthorizeSecurityGroupIngress',
      Version: '2016-11-15',
      GroupId: 'sg-0fake',
      'IpPermissions.1.IpProtocol': 'tcp',
      'IpPermissions.1.FromPort': '22',
      'IpPermissions.1.ToPort': '22',
      'IpPermissions.1.IpRanges.1.CidrIp': '203.0.113.7/32',
      'IpPermissions.1.IpRanges.1.Description': 'SSH from the admin range',
      'IpPermissions.2.IpProtocol': 'tcp',
      'IpPermissions.2.FromPort': '4001',
      'IpPermissions.2.ToPort': '4001',
      'IpPermissions.2.IpRanges.1.CidrIp': '10.0.0.0/8',
      'IpPermissions.2.IpRanges.1.Description': 'goto-node mesh from the VPN range'
    }, 'SSH from the admin range only, the mesh port from the VPN range only')

    const run = call('ec2:RunInstances')
    assert.equal(run.ImageId, 'ami-0abc1234def567890', 'the AMI SSM gave')
    assert.equal(run.InstanceType, 't3.small')
    assert.equal(run.KeyName, 'goto')
    assert.equal(run['SecurityGroupId.1'], 'sg-0fake')
    assert.equal(run['MetadataOptions.HttpTokens'], 'required')
    assert.equal(run['MetadataOptions.HttpPutResponseHopLimit'], '1')
    assert.equal(run['BlockDeviceMapping.1.Ebs.Encrypted'], 'true')
    assert.equal(run['TagSpecification.1.ResourceType'], 'instance')
    const tags = Object.fromEntries([1, 2, 3].map(i => [run[`TagSpecification.1.Tag.${i}.Key`], run[`TagSpecification.1.Tag.${i}.Value`]]))
    assert.equal(tags['goto:mesh'], 'demo')
    assert.equal(tags.Name, group.GroupName)

    const userData = Buffer.from(run.UserData ?? '', 'base64').toString('utf8')
    assert.match(userData, /^#cloud-config\n/)
    const keyFile = join(dir.path, `${group.GroupName ?? ''}.swarm.key`)
    const swarmKey = await readFile(keyFile, 'utf8')
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600, 'the new mesh key is written 0600')
    assert.ok(userData.includes(JSON.stringify(swarmKey)), 'the user data carries the new swarm key')
    assert.ok(userData.includes('"--agent-bundle","https://downloads.example/goto-node-0.1.0-bundle.tar.gz"'))
    assert.ok(userData.includes('"--bootstrap","/ip4/10.1.0.4/tcp/4001"'))
    assert.doesNotMatch(userData, /AKIA|test-secret/, 'no AWS credential in the user data')
    await assertValidCloudConfig(dir.path, userData)

    assert.deepEqual(aws.calls.slice(-2).map(c => c.params['InstanceId.1']), ['i-0fake', 'i-0fake'])
    assert.match(ran.stdout, /running {7}i-0fake in eu-west-1: public ec2-198-51-100-7\.compute\.amazonaws\.com, private 172\.31\.5\.9/)
    assert.match(ran.stdout, /connect {7}ssh ubuntu@ec2-198-51-100-7\.compute\.amazonaws\.com/)
    assert.match(ran.stdout, /teardown {6}aws ec2 terminate-instances --region eu-west-1 --instance-ids i-0fake/)
  })

  it('launch: a refused RunInstances removes the security group it made and says who refused what', async () => {
    const ran = await cli(launchArgs('refused'), { keyPairs: { 'eu-west-1': ['goto'] }, refuse: { 'ec2:RunInstances': 'UnauthorizedOperation' } })
    assertFailed(ran, 1, 'GOTO_ERR_AWS_REFUSED', /AWS refused RunInstances in eu-west-1 \(UnauthorizedOperation\): You are not authorized/)
    assert.deepEqual(actions().slice(-2), ['eu-west-1 ec2:RunInstances', 'eu-west-1 ec2:DeleteSecurityGroup'])
    assert.equal(aws.calls.at(-1)?.params.GroupId, 'sg-0fake')
  })

  it('launch: an IPv6 admin range is opened as an IPv6 range', async () => {
    const ran = await cli(launchArgs('ipv6').map(a => a === '203.0.113.7/32' ? '2001:db8:7::/48' : a), { keyPairs: { 'eu-west-1': ['goto'] }, pendingPolls: 0 })
    assert.equal(ran.code, 0, ran.stderr)
    const ingress = aws.calls.find(c => c.action === 'ec2:AuthorizeSecurityGroupIngress')?.params ?? {}
    assert.equal(ingress['IpPermissions.1.Ipv6Ranges.1.CidrIpv6'], '2001:db8:7::/48')
    assert.equal(ingress['IpPermissions.1.IpRanges.1.CidrIp'], undefined)
  })

  it('launch: a key pair missing from the region stops it before anything is made', async () => {
    const ran = await cli(launchArgs('nokey'), { keyPairs: {} })
    assertFailed(ran, 1, 'GOTO_ERR_AWS_NO_KEY_PAIR', /key pair "goto" is not in eu-west-1; import it first/)
    assert.deepEqual(actions(), ['eu-west-1 ssm:GetParameter', 'eu-west-1 ec2:DescribeKeyPairs'])
  })

  it('launch: SSH from anywhere and a public mesh range are refused before any call', async () => {
    const anySsh = await cli(launchArgs('anyssh').map(a => a === '203.0.113.7/32' ? '0.0.0.0/0' : a))
    assertFailed(anySsh, 1, 'GOTO_ERR_UNSAFE_SSH_SOURCE', /opens SSH to the whole internet/)
    assert.equal(aws.calls.length, 0)
    const publicVpn = await cli(launchArgs('publicvpn').map(a => a === '10.0.0.0/8' ? '8.8.0.0/16' : a))
    assertFailed(publicVpn, 1, 'GOTO_ERR_UNSAFE_MESH_SOURCE', /not a private range/)
    assert.equal(aws.calls.length, 0)
  })

  it('no credentials anywhere in the chain: one clear line, exit 1, nothing sent', async () => {
    const ran = await cli(['check', '--region', 'eu-west-1'], {}, false)
    assertFailed(ran, 1, 'GOTO_ERR_AWS_NO_CREDENTIALS', /no AWS credentials found: set AWS_PROFILE/)
    assert.equal(aws.calls.length, 0)
  })

  it('a refused first call, a missing flag, an unknown command, and --help', async () => {
    const refused = await cli(['check', '--region', 'eu-west-1'], { refuse: { 'ec2:DescribeRegions': 'UnauthorizedOperation' } })
    assertFailed(refused, 1, 'GOTO_ERR_AWS_REFUSED', /AWS refused DescribeRegions in eu-west-1/)
    assertFailed(await cli(launchArgs('usage').filter(a => a !== '--tag' && a !== 'demo')), 2, 'GOTO_ERR_USAGE', /--tag is required/)
    assertFailed(await cli(['destroy']), 2, 'GOTO_ERR_USAGE', /unknown command "destroy"/)
    const help = await cli(['launch', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /--admin-cidr CIDR/)
    assert.match(help.stdout, /IMDSv2/)
  })
})
