/**
 * `npm run deploy:aws -- COMMAND`: the Go-To hosts on EC2. Credentials and the
 * default region come from the standard AWS chain (environment, ~/.aws, SSO,
 * instance roles); AWS_ENDPOINT_URL points every call at another endpoint.
 *
 *   node deploy/aws/cli.ts check --region eu-west-1
 *   node deploy/aws/cli.ts keypair import --name goto --all-regions
 *   node deploy/aws/cli.ts launch --name-prefix goto --tag demo --key-name goto \
 *     --admin-cidr 203.0.113.7/32 --vpn-cidr 10.0.0.0/8 --agent-bundle-url https://…/goto-node-0.1.0-bundle.tar.gz
 */
import { resolve } from 'node:path'
import { EC2Client } from '@aws-sdk/client-ec2'
import { SSMClient } from '@aws-sdk/client-ssm'
import { runCli, processIo, required, integer, str, list, type Command, type Io, type Values } from '../lib/cli.ts'
import { UsageError } from '../lib/errors.ts'
import { adminCidr, vpnCidr, MESH_PORT } from '../lib/net.ts'
import { defaultPublicKeyPath, readPublicKey } from '../lib/ssh-key.ts'
import { swarmKeyFor, forgetNewKey } from '../lib/swarm-key.ts'
import { renderUserData } from '../lib/user-data.ts'
import { hostName } from '../lib/names.ts'
import { check, importKeyPair, launch, listRegions, type AwsDeps } from './ec2.ts'

const PROGRAM = 'goto-aws'

/** One client per region, made when first asked for. */
function perRegion<T> (make: (region: string) => T): (region: string) => T {
  const made = new Map<string, T>()
  return region => {
    let client = made.get(region)
    if (client == null) {
      client = make(region)
      made.set(region, client)
    }
    return client
  }
}

function deps (io: Io): AwsDeps {
  return {
    ec2: perRegion(region => new EC2Client({ region })),
    ssm: perRegion(region => new SSMClient({ region })),
    out: io.out
  }
}

/** --region, else AWS_REGION or AWS_DEFAULT_REGION. */
function region (values: Values, io: Io): string {
  const r = str(values.region) ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION
  if (r == null || r === '') throw new UsageError('no region: pass --region, or set AWS_REGION')
  return r
}

const REGION_HELP = '  --region REGION          the region to use (default: $AWS_REGION)'
const CREDENTIALS_HELP = `Credentials: the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws,
SSO, an instance role). AWS_ENDPOINT_URL sends every call to another endpoint.`

const commands: Record<string, Command> = {
  check: {
    summary: 'show the credentials in use, the regions, and each region\'s instances and key pairs',
    usage: 'goto-aws check [--region REGION]',
    details: `${REGION_HELP} (where the regions are listed)\n\n${CREDENTIALS_HELP}\nExit 1 when a region refused a call (the others are still shown).`,
    options: { region: { type: 'string' } },
    positionals: [0, 0],
    async run (values, _, io) {
      return await check(deps(io), region(values, io))
    }
  },

  'keypair import': {
    summary: 'import your SSH public key as an EC2 key pair, in one region or in all of them',
    usage: 'goto-aws keypair import --name NAME [--public-key FILE] (--region REGION | --all-regions)',
    details: `  --name NAME              the key pair's name in EC2 (launch --key-name takes it)
  --public-key FILE        an OpenSSH public key (default: ~/.ssh/id_ed25519.pub); only the public half is sent
${REGION_HELP}
  --all-regions            every region the account may use (EC2 key pairs are per region)
A region that already has a key pair of that name is left as it is.

${CREDENTIALS_HELP}`,
    options: { name: { type: 'string' }, 'public-key': { type: 'string' }, region: { type: 'string' }, 'all-regions': { type: 'boolean' } },
    positionals: [0, 0],
    async run (values, _, io) {
      const name = required(values, 'name')
      const key = await readPublicKey(str(values['public-key']) ?? defaultPublicKeyPath(io.env))
      const d = deps(io)
      const home = region(values, io)
      const regions = values['all-regions'] === true ? (await listRegions(d, home)).map(r => r.name) : [home]
      return await importKeyPair(d, { name, publicKey: key.line, regions })
    }
  },

  launch: {
    summary: 'start one agent host: Ubuntu LTS, a locked-down security group, cloud-init that installs and joins the agent',
    usage: 'goto-aws launch --name-prefix PREFIX --tag TAG --key-name NAME --admin-cidr CIDR --vpn-cidr CIDR --agent-bundle-url URL [options]',
    details: `  --name-prefix PREFIX     the host is named PREFIX-<UTC time>: Name tag, security group, mesh name
  --tag TAG                the goto:mesh tag on everything made, to find one mesh's hosts
  --key-name NAME          an EC2 key pair in the region (see "keypair import")
  --admin-cidr CIDR        who may SSH in, e.g. 203.0.113.7/32; 0.0.0.0/0 is refused without --allow-any-ssh
  --vpn-cidr CIDR          the private range the mesh port (tcp/${MESH_PORT}) is opened to: the VPN's, e.g. 10.0.0.0/8
  --agent-bundle-url URL   https URL of the agent bundle (npm run deploy:bundle), which the host downloads
  --swarm-key FILE         the mesh's key; without it a new mesh starts and its key is written to ./PREFIX-<time>.swarm.key
  --bootstrap MULTIADDR    a mesh member to join through, e.g. /ip4/10.1.0.4/tcp/${MESH_PORT}; repeat for more
${REGION_HELP}
  --instance-type TYPE     default t3.small (for --arch arm64: e.g. t4g.small)
  --arch amd64|arm64       default amd64
  --disk-gb N              root volume, gp3, encrypted (default 20)
  --subnet-id ID           launch into this subnet (default: the region's default VPC)
  --poll-seconds N         seconds between checks while waiting for "running" (default 5)
  --allow-any-ssh          accept an --admin-cidr of 0.0.0.0/0 or ::/0

The instance gets IMDSv2 only (hop limit 1), so its containers cannot read the user data, whose one
secret is the swarm key. No AWS credential is put on the instance.

${CREDENTIALS_HELP}`,
    options: {
      'name-prefix': { type: 'string' },
      tag: { type: 'string' },
      'key-name': { type: 'string' },
      'admin-cidr': { type: 'string' },
      'vpn-cidr': { type: 'string' },
      'agent-bundle-url': { type: 'string' },
      'swarm-key': { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      region: { type: 'string' },
      'instance-type': { type: 'string' },
      arch: { type: 'string' },
      'disk-gb': { type: 'string' },
      'subnet-id': { type: 'string' },
      'poll-seconds': { type: 'string' },
      'allow-any-ssh': { type: 'boolean' }
    },
    positionals: [0, 0],
    async run (values, _, io) {
      const name = hostName(required(values, 'name-prefix'))
      const tag = required(values, 'tag')
      const keyName = required(values, 'key-name')
      const admin = adminCidr(required(values, 'admin-cidr'), values['allow-any-ssh'] === true)
      const vpn = vpnCidr(required(values, 'vpn-cidr'))
      const agentBundleUrl = required(values, 'agent-bundle-url')
      const arch = str(values.arch) ?? 'amd64'
      if (arch !== 'amd64' && arch !== 'arm64') throw new UsageError(`--arch must be amd64 or arm64, not "${arch}"`)
      const where = region(values, io)
      const swarm = await swarmKeyFor(str(values['swarm-key']), resolve(`${name}.swarm.key`))
      const userData = renderUserData({ agentBundleUrl, swarmKey: swarm.text, name, bootstrap: list(values.bootstrap), operator: 'ubuntu' })

      const host = await launch(deps(io), {
        region: where,
        name,
        tag,
        keyName,
        instanceType: str(values['instance-type']) ?? 't3.small',
        arch,
        diskGb: integer(values, 'disk-gb', 20),
        adminCidr: admin,
        vpnCidr: vpn,
        subnetId: str(values['subnet-id']),
        userData,
        pollSeconds: integer(values, 'poll-seconds', 5),
        maxWaitSeconds: 600
      }).catch(async (err: unknown) => {
        await forgetNewKey(swarm)
        throw err
      })
      const address = host.publicDns !== '' ? host.publicDns : host.publicIp
      io.out(`running       ${host.instanceId} in ${where}: public ${address || '(none)'}, private ${host.privateIp}`)
      io.out(swarm.createdAt != null
        ? `swarm key     a new mesh; its key is in ${swarm.createdAt} (0600): launch the other hosts with --swarm-key ${swarm.createdAt}`
        : 'swarm key     the one given: this host joins that mesh')
      io.out(`connect       ssh ubuntu@${address || host.privateIp}   (cloud-init installs the agent in a few minutes)`)
      io.out(`the agent     ssh ubuntu@${address || host.privateIp} goto-node status`)
      io.out(`mesh          other hosts join with --bootstrap /ip4/${host.privateIp}/tcp/${MESH_PORT} (across the VPN)`)
      io.out(`teardown      aws ec2 terminate-instances --region ${where} --instance-ids ${host.instanceId}`)
      io.out(`              aws ec2 delete-security-group --region ${where} --group-id ${host.securityGroupId}   (once it has terminated)`)
      return 0
    }
  }
}

export async function main (argv: string[], io: Io = processIo()): Promise<number> {
  return await runCli(PROGRAM, 'Go-To agent hosts on AWS EC2', commands, argv, io)
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
