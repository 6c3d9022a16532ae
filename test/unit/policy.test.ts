import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { checkPolicy, policyFor, type AdmissionPolicy } from '../../node/migration/policy.ts'
import type { ContainerSpec } from '../../node/migration/spec.ts'
import { resolveConfig } from '../../node/config.ts'

const TRUSTED = '12D3KooWTrusted'
const OTHER = '12D3KooWOther'
const spec = (hostConfig: Record<string, unknown>, mounts: ContainerSpec['mounts'] = []): ContainerSpec => ({ name: 'x', image: 'x', config: {}, hostConfig, mounts })

describe('admission policy per peer', () => {
  it('opens a door for the peer its entry names, and for no other', () => {
    const policy: AdmissionPolicy = {
      allowCapabilities: ['NET_BIND_SERVICE'],
      peers: { [TRUSTED]: { allowPrivileged: true, allowCapabilities: ['NET_ADMIN'], allowHostPaths: ['/srv/app'] } }
    }
    const code = (s: ContainerSpec, peer: string): string | undefined => checkPolicy(s, policyFor(policy, peer))?.code
    assert.equal(code(spec({ Privileged: true }), TRUSTED), undefined)
    assert.equal(code(spec({ Privileged: true }), OTHER), 'PRIVILEGED')
    assert.equal(code(spec({ CapAdd: ['NET_ADMIN', 'NET_BIND_SERVICE'] }), TRUSTED), undefined)
    assert.equal(code(spec({ CapAdd: ['NET_ADMIN'] }), OTHER), 'CAPABILITY')
    assert.equal(code(spec({ CapAdd: ['NET_BIND_SERVICE'] }), OTHER), undefined, 'the common rules hold for every peer')
    const bind = [{ type: 'bind' as const, source: '/srv/app/data', destination: '/d', readOnly: false, anonymous: false }]
    assert.equal(code(spec({}, bind), TRUSTED), undefined)
    assert.equal(code(spec({}, bind), OTHER), 'HOST_PATH')
    assert.equal(code(spec({ NetworkMode: 'host' }), TRUSTED), 'HOST_NAMESPACE', 'only what the entry opens')
    assert.equal(code(spec({ Privileged: true }), '__proto__'), 'PRIVILEGED')
  })

  it('is read from config.json, and a typo in it is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'goto-policy-'))
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ migration: { policy: { peers: { [TRUSTED]: { allowDevices: true } } } } }))
      assert.deepEqual((await resolveConfig({ dataDir: dir }, {})).migration.policy.peers, { [TRUSTED]: { allowDevices: true } })
      await writeFile(join(dir, 'config.json'), JSON.stringify({ migration: { policy: { peers: { [TRUSTED]: { allowDevice: true } } } } }))
      await assert.rejects(resolveConfig({ dataDir: dir }, {}), { code: 'GOTO_ERR_CONFIG' })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
