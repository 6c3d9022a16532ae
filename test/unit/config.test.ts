import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { resolveConfig, DEFAULT_GOSSIP, parseHostPort } from '../../node/config.ts'
import { initDataDir, loadSecrets } from '../../node/data-dir.ts'

const dirs: string[] = []
async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'goto-unit-'))
  dirs.push(dir)
  return dir
}
after(async () => { await Promise.all(dirs.map(async d => await rm(d, { recursive: true, force: true }))) })

describe('config', () => {
  it('takes flags over environment over file over defaults', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'config.json'), JSON.stringify({ name: 'from-file', api: '127.0.0.9:9000', dockerHost: 'unix:///file.sock', listen: ['/ip4/127.0.0.1/tcp/1'], gossip: { heartbeatMs: 500 } }))
    const fileOnly = await resolveConfig({ dataDir: dir }, {})
    assert.equal(fileOnly.name, 'from-file')
    assert.deepEqual(fileOnly.api, { host: '127.0.0.9', port: 9000 })
    assert.equal(fileOnly.gossip.heartbeatMs, 500)
    assert.equal(fileOnly.gossip.suspectAfterMs, DEFAULT_GOSSIP.suspectAfterMs)
    const env = { GOTO_NAME: 'from-env', GOTO_DOCKER_HOST: 'none', GOTO_LISTEN: '/ip4/127.0.0.2/tcp/2, /ip4/127.0.0.3/tcp/3', GOTO_API_LISTEN: '127.0.0.8:8000' }
    const withEnv = await resolveConfig({ dataDir: dir }, env)
    assert.equal(withEnv.name, 'from-env')
    assert.equal(withEnv.dockerHost, 'none')
    assert.deepEqual(withEnv.listen, ['/ip4/127.0.0.2/tcp/2', '/ip4/127.0.0.3/tcp/3'])
    assert.deepEqual(withEnv.api, { host: '127.0.0.8', port: 8000 })
    const withFlags = await resolveConfig({ dataDir: dir, name: 'from-flag', api: '[::1]:7071', bootstrap: ['/ip4/127.0.0.1/tcp/4'] }, env)
    assert.equal(withFlags.name, 'from-flag')
    assert.deepEqual(withFlags.api, { host: '::1', port: 7071 })
    assert.deepEqual(withFlags.bootstrap, ['/ip4/127.0.0.1/tcp/4'])
  })

  it('defaults when there is no file', async () => {
    const config = await resolveConfig({ dataDir: await tempDir() }, {})
    assert.deepEqual(config.api, { host: '127.0.0.1', port: 7070 })
    assert.deepEqual(config.listen, ['/ip4/0.0.0.0/tcp/4001'])
    assert.equal(config.dockerHost, 'unix:///var/run/docker.sock')
  })

  it('says what is wrong with a bad file, value or variable', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'config.json'), '{ "name": ')
    await assert.rejects(resolveConfig({ dataDir: dir }, {}), { code: 'GOTO_ERR_CONFIG', message: /not valid JSON/ })
    await writeFile(join(dir, 'config.json'), JSON.stringify({ nmae: 'typo' }))
    await assert.rejects(resolveConfig({ dataDir: dir }, {}), { code: 'GOTO_ERR_CONFIG', message: /nmae/ })
    await writeFile(join(dir, 'config.json'), JSON.stringify({ api: 'localhost' }))
    await assert.rejects(resolveConfig({ dataDir: dir }, {}), { code: 'GOTO_ERR_CONFIG', message: /HOST:PORT/ })
    await writeFile(join(dir, 'config.json'), '{}')
    await assert.rejects(resolveConfig({ dataDir: dir }, { GOTO_HEARTBEAT_MS: 'soon' }), { code: 'GOTO_ERR_CONFIG', message: /GOTO_HEARTBEAT_MS/ })
    assert.throws(() => parseHostPort('127.0.0.1:99999', 'api'), { code: 'GOTO_ERR_CONFIG' })
  })

  it('turns CloudWatch on from the file or GOTO_CLOUDWATCH, off by default', async () => {
    const dir = await tempDir()
    assert.equal((await resolveConfig({ dataDir: dir }, {})).metrics?.cloudwatch, undefined)
    await writeFile(join(dir, 'config.json'), JSON.stringify({ metrics: { cloudwatch: { enabled: true, region: 'eu-west-1', intervalMs: 30_000 } } }))
    assert.deepEqual((await resolveConfig({ dataDir: dir }, {})).metrics?.cloudwatch, { enabled: true, region: 'eu-west-1', intervalMs: 30_000, endpoint: undefined })
    const off = await resolveConfig({ dataDir: dir }, { GOTO_CLOUDWATCH: '0', GOTO_CLOUDWATCH_ENDPOINT: 'http://127.0.0.1:1' })
    assert.deepEqual(off.metrics?.cloudwatch, { enabled: false, region: 'eu-west-1', intervalMs: 30_000, endpoint: 'http://127.0.0.1:1' })
    await writeFile(join(dir, 'config.json'), JSON.stringify({ metrics: { cloudwatch: { enabled: true, endpoint: 'not a url' } } }))
    await assert.rejects(resolveConfig({ dataDir: dir }, {}), { code: 'GOTO_ERR_CONFIG', message: /metrics\.cloudwatch\.endpoint/ })
  })
})

describe('data dir', () => {
  it('creates identity, token and swarm key private to the owner, and refuses to overwrite them', async () => {
    const dir = join(await tempDir(), 'node')
    const result = await initDataDir(dir)
    assert.equal(result.swarmKeyGenerated, true)
    assert.match(result.peerId, /^12D3KooW/)
    for (const file of ['identity.key', 'api.token', 'swarm.key']) {
      assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, file)
    }
    assert.match(await readFile(join(dir, 'swarm.key'), 'utf8'), /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}/)
    await assert.rejects(initDataDir(dir), { code: 'GOTO_ERR_DATA_DIR', message: /already initialised/ })
    const secrets = await loadSecrets(dir)
    assert.equal(secrets.apiToken, (await readFile(join(dir, 'api.token'), 'utf8')).trim())
  })

  it('joins the mesh of a given swarm key', async () => {
    const base = await tempDir()
    const first = await initDataDir(join(base, 'a'))
    const second = await initDataDir(join(base, 'b'), { swarmKeyFile: first.swarmKeyPath })
    assert.equal(second.swarmKeyGenerated, false)
    assert.deepEqual(await readFile(second.swarmKeyPath), await readFile(first.swarmKeyPath))
    await writeFile(join(base, 'bad.key'), 'not a key')
    await assert.rejects(initDataDir(join(base, 'c'), { swarmKeyFile: join(base, 'bad.key') }), { code: 'GOTO_ERR_DATA_DIR', message: /not a swarm key/ })
    await assert.rejects(initDataDir(join(base, 'd'), { swarmKeyFile: join(base, 'missing.key') }), { code: 'GOTO_ERR_DATA_DIR', message: /cannot read/ })
  })

  it('refuses secrets that others can read', async () => {
    const dir = join(await tempDir(), 'node')
    await initDataDir(dir)
    await chmod(join(dir, 'identity.key'), 0o644)
    await assert.rejects(loadSecrets(dir), { code: 'GOTO_ERR_DATA_DIR', message: /readable by others.*chmod 600/ })
    await chmod(join(dir, 'identity.key'), 0o600)
    await chmod(join(dir, 'swarm.key'), 0o640)
    await assert.rejects(loadSecrets(dir), { code: 'GOTO_ERR_DATA_DIR', message: /swarm key/ })
    await assert.rejects(loadSecrets(join(dir, 'nowhere')), { code: 'GOTO_ERR_DATA_DIR', message: /goto-node init/ })
  })
})
