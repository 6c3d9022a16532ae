import assert from 'node:assert/strict'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, cli, startAgent, type AgentProc, type CliResult } from '../harness/agent.ts'
import { makeRoot, releaseRoot } from '../harness/procs.ts'

/** One clear line on stderr, no stack trace. */
function assertCleanError (res: CliResult, code: number, pattern: RegExp): void {
  assert.equal(res.code, code, `exit ${res.code}: ${res.stderr}`)
  assert.match(res.stderr, pattern)
  assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace')
  assert.doesNotMatch(res.stderr, /node:internal|file:\/\//)
}

describe('goto-node CLI', { timeout: 120_000 }, () => {
  let root: string
  let agent: AgentProc

  before(async () => {
    root = makeRoot('cli')
    agent = await startAgent({ root, index: 0, ip: `127.${20 + (process.pid % 200)}.251.1`, dockerHost: 'none' })
  })
  after(async () => {
    await agent?.stop()
    releaseRoot(root)
  })

  it('prints help for the program and each command, and exits 0', async () => {
    const top = await cli(['--help'])
    assert.equal(top.code, 0)
    for (const command of ['init', 'start', 'join', 'leave', 'peers', 'status', 'list-containers', 'migrate', 'migrations', 'migration', 'rollback']) {
      assert.match(top.stdout, new RegExp(`\\b${command}\\b`))
      const res = await cli([command, '--help'])
      assert.equal(res.code, 0, command)
      assert.match(res.stdout, new RegExp(`^usage: goto-node ${command}`), command)
    }
  })

  it('runs from the package bin (the build, where there is one)', async () => {
    const { execFileSync } = await import('node:child_process')
    assert.equal(execFileSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).trim(), '0.1.0')
  })

  it('exits 2 on usage errors', async () => {
    assertCleanError(await cli(['frobnicate']), 2, /unknown command "frobnicate"/)
    assertCleanError(await cli(['peers', '--bogus']), 2, /Unknown option '--bogus'[\s\S]*usage: goto-node peers/)
    assertCleanError(await cli(['join']), 2, /missing argument/)
    assertCleanError(await cli(['list-containers', 'a', 'b']), 2, /unexpected argument "b"/)
    assertCleanError(await cli(['migrate', 'host1']), 2, /-s <source name> is required/)
    assertCleanError(await cli(['migrate', '-s', 'web', '--consistency', 'maybe', 'host1']), 2, /--consistency is freeze or stop/)
    assertCleanError(await cli(['migrate', '-s', 'web', '--stop-timeout', 'soon', 'host1']), 2, /whole seconds/)
    assertCleanError(await cli(['migrate', '-s', 'web']), 2, /missing argument/)
    assertCleanError(await cli(['migration']), 2, /missing argument/)
    assertCleanError(await cli(['migration', 'cancel']), 2, /missing the migration id/)
    assertCleanError(await cli(['rollback']), 2, /missing argument/)
  })

  it('status and peers in human and JSON form', async () => {
    const status = await agent.cli(['status'])
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, new RegExp(`peer id\\s+${agent.peerId}`))
    assert.match(status.stdout, /peers\s+0 alive/)
    const json = JSON.parse((await agent.cli(['status', '--json'])).stdout)
    assert.equal(json.peerId, agent.peerId)
    assert.equal(json.name, 'host0')
    assert.equal(json.runtime, 'none')
    assert.match((await agent.cli(['peers'])).stdout, /no peers yet/)
    assert.deepEqual(JSON.parse((await agent.cli(['peers', '--json'])).stdout), [])
    assert.deepEqual(JSON.parse((await agent.cli(['list-containers', '--json'])).stdout), [])
    assert.match((await agent.cli(['list-containers'])).stdout, /no containers in the mesh/)
    assert.match((await agent.cli(['migrations'])).stdout, /no migrations yet/)
    assert.deepEqual(JSON.parse((await agent.cli(['migrations', '--json'])).stdout), [])
  })

  it('migration commands say what is wrong, with the code', async () => {
    assertCleanError(await agent.cli(['migrate', '-s', 'web', 'host9']), 1, /GOTO_ERR_UNKNOWN_CONTAINER|GOTO_ERR_UNKNOWN_TARGET/)
    assertCleanError(await agent.cli(['migration', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION: no migration/)
    assertCleanError(await agent.cli(['migration', 'nonsense']), 1, /GOTO_ERR_BAD_REQUEST: "nonsense" is not a migration id/)
    assertCleanError(await agent.cli(['rollback', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION/)
    assertCleanError(await agent.cli(['migration', 'cancel', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION/)
  })

  it('refuses an unreadable config with one clear message', async () => {
    const dir = join(root, 'badconfig')
    assert.equal((await cli(['init', '--data-dir', dir])).code, 0)
    await writeFile(join(dir, 'config.json'), '{ "listen": [')
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none']), 1, /GOTO_ERR_CONFIG: .*config\.json is not valid JSON/)
    await writeFile(join(dir, 'config.json'), '{ "lisen": [] }')
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none']), 1, /GOTO_ERR_CONFIG: .*lisen/)
    await writeFile(join(dir, 'config.json'), '{}')
    await chmod(join(dir, 'config.json'), 0o000)
    // root reads anything; the message names the file either way when it cannot
    if (process.getuid?.() !== 0) assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none']), 1, /cannot read/)
  })

  it('refuses a bad multiaddr with one clear message', async () => {
    const dir = join(root, 'badaddr')
    assert.equal((await cli(['init', '--data-dir', dir])).code, 0)
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none', '--bootstrap', '/ip4/999.1.1.1/tcp/1']), 1, /GOTO_ERR_INVALID_MULTIADDR: "\/ip4\/999\.1\.1\.1\/tcp\/1" is not a multiaddr/)
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none', '--listen', 'tcp://0.0.0.0:4001']), 1, /GOTO_ERR_INVALID_MULTIADDR/)
    assertCleanError(await agent.cli(['join', 'not-an-address']), 1, /GOTO_ERR_INVALID_MULTIADDR/)
    assertCleanError(await agent.cli(['join', '/ip4/127.0.0.1/udp/4001']), 1, /no \/tcp\/ part/)
    assertCleanError(await cli(['init', '--data-dir', join(root, 'x'), '--bootstrap', 'nope']), 1, /GOTO_ERR_INVALID_MULTIADDR/)
  })

  it('a join that cannot connect says so', async () => {
    const res = await agent.cli(['join', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGfdZwZXqYuRmnRDmSQQuGrmrfvGHEVnWtBk7cEk2eMvD'])
    assertCleanError(res, 1, /GOTO_ERR_DIAL: cannot join through/)
  })

  it('refuses an unreachable Docker socket with one clear message', async () => {
    const dir = join(root, 'nodocker')
    assert.equal((await cli(['init', '--data-dir', dir])).code, 0)
    const res = await cli(['start', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--docker-host', `unix://${join(root, 'no-such.sock')}`])
    assertCleanError(res, 1, /GOTO_ERR_DOCKER_UNREACHABLE: cannot reach the Docker Engine at unix:\/\/.*no-such\.sock/)
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'ftp://x']), 1, /GOTO_ERR_CONFIG: docker host "ftp:\/\/x" has an unsupported scheme/)
  })

  it('refuses to start with secrets others can read', async () => {
    const dir = join(root, 'loose')
    assert.equal((await cli(['init', '--data-dir', dir])).code, 0)
    await chmod(join(dir, 'api.token'), 0o644)
    assertCleanError(await cli(['start', '--data-dir', dir, '--docker-host', 'none']), 1, /GOTO_ERR_DATA_DIR: the API token .* is readable by others/)
  })

  it('refuses to init over an existing identity', async () => {
    assertCleanError(await cli(['init', '--data-dir', agent.dataDir]), 1, /already initialised/)
  })

  it('answers 401 to an API call without the token, and the CLI says why', async () => {
    const res = await fetch(`${agent.api}/v1/peers`)
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('content-type'), 'application/problem+json')
    assert.equal((await res.json() as any).code, 'GOTO_ERR_UNAUTHORIZED')
    assert.equal((await fetch(`${agent.api}/healthz`)).status, 200)
    const wrong = await cli(['peers', '--api', agent.api, '--data-dir', agent.dataDir], { env: { GOTO_TOKEN: 'wrong-token-wrong-token' } })
    assertCleanError(wrong, 1, /GOTO_ERR_UNAUTHORIZED: the bearer token is wrong/)
  })

  it('says so when no agent answers', async () => {
    const res = await cli(['peers', '--api', 'http://127.0.0.1:1', '--data-dir', agent.dataDir])
    assertCleanError(res, 1, /GOTO_ERR_AGENT_UNREACHABLE: no agent answers at http:\/\/127\.0\.0\.1:1/)
  })

  it('leaves on SIGTERM and exits 0', async () => {
    agent.kill('SIGTERM')
    assert.equal(await agent.exited(), 0)
    assert.match(agent.log(), /leaving the mesh reason=SIGTERM/)
    assert.match(agent.log(), /agent stopped/)
  })
})
