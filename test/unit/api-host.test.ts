import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createApp, type ApiAgent } from '../../api/app.ts'
import { checkApiBind, hostName } from '../../api/host-check.ts'
import { resolveConfig } from '../../node/config.ts'

const TOKEN = 'test-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}` }

/** Only what /healthz and /v1/node use. */
const agent = {
  peerId: '12D3KooWStub',
  info: () => ({ peerId: '12D3KooWStub', name: 'stub' }),
  audit: { append: async () => ({}) }
} as unknown as ApiAgent

describe('API reach: Host allow-list and bind address', () => {
  it('answers 421 to a Host that is neither loopback nor allowed (DNS rebinding), token or not', async () => {
    const app = createApp({ agent, token: TOKEN })
    for (const path of ['/healthz', '/v1/node']) {
      for (const host of ['evil.example', 'evil.example:7070', '10.0.0.5:7070', '127.0.0.1.evil.example']) {
        const res = await app.request(path, { headers: { ...auth, host } })
        assert.equal(res.status, 421, `${path} with Host ${host}`)
        assert.equal(res.headers.get('content-type'), 'application/problem+json')
        assert.equal((await res.json() as { code: string }).code, 'GOTO_ERR_HOST_NOT_ALLOWED')
      }
    }
  })

  it('answers to loopback names and to the names the config allows', async () => {
    const app = createApp({ agent, token: TOKEN, hosts: ['Node1.Example'] })
    for (const host of ['localhost:7070', '127.0.0.1:7070', '127.8.9.10', '[::1]:7070', 'dash.localhost:7070', 'node1.example:7070']) {
      const res = await app.request('/v1/node', { headers: { ...auth, host } })
      assert.equal(res.status, 200, `Host ${host}`)
    }
    assert.equal(hostName('[::1]:7070'), '::1')
  })

  it('refuses to bind the API beyond loopback without the opt-in, and takes the opt-in from config or environment', async () => {
    for (const host of ['0.0.0.0', '10.0.0.5', '::']) {
      assert.throws(() => { checkApiBind(host, { allowRemote: false }) }, { code: 'GOTO_ERR_CONFIG', message: /beyond loopback.*apiAllowRemote/ })
      checkApiBind(host, { allowRemote: true })
    }
    checkApiBind('127.0.0.1', { allowRemote: false })
    checkApiBind('::1', { allowRemote: false })
    const dir = await mkdtemp(join(tmpdir(), 'goto-api-host-'))
    try {
      assert.equal((await resolveConfig({ dataDir: dir }, {})).apiAllowRemote, false)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ apiAllowRemote: true, apiHosts: ['node1.example'] }))
      const config = await resolveConfig({ dataDir: dir }, {})
      assert.equal(config.apiAllowRemote, true)
      assert.deepEqual(config.apiHosts, ['node1.example'])
      assert.equal((await resolveConfig({ dataDir: dir }, { GOTO_API_ALLOW_REMOTE: '0' })).apiAllowRemote, false)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
