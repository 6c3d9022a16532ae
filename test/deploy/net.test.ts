/**
 * The address ranges the deploy tools open ports to: what counts as the whole
 * internet, and what as a private (VPN) range.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { adminCidr, isPrivateRange, parseCidr, vpnCidr } from '../../deploy/lib/net.ts'

describe('deploy address ranges', () => {
  it('parses IPv4 and IPv6 ranges and refuses anything else as a usage error', () => {
    assert.deepEqual(parseCidr('203.0.113.7/32', 'x'), { text: '203.0.113.7/32', family: 4, address: '203.0.113.7', prefix: 32 })
    assert.equal(parseCidr('2001:db8::/48', 'x').family, 6)
    for (const bad of ['203.0.113.7', '203.0.113.7/33', '300.1.1.1/8', '2001:db8::/129', 'example.com/24', '']) {
      assert.throws(() => parseCidr(bad, 'admin-cidr'), { code: 'GOTO_ERR_USAGE', message: /--admin-cidr/ }, bad)
    }
  })

  it('SSH from the whole internet only with --allow-any-ssh', () => {
    assert.throws(() => adminCidr('0.0.0.0/0', false), { code: 'GOTO_ERR_UNSAFE_SSH_SOURCE' })
    assert.throws(() => adminCidr('::/0', false), { code: 'GOTO_ERR_UNSAFE_SSH_SOURCE' })
    assert.equal(adminCidr('0.0.0.0/0', true).prefix, 0)
    assert.equal(adminCidr('198.51.100.0/24', false).text, '198.51.100.0/24')
  })

  it('a private range lies wholly inside 10/8, 172.16/12, 192.168/16 or fc00::/7', () => {
    for (const inside of ['10.0.0.0/8', '10.20.1.0/24', '172.16.0.0/12', '172.31.0.0/16', '192.168.56.0/24', 'fd00::/8', 'fc00::/7']) {
      assert.ok(isPrivateRange(parseCidr(inside, 'x')), inside)
    }
    for (const outside of ['10.0.0.0/7', '172.32.0.0/16', '172.0.0.0/8', '192.169.0.0/16', '8.8.8.0/24', '0.0.0.0/0', '2001:db8::/32', 'fc00::/6']) {
      assert.ok(!isPrivateRange(parseCidr(outside, 'x')), outside)
    }
    assert.throws(() => vpnCidr('100.64.0.0/10'), { code: 'GOTO_ERR_UNSAFE_MESH_SOURCE' })
  })
})
