/**
 * Address ranges given on the command line: the admin's range that may reach
 * SSH, and the VPN range that may reach the mesh port. Neither may be the whole
 * internet unless the operator says so in as many words (`--allow-any-ssh`).
 */
import { isIPv4, isIPv6 } from 'node:net'
import { DeployError, UsageError } from './errors.ts'

/** The agents' mesh port (`goto-node start --listen /ip4/0.0.0.0/tcp/4001`). */
export const MESH_PORT = 4001
export const SSH_PORT = 22

export interface Cidr {
  text: string
  family: 4 | 6
  address: string
  prefix: number
}

export function parseCidr (text: string, flag: string): Cidr {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text)
  const address = match?.[1] ?? ''
  const prefix = Number(match?.[2])
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined
  if (match == null || family == null || prefix > (family === 4 ? 32 : 128)) {
    throw new UsageError(`--${flag} "${text}" is not an address range such as 203.0.113.7/32`)
  }
  return { text, family, address, prefix }
}

function ipv4Number (address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}

/** True when the whole range lies in 10/8, 172.16/12, 192.168/16 or fc00::/7. */
export function isPrivateRange (cidr: Cidr): boolean {
  if (cidr.family === 6) return cidr.prefix >= 7 && /^f[cd]/i.test(cidr.address)
  const n = ipv4Number(cidr.address)
  const inside = (base: string, bits: number): boolean =>
    cidr.prefix >= bits && Math.floor(n / 2 ** (32 - bits)) === Math.floor(ipv4Number(base) / 2 ** (32 - bits))
  return inside('10.0.0.0', 8) || inside('172.16.0.0', 12) || inside('192.168.0.0', 16)
}

/**
 * The range SSH is opened to. A /0 (the whole internet) is refused unless
 * `allowAny`, since it exposes the hosts to every scanner there is.
 */
export function adminCidr (text: string, allowAny: boolean): Cidr {
  const cidr = parseCidr(text, 'admin-cidr')
  if (cidr.prefix === 0 && !allowAny) {
    throw new DeployError('GOTO_ERR_UNSAFE_SSH_SOURCE', `--admin-cidr ${text} opens SSH to the whole internet; give your own address range (e.g. 203.0.113.7/32), or add --allow-any-ssh if you really mean it`)
  }
  return cidr
}

/** The range the mesh port is opened to: the VPN's, which must be private. */
export function vpnCidr (text: string): Cidr {
  const cidr = parseCidr(text, 'vpn-cidr')
  if (!isPrivateRange(cidr)) {
    throw new DeployError('GOTO_ERR_UNSAFE_MESH_SOURCE', `--vpn-cidr ${text} is not a private range; the mesh port is opened only to the VPN's private ranges (10/8, 172.16/12, 192.168/16, fc00::/7)`)
  }
  return cidr
}
