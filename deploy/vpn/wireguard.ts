/**
 * WireGuard site-to-site configuration for two gateway hosts, one in the AWS
 * VPC and one in the Azure VNet: a key pair for each and a preshared key for
 * the pair, made here with node:crypto (X25519, as WireGuard's keys are), and
 * one wg-quick file per gateway whose AllowedIPs route the other side's range
 * into the tunnel. The clouds' own route tables, which send that range to the
 * gateway, are printed as steps (see `routeSteps`).
 *
 * @example
 * ```ts
 * const { aws, azure } = siteToSite({ aws: { endpoint: '198.51.100.7', cidr: '172.31.0.0/16' }, azure: { endpoint: '20.31.0.7', cidr: '10.20.0.0/16' } })
 * ```
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { DeployError } from '../lib/errors.ts'

export const WIREGUARD_PORT = 51820
/** The tunnel's own two addresses. */
export const TUNNEL_CIDR = '10.255.255.0/30'

export interface Site {
  /** The gateway's public address (or DNS name), as the other gateway dials it. */
  endpoint: string
  /** The private range behind the gateway: the VPC's or the VNet's. */
  cidr: string
}

export interface SiteToSiteInit {
  aws: Site
  azure: Site
  /** @default 51820 */
  port?: number
  /** A /30 for the tunnel's two ends. @default 10.255.255.0/30 */
  tunnelCidr?: string
}

export interface GatewayConfig {
  /** The wg-quick file for /etc/wireguard/wg-goto.conf. */
  conf: string
  publicKey: string
  tunnelAddress: string
}

/** A WireGuard key pair, base64 as `wg genkey`/`wg pubkey` print them. */
export function keyPair (): { privateKey: string, publicKey: string } {
  const { privateKey } = generateKeyPairSync('x25519')
  const jwk = privateKey.export({ format: 'jwk' })
  const b64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64url').toString('base64')
  return { privateKey: b64(jwk.d), publicKey: b64(jwk.x) }
}

function tunnelAddresses (cidr: string): [string, string] {
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/30$/.exec(cidr)
  if (match == null || Number(match[4]) % 4 !== 0) throw new DeployError('GOTO_ERR_VPN_TUNNEL', `--tunnel-cidr ${cidr} must be a /30 on its boundary, e.g. 10.255.255.0/30`)
  const base = `${match[1]}.${match[2]}.${match[3]}.`
  return [`${base}${Number(match[4]) + 1}`, `${base}${Number(match[4]) + 2}`]
}

function conf (side: string, other: string, self: Site, peer: Site, addr: string, peerAddr: string, privateKey: string, peerPublic: string, psk: string, port: number): string {
  const host = peer.endpoint.includes(':') ? `[${peer.endpoint}]` : peer.endpoint
  return `# Go-To site-to-site VPN, the ${side} gateway: ${self.cidr} <-> ${other} ${peer.cidr}.
# Made by deploy/vpn (npm run deploy:vpn). Install as /etc/wireguard/wg-goto.conf (mode 0600, it holds
# this gateway's private key), then: systemctl enable --now wg-quick@wg-goto
[Interface]
Address = ${addr}/30
ListenPort = ${port}
PrivateKey = ${privateKey}
# this host forwards between its network and the tunnel
PostUp = sysctl -q -w net.ipv4.ip_forward=1

[Peer]
# the ${other} gateway; wg-quick routes AllowedIPs (its tunnel address and its range) into the tunnel
PublicKey = ${peerPublic}
PresharedKey = ${psk}
Endpoint = ${host}:${port}
AllowedIPs = ${peerAddr}/32, ${peer.cidr}
PersistentKeepalive = 25
`
}

export function siteToSite (init: SiteToSiteInit): { aws: GatewayConfig, azure: GatewayConfig } {
  const port = init.port ?? WIREGUARD_PORT
  const [awsAddr, azureAddr] = tunnelAddresses(init.tunnelCidr ?? TUNNEL_CIDR)
  const awsKeys = keyPair()
  const azureKeys = keyPair()
  const psk = randomBytes(32).toString('base64')
  return {
    aws: {
      conf: conf('AWS', 'Azure', init.aws, init.azure, awsAddr, azureAddr, awsKeys.privateKey, azureKeys.publicKey, psk, port),
      publicKey: awsKeys.publicKey,
      tunnelAddress: awsAddr
    },
    azure: {
      conf: conf('Azure', 'AWS', init.azure, init.aws, azureAddr, awsAddr, azureKeys.privateKey, awsKeys.publicKey, psk, port),
      publicKey: azureKeys.publicKey,
      tunnelAddress: azureAddr
    }
  }
}

/** What the clouds need besides the two files: the routes to each gateway, and the tunnel's port. */
export function routeSteps (init: SiteToSiteInit): string[] {
  const port = init.port ?? WIREGUARD_PORT
  return [
    'AWS (the VPC):',
    `  - the gateway instance: turn off its source/destination check (aws ec2 modify-instance-attribute --no-source-dest-check --instance-id …)`,
    `  - the VPC's route tables: ${init.azure.cidr} -> the gateway instance (aws ec2 create-route --destination-cidr-block ${init.azure.cidr} --instance-id … --route-table-id …)`,
    `  - the gateway's security group: udp/${port} from ${init.azure.endpoint} only`,
    `  - the agents' security groups: tcp/4001 from ${init.azure.cidr} (launch --vpn-cidr)`,
    'Azure (the VNet):',
    '  - the gateway NIC: IP forwarding on (az network nic update --ip-forwarding true …)',
    `  - a route table on the agents' subnet: ${init.aws.cidr} -> VirtualAppliance at the gateway's private IP (az network route-table route create --address-prefix ${init.aws.cidr} --next-hop-type VirtualAppliance --next-hop-ip-address …)`,
    `  - the gateway's NSG: udp/${port} from ${init.aws.endpoint} only`,
    `  - the agents' NSGs: tcp/4001 from ${init.aws.cidr} (launch --vpn-cidr)`
  ]
}
