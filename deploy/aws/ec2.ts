/**
 * What the AWS commands do, as calls on the EC2 and SSM clients they are given:
 * `check` shows the account as the original check script did, `importKeyPair`
 * puts one SSH public key into every region that lacks it, `launch` starts one
 * agent host. Every SDK error becomes a DeployError with a stable code.
 *
 * @example
 * ```ts
 * const deps = { ec2: region => new EC2Client({ region }), ssm: region => new SSMClient({ region }), out: console.log }
 * await check(deps, 'eu-west-1')
 * ```
 */
import {
  AuthorizeSecurityGroupIngressCommand, CreateSecurityGroupCommand, DeleteSecurityGroupCommand, DescribeInstancesCommand,
  DescribeKeyPairsCommand, DescribeRegionsCommand, DescribeSubnetsCommand, DescribeVpcsCommand, ImportKeyPairCommand,
  RunInstancesCommand, waitUntilInstanceRunning, type EC2Client, type Instance, type IpPermission, type Tag,
  type TagSpecification, type ResourceType, type _InstanceType
} from '@aws-sdk/client-ec2'
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm'
import { DeployError } from '../lib/errors.ts'
import { oneLine } from '../lib/cli.ts'
import { MESH_PORT, SSH_PORT, type Cidr } from '../lib/net.ts'

export interface AwsDeps {
  ec2(region: string): EC2Client
  ssm(region: string): SSMClient
  out(line: string): void
}

/** Canonical's public SSM parameter for the current Ubuntu 24.04 LTS server AMI. */
export function ubuntuAmiParameter (arch: 'amd64' | 'arm64'): string {
  return `/aws/service/canonical/ubuntu/server/24.04/stable/current/${arch}/hvm/ebs-gp3/ami-id`
}

/** Turn an SDK failure into one of ours, naming the call and the region. */
export function cloudError (err: any, call: string, region: string): DeployError {
  if (err instanceof DeployError) return err
  const name = String(err?.name ?? '')
  const message = oneLine(String(err?.message ?? err))
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new DeployError('GOTO_ERR_AWS_NO_CREDENTIALS', 'no AWS credentials found: set AWS_PROFILE (after "aws configure" or "aws sso login"), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY')
  }
  if (/region is missing/i.test(message)) {
    return new DeployError('GOTO_ERR_AWS_NO_REGION', 'no AWS region: pass --region, or set AWS_REGION')
  }
  if (['UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException', 'AuthFailure', 'OptInRequired'].includes(name)) {
    return new DeployError('GOTO_ERR_AWS_REFUSED', `AWS refused ${call} in ${region} (${name}): ${message}`)
  }
  return new DeployError('GOTO_ERR_AWS_CALL', `${call} in ${region} failed (${name || 'error'}): ${message}`)
}

async function call<T> (name: string, region: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw cloudError(err, name, region)
  }
}

function mask (accessKeyId: string): string {
  return accessKeyId.length > 8 ? `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}` : '…'
}

function nameTag (tags: Tag[] | undefined): string {
  return tags?.find(t => t.Key === 'Name')?.Value ?? ''
}

/** The regions this account may use, by name. */
export async function listRegions (deps: AwsDeps, region: string): Promise<Array<{ name: string, endpoint: string }>> {
  const res = await call('DescribeRegions', region, async () => await deps.ec2(region).send(new DescribeRegionsCommand({})))
  return (res.Regions ?? [])
    .map(r => ({ name: r.RegionName ?? '', endpoint: r.Endpoint ?? '' }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/**
 * Credentials, regions, and in each region the instances and key pairs.
 * A region that refuses is reported and the others still shown; exit 1 then.
 */
export async function check (deps: AwsDeps, region: string): Promise<number> {
  const ec2 = deps.ec2(region)
  const credentials = await call('credentials', region, async () => await ec2.config.credentials())
  deps.out(`credentials  ${mask(credentials.accessKeyId)} (the default credential chain)`)
  const regions = await listRegions(deps, region)
  deps.out(`\nEC2 regions (${regions.length}):`)
  for (const r of regions) deps.out(`  ${r.name.padEnd(20)} https://${r.endpoint}`)
  let failed = 0
  for (const r of regions) {
    deps.out(`\n${r.name}`)
    try {
      const client = deps.ec2(r.name)
      const instances = await call('DescribeInstances', r.name, async () => await client.send(new DescribeInstancesCommand({})))
      const list = (instances.Reservations ?? []).flatMap(res => (res.Instances ?? []).map(i => ({ res, i })))
      deps.out(list.length === 0 ? '  instances: none' : '  instances:')
      for (const { res, i } of list) {
        deps.out(`    ${i.InstanceId ?? ''}  ${i.State?.Name ?? ''}  ${i.InstanceType ?? ''}  ${i.PublicDnsName ?? ''}  ${nameTag(i.Tags)}  (reservation ${res.ReservationId ?? ''}, owner ${res.OwnerId ?? ''})`.trimEnd())
      }
      const keys = await call('DescribeKeyPairs', r.name, async () => await client.send(new DescribeKeyPairsCommand({})))
      deps.out(`  key pairs: ${(keys.KeyPairs ?? []).map(k => `${k.KeyName ?? ''} (${k.KeyType ?? ''})`).join(', ') || 'none'}`)
    } catch (err: any) {
      failed++
      deps.out(`  ! ${err.code}: ${err.message}`)
    }
  }
  return failed === 0 ? 0 : 1
}

export interface ImportKeyInit {
  name: string
  /** The OpenSSH public key line. */
  publicKey: string
  regions: string[]
}

/** Import the key into each region that lacks one of that name; a region that refuses does not stop the rest. */
export async function importKeyPair (deps: AwsDeps, init: ImportKeyInit): Promise<number> {
  const failed: string[] = []
  for (const region of init.regions) {
    const client = deps.ec2(region)
    try {
      const existing = await call('DescribeKeyPairs', region, async () => await client.send(new DescribeKeyPairsCommand({ Filters: [{ Name: 'key-name', Values: [init.name] }] })))
      if ((existing.KeyPairs ?? []).length > 0) {
        deps.out(`${region.padEnd(16)} ${init.name} is already there (${existing.KeyPairs?.[0]?.KeyFingerprint ?? ''}); left as it is`)
        continue
      }
      const res = await call('ImportKeyPair', region, async () => await client.send(new ImportKeyPairCommand({
        KeyName: init.name,
        PublicKeyMaterial: new TextEncoder().encode(init.publicKey),
        TagSpecifications: [tagSpec('key-pair', init.name)]
      })))
      deps.out(`${region.padEnd(16)} imported ${init.name} (${res.KeyFingerprint ?? ''})`)
    } catch (err: any) {
      failed.push(region)
      deps.out(`${region.padEnd(16)} ! ${err.code}: ${err.message}`)
    }
  }
  if (failed.length > 0) {
    throw new DeployError('GOTO_ERR_AWS_KEY_IMPORT', `the key was not imported into ${failed.join(', ')} (see above)`)
  }
  return 0
}

export interface LaunchInit {
  region: string
  /** The host's name: the Name tag, the security group's name and the agent's name. */
  name: string
  /** Value of the goto:mesh tag, to find the hosts of one mesh. */
  tag: string
  keyName: string
  instanceType: string
  arch: 'amd64' | 'arm64'
  diskGb: number
  adminCidr: Cidr
  vpnCidr: Cidr
  subnetId?: string
  /** The rendered cloud-init user data. */
  userData: string
  /** Seconds between checks while the instance starts. */
  pollSeconds: number
  /** Give up waiting after this many seconds. */
  maxWaitSeconds: number
}

export interface Launched {
  instanceId: string
  securityGroupId: string
  imageId: string
  publicDns: string
  publicIp: string
  privateIp: string
}

function tagSpec (type: ResourceType, name: string, tag?: string): TagSpecification {
  const tags: Tag[] = [{ Key: 'Name', Value: name }, { Key: 'goto:managed-by', Value: 'goto-deploy' }]
  if (tag != null) tags.push({ Key: 'goto:mesh', Value: tag })
  return { ResourceType: type, Tags: tags }
}

function ingress (port: number, cidr: Cidr, description: string): IpPermission {
  const range = cidr.family === 4
    ? { IpRanges: [{ CidrIp: cidr.text, Description: description }] }
    : { Ipv6Ranges: [{ CidrIpv6: cidr.text, Description: description }] }
  return { IpProtocol: 'tcp', FromPort: port, ToPort: port, ...range }
}

async function findVpc (deps: AwsDeps, init: LaunchInit): Promise<string> {
  const ec2 = deps.ec2(init.region)
  if (init.subnetId != null) {
    const res = await call('DescribeSubnets', init.region, async () => await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [init.subnetId ?? ''] })))
    const vpc = res.Subnets?.[0]?.VpcId
    if (vpc == null) throw new DeployError('GOTO_ERR_AWS_NO_VPC', `subnet ${init.subnetId} was not found in ${init.region}`)
    return vpc
  }
  const res = await call('DescribeVpcs', init.region, async () => await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] })))
  const vpc = res.Vpcs?.[0]?.VpcId
  if (vpc == null) throw new DeployError('GOTO_ERR_AWS_NO_VPC', `${init.region} has no default VPC; pass --subnet-id of the subnet to launch into`)
  return vpc
}

/** The latest Ubuntu LTS AMI, a security group of two rules, one instance; waits until it runs. */
export async function launch (deps: AwsDeps, init: LaunchInit): Promise<Launched> {
  const { region } = init
  const ec2 = deps.ec2(region)
  const parameter = ubuntuAmiParameter(init.arch)
  const ami = await call('ssm:GetParameter', region, async () => await deps.ssm(region).send(new GetParameterCommand({ Name: parameter })))
  const imageId = ami.Parameter?.Value
  if (imageId == null || !imageId.startsWith('ami-')) throw new DeployError('GOTO_ERR_AWS_NO_AMI', `${parameter} gave no AMI id in ${region}`)
  deps.out(`image         ${imageId} (Ubuntu 24.04 LTS, ${init.arch}, from ${parameter})`)

  const keys = await call('DescribeKeyPairs', region, async () => await ec2.send(new DescribeKeyPairsCommand({ Filters: [{ Name: 'key-name', Values: [init.keyName] }] })))
  if ((keys.KeyPairs ?? []).length === 0) {
    throw new DeployError('GOTO_ERR_AWS_NO_KEY_PAIR', `key pair "${init.keyName}" is not in ${region}; import it first: npm run deploy:aws -- keypair import --name ${init.keyName} --region ${region}`)
  }
  const vpcId = await findVpc(deps, init)

  const group = await call('CreateSecurityGroup', region, async () => await ec2.send(new CreateSecurityGroupCommand({
    GroupName: init.name,
    Description: `Go-To agent ${init.name}: SSH from the admin range, the mesh port from the VPN range`,
    VpcId: vpcId,
    TagSpecifications: [tagSpec('security-group', init.name, init.tag)]
  })))
  const securityGroupId = group.GroupId ?? ''
  deps.out(`security group ${securityGroupId} in ${vpcId}: tcp/${SSH_PORT} from ${init.adminCidr.text}, tcp/${MESH_PORT} from ${init.vpnCidr.text}`)

  let instance: Instance
  try {
    await call('AuthorizeSecurityGroupIngress', region, async () => await ec2.send(new AuthorizeSecurityGroupIngressCommand({
      GroupId: securityGroupId,
      IpPermissions: [
        ingress(SSH_PORT, init.adminCidr, 'SSH from the admin range'),
        ingress(MESH_PORT, init.vpnCidr, 'goto-node mesh from the VPN range')
      ]
    })))
    const run = await call('RunInstances', region, async () => await ec2.send(new RunInstancesCommand({
      ImageId: imageId,
      // EC2 adds types faster than the SDK's list: the API says whether one exists
      InstanceType: init.instanceType as _InstanceType,
      KeyName: init.keyName,
      MinCount: 1,
      MaxCount: 1,
      SecurityGroupIds: [securityGroupId],
      ...(init.subnetId != null ? { SubnetId: init.subnetId } : {}),
      UserData: Buffer.from(init.userData).toString('base64'),
      // IMDSv2 only, one hop: the host reads its metadata (and the user data with the swarm key), its containers cannot
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: init.diskGb, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true } }],
      TagSpecifications: [tagSpec('instance', init.name, init.tag), tagSpec('volume', init.name, init.tag)]
    })))
    const first = run.Instances?.[0]
    if (first?.InstanceId == null) throw new DeployError('GOTO_ERR_AWS_CALL', `RunInstances in ${region} returned no instance`)
    instance = first
  } catch (err) {
    // nothing uses the group yet: remove it so a failed launch leaves nothing behind
    await ec2.send(new DeleteSecurityGroupCommand({ GroupId: securityGroupId })).catch(() => {
      deps.out(`! could not delete security group ${securityGroupId}; delete it by hand`)
    })
    throw err
  }
  const instanceId = instance.InstanceId ?? ''
  deps.out(`instance      ${instanceId} (${init.instanceType}) starting…`)

  const waited = await call('DescribeInstances', region, async () => await waitUntilInstanceRunning(
    { client: ec2, minDelay: init.pollSeconds, maxDelay: Math.max(init.pollSeconds, 30), maxWaitTime: init.maxWaitSeconds },
    { InstanceIds: [instanceId] }
  )).catch((err: any) => {
    throw err instanceof DeployError && err.code === 'GOTO_ERR_AWS_CALL'
      ? new DeployError('GOTO_ERR_AWS_NOT_RUNNING', `${instanceId} did not reach "running" within ${init.maxWaitSeconds} s: ${err.message}`)
      : err
  })
  const running = waited.reason?.Reservations?.[0]?.Instances?.[0] ?? instance
  return {
    instanceId,
    securityGroupId,
    imageId,
    publicDns: running.PublicDnsName ?? '',
    publicIp: running.PublicIpAddress ?? '',
    privateIp: running.PrivateIpAddress ?? ''
  }
}
