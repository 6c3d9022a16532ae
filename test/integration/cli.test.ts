import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, cli, GO_TO_ENTRY, REPO, startAgent, type AgentProc, type CliResult } from '../harness/agent.ts'
import { makeRoot, releaseRoot } from '../harness/procs.ts'

const goTo = async (args: string[]): Promise<CliResult> => await cli(args, { entry: GO_TO_ENTRY })

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
    for (const command of ['init', 'start', 'join', 'leave', 'peers', 'status', 'list-containers', 'migrate', 'migrations', 'migration', 'rollback', 'watch', 'dashboard', 'show-log', 'log']) {
      assert.match(top.stdout, new RegExp(`\\b${command}\\b`))
      const res = await cli([command, '--help'])
      assert.equal(res.code, 0, command)
      assert.match(res.stdout, new RegExp(`^usage: goto-node ${command}`), command)
    }
  })

  it('runs from the package bin (the build, where there is one)', async () => {
    const { execFileSync } = await import('node:child_process')
    assert.equal(execFileSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).trim(), '0.1.0')
    assert.equal(execFileSync(process.execPath, [join(REPO, 'bin', 'go-to.js'), '--version'], { encoding: 'utf8' }).trim(), '0.1.0')
  })

  it('go-to offers the original commands with their original usage, and only those', async () => {
    const top = await goTo(['--help'])
    assert.equal(top.code, 0)
    assert.deepEqual([...top.stdout.matchAll(/^ {2}(\S+) {2,}/gm)].map(m => m[1]), ['show-log', 'list-containers', 'migrate', 'rollback'])
    const usages: Record<string, RegExp> = {
      'show-log': /^usage: go-to show-log \[-s SINCE\] \[-t TILL\]/,
      'list-containers': /^usage: go-to list-containers \[regexp\]/,
      migrate: /^usage: go-to migrate \[-async\] -s <source_name> \[-t <target_name>\] <target_host_or_ip>/,
      rollback: /^usage: go-to rollback <migration_id>/
    }
    for (const [command, usage] of Object.entries(usages)) {
      const res = await goTo([command, '--help'])
      assert.equal(res.code, 0, command)
      assert.match(res.stdout, usage)
    }
    assertCleanError(await goTo(['peers']), 2, /^go-to: unknown command "peers"/)
    assertCleanError(await goTo(['migrate', '-async', 'host1']), 2, /^go-to migrate: -s <source name> is required\nusage: go-to migrate \[-async\]/)
    assertCleanError(await goTo(['rollback']), 2, /go-to rollback: missing argument/)
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
    assertCleanError(await cli(['watch']), 2, /missing argument/)
    assertCleanError(await cli(['dashboard', 'now']), 2, /unexpected argument "now"/)
    assertCleanError(await cli(['show-log', '--since']), 2, /argument missing/)
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

  it('prints a dashboard link whose token is in the fragment, and the page behind it loads', async () => {
    const res = await agent.cli(['dashboard'])
    assert.equal(res.code, 0, res.stderr)
    const link = /dashboard of host0: (\S+)/.exec(res.stdout)?.[1] ?? ''
    assert.equal(link, `${agent.api}/ui/#token=${agent.token}`)
    const url = new URL(link)
    const page = await fetch(url)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<title>Go-To<\/title>/)
    assert.doesNotMatch(agent.log(), new RegExp(agent.token), 'the token is in no agent log')
    assertCleanError(await cli(['dashboard', '--api', agent.api, '--data-dir', agent.dataDir], { env: { GOTO_TOKEN: 'wrong-token-wrong-token' } }), 1, /GOTO_ERR_UNAUTHORIZED/)
  })

  it('show-log in human and JSON form, and log verify', async () => {
    const human = await agent.cli(['show-log', '-s', '1h'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /host0\s+#1\s+node\.joined/)
    const lines = (await agent.cli(['show-log', '--json', '--kind', 'node'])).stdout.trim().split('\n').map(l => JSON.parse(l))
    assert.equal(lines[0].kind, 'node.joined')
    assert.equal(lines[0].origin, agent.peerId)
    assertCleanError(await agent.cli(['show-log', '-s', 'yesterday']), 1, /GOTO_ERR_INVALID_TIME: since: "yesterday"/)
    const verify = await agent.cli(['log', 'verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, /every chain holds/)
    assert.equal(JSON.parse((await agent.cli(['log', 'verify', '--json'])).stdout).ok, true)
  })

  it('migration commands say what is wrong, with the code', async () => {
    assertCleanError(await agent.cli(['migrate', '-s', 'web', 'host9']), 1, /GOTO_ERR_UNKNOWN_CONTAINER|GOTO_ERR_UNKNOWN_TARGET/)
    assertCleanError(await agent.cli(['migration', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION: no migration/)
    assertCleanError(await agent.cli(['migration', 'nonsense']), 1, /GOTO_ERR_BAD_REQUEST: "nonsense" is not a migration id/)
    assertCleanError(await agent.cli(['rollback', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION/)
    assertCleanError(await agent.cli(['migration', 'cancel', '01a21b22-3118-716a-9b46-000000000000']), 1, /GOTO_ERR_UNKNOWN_MIGRATION/)
    assertCleanError(await agent.cli(['watch', '01a21b22-3118-716a-9b46-000000000000']), 1, /^goto-node watch: GOTO_ERR_UNKNOWN_MIGRATION: no migration/)
    assertCleanError(await agent.cli(['watch', 'nonsense']), 1, /GOTO_ERR_BAD_REQUEST: "nonsense" is not a migration id/)
  })

  it('watch follows a migration across a cut events stream, and exits 1 when it ends aborted', async () => {
    const id = '01a21b22-3118-716a-9b46-1f1b69f76a64'
    const at = new Date().toISOString()
    const record = (phase: string, moved: number, extra: object = {}): string => JSON.stringify({ id, role: 'source', phase, phases: [{ phase, at }], container: 'web-1', name: 'web-1', createdAt: at, bytes: { total: 100, moved }, ...extra })
    // first connection: one event, then the stream is cut; the second: the end
    const answers = [
      [record('transferring', 50)],
      [record('transferring', 80), record('activated', 100)],
      [record('aborted', 0, { error: { code: 'GOTO_ERR_CANCELLED', message: 'cancelled by request' } })]
    ]
    const server = createServer((req, res) => {
      if (req.headers.authorization !== 'Bearer watch-token-0123456789' || req.url !== `/v1/migrations/${id}/events`) {
        res.writeHead(401, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'GOTO_ERR_UNAUTHORIZED', detail: `not ${req.url ?? ''} with that token` }))
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const data of answers.shift() ?? []) res.write(`event: migration\ndata: ${data}\n\n`)
      res.end()
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const env = { GOTO_TOKEN: 'watch-token-0123456789' }
      const done = await cli(['watch', id, '--api', api], { env })
      assert.equal(done.code, 0, done.stderr)
      assert.deepEqual(done.stdout.trim().split('\n').map(line => line.split(/\s+/)[0]), ['transferring', 'activated'])
      assert.match(done.stdout, /^activated\s+\[#{24}\] 100%/m)
      assertCleanError(await cli(['watch', id, '--api', api], { env }), 1, /^goto-node watch: GOTO_ERR_CANCELLED: cancelled by request/)
    } finally {
      server.close()
    }
  })

  it('refuses an API beyond loopback without the opt-in, and warns with it', async () => {
    assert.doesNotMatch(agent.log(), /beyond loopback/)
    const dir = join(root, 'open-api')
    assert.equal((await cli(['init', '--data-dir', dir])).code, 0)
    const args = ['start', '--data-dir', dir, '--docker-host', 'none', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '0.0.0.0:0']
    assertCleanError(await cli(args), 1, /GOTO_ERR_CONFIG: the API would listen on 0\.0\.0\.0, beyond loopback.*apiAllowRemote/)
    const proc = spawn(process.execPath, [join(REPO, 'node', 'cli', 'index.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GOTO_API_ALLOW_REMOTE: '1' } })
    let output = ''
    proc.stdout.on('data', (d: Buffer) => { output += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const exited = new Promise(resolve => proc.once('exit', resolve))
    const deadline = Date.now() + 30_000
    while (!/running as/.test(output) && proc.exitCode == null && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    proc.kill('SIGTERM')
    await exited
    assert.match(output, /the API listens beyond loopback.*api=0\.0\.0\.0:0/)
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
