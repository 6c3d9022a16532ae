/**
 * `deploy/vpn`: the two gateways' WireGuard files fit each other — each
 * side's peer key is what WireGuard's own `wg pubkey` derives from the other
 * side's private key, one preshared key, each side routing the other's range
 * into the tunnel — and wg-quick reads them.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { main } from '../../deploy/vpn/cli.ts'
import { assertFailed, tempDir, type Ran } from './run.ts'
import { validator } from './validators.ts'

function field (conf: string, section: 'Interface' | 'Peer', key: string): string {
  const body = conf.split(/^\[/m).find(s => s.startsWith(`${section}]`)) ?? ''
  return new RegExp(`^${key} = (.+)$`, 'm').exec(body)?.[1] ?? ''
}

/** WireGuard's own derivation of a public key. */
async function wgPubkey (privateKey: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = execFile('wg', ['pubkey'], (err, stdout) => { if (err != null) reject(err); else resolve(stdout.trim()) })
    child.stdin?.end(privateKey + '\n')
  })
}

describe('deploy/vpn site-to-site', () => {
  let dir: { path: string, remove: () => Promise<void> }
  before(async () => { dir = await tempDir('vpn') })
  after(async () => { await dir.remove() })

  async function cli (args: string[]): Promise<Ran> {
    const stdout: string[] = []
    const stderr: string[] = []
    const code = await main(args, { out: l => { stdout.push(l) }, err: l => { stderr.push(l) }, env: {} })
    return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') + '\n' }
  }
  const args = (out: string): string[] => ['site-to-site', '--aws-endpoint', '198.51.100.7', '--aws-cidr', '172.31.0.0/16',
    '--azure-endpoint', '20.31.0.7', '--azure-cidr', '10.20.0.0/16', '--out', out]

  it('writes two files that fit each other, each routing the other side\'s range into the tunnel', async () => {
    const out = join(dir.path, 'one')
    const ran = await cli(args(out))
    assert.equal(ran.code, 0, ran.stderr)
    const aws = await readFile(join(out, 'aws-gateway', 'wg-goto.conf'), 'utf8')
    const azure = await readFile(join(out, 'azure-gateway', 'wg-goto.conf'), 'utf8')
    for (const side of ['aws-gateway', 'azure-gateway']) {
      assert.equal((await stat(join(out, side, 'wg-goto.conf'))).mode & 0o777, 0o600, 'a private key is readable by its owner only')
    }
    assert.equal(field(aws, 'Peer', 'PublicKey'), await wgPubkey(field(azure, 'Interface', 'PrivateKey')))
    assert.equal(field(azure, 'Peer', 'PublicKey'), await wgPubkey(field(aws, 'Interface', 'PrivateKey')))
    assert.equal(field(aws, 'Peer', 'PresharedKey'), field(azure, 'Peer', 'PresharedKey'))
    assert.notEqual(field(aws, 'Interface', 'PrivateKey'), field(azure, 'Interface', 'PrivateKey'))

    assert.equal(field(aws, 'Interface', 'Address'), '10.255.255.1/30')
    assert.equal(field(azure, 'Interface', 'Address'), '10.255.255.2/30')
    assert.equal(field(aws, 'Peer', 'AllowedIPs'), '10.255.255.2/32, 10.20.0.0/16')
    assert.equal(field(azure, 'Peer', 'AllowedIPs'), '10.255.255.1/32, 172.31.0.0/16')
    assert.equal(field(aws, 'Peer', 'Endpoint'), '20.31.0.7:51820')
    assert.equal(field(azure, 'Peer', 'Endpoint'), '198.51.100.7:51820')
    assert.match(ran.stdout, /10\.20\.0\.0\/16 -> the gateway instance/)
    assert.match(ran.stdout, /172\.31\.0\.0\/16 -> VirtualAppliance/)

    for (const side of ['aws-gateway', 'azure-gateway']) {
      const strip = await validator('wg-quick', ['strip', join(out, side, 'wg-goto.conf')])
      assert.equal(strip.code, 0, strip.stderr)
      assert.doesNotMatch(strip.stdout, /^(Address|PostUp) =/m, 'wg-quick took its own keys out')
      assert.match(strip.stdout, /^PrivateKey = /m)
    }
  })

  it('never overwrites an earlier configuration, and refuses public ranges', async () => {
    const out = join(dir.path, 'two')
    assert.equal((await cli(args(out))).code, 0)
    assertFailed(await cli(args(out)), 1, 'GOTO_ERR_VPN_OUT', /EEXIST \(an earlier configuration is never overwritten\)/)
    assertFailed(await cli(args(join(dir.path, 'three')).map(a => a === '10.20.0.0/16' ? '20.0.0.0/8' : a)), 1, 'GOTO_ERR_VPN_RANGE', /not a private range/)
  })
})
