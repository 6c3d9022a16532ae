/**
 * `npm run deploy:vpn -- site-to-site …`: the WireGuard files for the two
 * gateways that join the AWS VPC and the Azure VNet, and the cloud routes
 * that complete them. Nothing is sent anywhere: the files are written to --out.
 *
 *   node deploy/vpn/cli.ts site-to-site --aws-endpoint 198.51.100.7 --aws-cidr 172.31.0.0/16 \
 *     --azure-endpoint 20.31.0.7 --azure-cidr 10.20.0.0/16 --out ./vpn
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { runCli, processIo, required, integer, str, type Command, type Io } from '../lib/cli.ts'
import { DeployError } from '../lib/errors.ts'
import { parseCidr, isPrivateRange } from '../lib/net.ts'
import { siteToSite, routeSteps, WIREGUARD_PORT, TUNNEL_CIDR } from './wireguard.ts'

function privateRange (text: string, flag: string): string {
  const cidr = parseCidr(text, flag)
  if (!isPrivateRange(cidr)) throw new DeployError('GOTO_ERR_VPN_RANGE', `--${flag} ${text} is not a private range (10/8, 172.16/12, 192.168/16)`)
  return cidr.text
}

async function writeSecret (path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600, flag: 'wx' }).catch((err: any) => {
    throw new DeployError('GOTO_ERR_VPN_OUT', `cannot write ${path}: ${err.code ?? err.message} (an earlier configuration is never overwritten)`)
  })
}

const commands: Record<string, Command> = {
  'site-to-site': {
    summary: 'write the WireGuard configuration of the AWS and the Azure gateway, and print the routes to add',
    usage: 'goto-vpn site-to-site --aws-endpoint ADDR --aws-cidr CIDR --azure-endpoint ADDR --azure-cidr CIDR --out DIR [--port N] [--tunnel-cidr CIDR]',
    details: `  --aws-endpoint ADDR      the AWS gateway's public IP or DNS name
  --aws-cidr CIDR          the VPC's range, e.g. 172.31.0.0/16
  --azure-endpoint ADDR    the Azure gateway's public IP or DNS name
  --azure-cidr CIDR        the VNet's range, e.g. 10.20.0.0/16
  --out DIR                writes DIR/aws-gateway/wg-goto.conf and DIR/azure-gateway/wg-goto.conf (0600: each holds a
                           private key; copy each to its gateway only, then delete it here)
  --port N                 the UDP port of both ends (default ${WIREGUARD_PORT})
  --tunnel-cidr CIDR       a /30 for the tunnel's two addresses (default ${TUNNEL_CIDR})`,
    options: {
      'aws-endpoint': { type: 'string' },
      'aws-cidr': { type: 'string' },
      'azure-endpoint': { type: 'string' },
      'azure-cidr': { type: 'string' },
      out: { type: 'string' },
      port: { type: 'string' },
      'tunnel-cidr': { type: 'string' }
    },
    positionals: [0, 0],
    async run (values, _, io) {
      const init = {
        aws: { endpoint: required(values, 'aws-endpoint'), cidr: privateRange(required(values, 'aws-cidr'), 'aws-cidr') },
        azure: { endpoint: required(values, 'azure-endpoint'), cidr: privateRange(required(values, 'azure-cidr'), 'azure-cidr') },
        port: integer(values, 'port', WIREGUARD_PORT),
        tunnelCidr: str(values['tunnel-cidr']) ?? TUNNEL_CIDR
      }
      const out = resolve(required(values, 'out'))
      const { aws, azure } = siteToSite(init)
      for (const [side, gw] of [['aws-gateway', aws], ['azure-gateway', azure]] as const) {
        await mkdir(join(out, side), { recursive: true, mode: 0o700 })
        await writeSecret(join(out, side, 'wg-goto.conf'), gw.conf)
        io.out(`${join(out, side, 'wg-goto.conf')}  tunnel ${gw.tunnelAddress}, public key ${gw.publicKey}`)
      }
      io.out('\nthen, in the clouds:')
      for (const line of routeSteps(init)) io.out(line)
      return 0
    }
  }
}

export async function main (argv: string[], io: Io = processIo()): Promise<number> {
  return await runCli('goto-vpn', 'WireGuard between the AWS VPC and the Azure VNet', commands, argv, io)
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
