import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import { startRawPeer, type RawPeer } from '../harness/raw-peer.ts'
import { MIGRATE_PROTOCOL, OFFER_BURST, session, type OfferPayload } from '../../protocols/migrate/index.ts'
import { uuidv7 } from '../../node/migration/ids.ts'

describe('a target refuses, with the reason code, and nothing moves', { timeout: 600_000 }, () => {
  let cluster: Cluster
  let raw: RawPeer

  before(async () => {
    cluster = await startCluster({
      hosts: 3,
      label: 'refuse',
      // host 2's engine keeps its data on a 64 MiB filesystem
      dataRoot: (root, index) => {
        if (index !== 2) return undefined
        const dir = join(root, 'small')
        mkdirSync(dir, { recursive: true })
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', dir])
        return dir
      }
    })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.filter((p: any) => p.status === 'alive').length === 2, 10_000, 'the mesh')
    const e0 = cluster.engines[0]!
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'app', '--publish', '18181:80', BASE_IMAGE, 'sleep', '100000'])
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'big', '-v', 'bigdata:/data', BASE_IMAGE, 'sh', '-c', 'head -c 100000000 /dev/zero > /data/zeros && exec sleep 100000'])
    // created, not started: this sandbox cannot run privileged containers, and the policy reads the config alone
    await e0.docker(['create', '--network', 'none', '--name', 'root-app', '--privileged', BASE_IMAGE, 'sleep', '100000'])
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'binder', '-v', `${cluster.root}:/host-root:ro`, BASE_IMAGE, 'sleep', '100000'])
    // a volume holding a symlink to the host's root, as a CVE-2018-15664 archive would
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'linker', '-v', 'linkdata:/data', BASE_IMAGE, 'sh', '-c', 'echo x > /data/file && ln -s / /data/root && exec sleep 100000'])
    await until(async () => (await e0.docker(['exec', 'big', 'stat', '-c', '%s', '/data/zeros'])) === '100000000', 30_000, 'the big volume')
    raw = await startRawPeer(cluster.agents[1]!, cluster.ip(7))
  })
  after(async () => {
    await raw?.stop()
    await cluster?.stop()
  })

  async function assertUntouched (): Promise<void> {
    for (const [name, status] of [['app', 'running'], ['big', 'running'], ['root-app', 'created'], ['binder', 'running'], ['linker', 'running']]) {
      assert.equal(JSON.parse(await cluster.engines[0]!.docker(['inspect', name!]))[0].State.Status, status, name)
    }
    for (const i of [1, 2]) {
      const e = cluster.engines[i]!
      const names = (await e.docker(['ps', '-a', '--format', '{{.Names}}'])).split('\n').filter(Boolean)
      assert.ok(!names.some(n => ['app', 'big', 'root-app', 'binder', 'linker'].includes(n) || n.startsWith('goto-fill')), `engine ${i} has ${names.join(',')}`)
      assert.doesNotMatch(await e.docker(['volume', 'ls', '-q']), /bigdata|linkdata/)
      assert.doesNotMatch(await e.docker(['images', '--format', '{{.Repository}}']), /goto-migrate/)
    }
  }

  async function refused (args: string[], code: string): Promise<void> {
    const res = await cluster.agents[0]!.cli(['migrate', ...args])
    assert.equal(res.code, 1, res.stdout + res.stderr)
    assert.match(res.stderr, new RegExp(code), res.stderr)
    assert.doesNotMatch(res.stderr, /\n\s+at /)
    await assertUntouched()
  }

  it('no disk space: the target engine\'s data root is too small', async () => {
    await refused(['-s', 'big', 'host2'], 'GOTO_ERR_INSUFFICIENT_DISK: the move needs \\d+ bytes of disk')
  })

  it('name taken', async () => {
    await cluster.engines[1]!.docker(['create', '--network', 'none', '--name', 'taken', BASE_IMAGE, 'true'])
    await refused(['-s', 'app', '-t', 'taken', 'host1'], 'GOTO_ERR_NAME_TAKEN: a container named "taken" exists')
    await cluster.engines[1]!.docker(['rm', 'taken'])
  })

  it('port taken', async () => {
    const server: Server = createServer()
    await new Promise<void>(resolve => server.listen(18181, '0.0.0.0', resolve))
    try {
      await refused(['-s', 'app', 'host1'], 'GOTO_ERR_PORT_TAKEN: host port 18181/tcp is taken')
    } finally {
      server.close()
    }
  })

  it('privileged containers by policy', async () => {
    await refused(['-s', 'root-app', 'host1'], 'GOTO_ERR_PRIVILEGED')
  })

  it('a bind mount of a host path: refused by the source unless asked, then by the target\'s policy', async () => {
    await refused(['-s', 'binder', 'host1'], 'GOTO_ERR_HOST_PATH: "binder" bind-mounts host paths .* pass --allow-bind-mounts')
    await refused(['-s', 'binder', '--allow-bind-mounts', 'host1'], 'GOTO_ERR_HOST_PATH: the container bind-mounts the host path')
  })

  it('a volume whose archive leaves the volume: refused by the target\'s archive check, and nothing of it stays', async () => {
    await until(async () => (await cluster.engines[0]!.docker(['exec', 'linker', 'ls', '/data'])).includes('root'), 10_000, 'the symlink')
    await refused(['-s', 'linker', 'host1'], 'GOTO_ERR_BAD_ARCHIVE: .*data/root: a symlink to /, outside the volume /data')
  })

  it('unknown container, unknown target', async () => {
    await refused(['-s', 'nope', 'host1'], 'GOTO_ERR_UNKNOWN_CONTAINER: no container "nope"')
    await refused(['-s', 'app', 'host9'], 'GOTO_ERR_UNKNOWN_TARGET')
  })

  it('a dry run says why the target refuses', async () => {
    await refused(['--dry-run', '-s', 'big', 'host2'], 'GOTO_ERR_INSUFFICIENT_DISK')
  })

  describe('forged and replayed requests from a mesh member', () => {
    const target = (): typeof cluster.agents[number] => cluster.agents[1]!

    async function offer (fields: Partial<OfferPayload> = {}, signWith?: Awaited<ReturnType<typeof generateKeyPair>>): Promise<{ s: ReturnType<typeof session>, id: string }> {
      const id = uuidv7()
      const payload: OfferPayload = {
        id,
        source: raw.peerId,
        target: target().peerId,
        time: Date.now(),
        spec: { name: `raw-${id.slice(-6)}`, image: 'x', config: { Cmd: ['true'] }, hostConfig: {}, mounts: [] },
        diskBytes: 1000,
        memoryBytes: 0,
        consistency: 'freeze',
        dryRun: false,
        ...fields
      }
      const text = JSON.stringify(payload)
      const key = signWith ?? raw.privateKey
      const signature = Buffer.from(await key.sign(new TextEncoder().encode(text))).toString('base64url')
      const s = session(await raw.open(target(), MIGRATE_PROTOCOL))
      await s.send({ type: 'offer', payload: text, signature })
      return { s, id }
    }

    /** Every migration token a target handed out here: none may reach a log. */
    const tokens: string[] = []

    before(async () => { await raw.introduce(target()) })

    it('bad signature', async () => {
      const { s } = await offer({}, await generateKeyPair('Ed25519'))
      const reply = await s.readControl()
      assert.equal(reply.type, 'reject')
      assert.equal((reply as any).code, 'BAD_SIGNATURE')
    })

    it('wrong token', async () => {
      const { s, id } = await offer()
      const accept = await s.expect('accept')
      tokens.push(accept.token)
      await s.send({ type: 'transfer', id, token: accept.token.replace(/^./, c => c === 'A' ? 'B' : 'A') })
      const reply = await s.readControl()
      assert.equal(reply.type, 'error')
      assert.equal((reply as any).code, 'BAD_TOKEN')
      // and the admission is gone: the token cannot be tried again
      const again = session(await raw.open(target(), MIGRATE_PROTOCOL))
      await again.send({ type: 'transfer', id, token: accept.token })
      assert.equal((await again.readControl() as any).code, 'BAD_STATE')
    })

    it('a source that announces more than it offered is stopped before the target fills its disk', async () => {
      const { s, id } = await offer({ diskBytes: 1000 })
      const accept = await s.expect('accept')
      await s.send({ type: 'transfer', id, token: accept.token })
      await s.expect('ok')
      await s.send({ type: 'blob', id, name: 'image' })
      // 20 chunks of 16 MiB claimed for an offer of 1000 bytes
      await s.send({ type: 'recipe', id, name: 'image', chunks: Array.from({ length: 20 }, (_, i) => [i.toString(16).padStart(64, '0'), 16 * 1024 * 1024] as [string, number]) })
      const reply = await s.readControl()
      assert.equal(reply.type, 'error')
      assert.equal((reply as any).code, 'INSUFFICIENT_DISK')
      await until(async () => (await target().call('GET', `/v1/migrations/${id}`)).body.phase === 'aborted', 5000, 'the target to clean up')
    })

    it('replayed token', async () => {
      const { s, id } = await offer()
      const accept = await s.expect('accept')
      tokens.push(accept.token)
      await s.send({ type: 'transfer', id, token: accept.token })
      await s.expect('ok')
      const replay = session(await raw.open(target(), MIGRATE_PROTOCOL))
      await replay.send({ type: 'transfer', id, token: accept.token })
      const reply = await replay.readControl()
      assert.equal(reply.type, 'error')
      assert.equal((reply as any).code, 'TOKEN_USED')
      s.abort(new Error('done'))
      // the broken session leaves nothing behind
      await until(async () => (await target().call('GET', `/v1/migrations/${id}`)).body.phase === 'aborted', 5000, 'the target to clean up')
    })

    it('every refusal is in the target\'s audit log', async () => {
      const { body } = await target().call('GET', '/v1/log')
      const seen = (body.entries as any[]).map(e => `${e.kind}:${e.details?.code ?? ''}`)
      for (const expected of ['migration.refused:BAD_SIGNATURE', 'migration.refused:NAME_TAKEN', 'migration.refused:PORT_TAKEN', 'migration.refused:PRIVILEGED', 'security.bad-token:BAD_TOKEN', 'security.bad-token:TOKEN_USED']) {
        assert.ok(seen.includes(expected), `${expected} not in ${seen.join(' ')}`)
      }
      const small = (await cluster.agents[2]!.call('GET', '/v1/log?kind=migration')).body.entries as any[]
      assert.ok(small.some(e => e.kind === 'migration.refused' && e.details.code === 'INSUFFICIENT_DISK'))
    })

    it('a peer\'s offer that would gain the host is refused by reason, and nothing of it is created', async () => {
      const bind = (source: string): OfferPayload['spec']['mounts'][number] => ({ type: 'bind', source, destination: '/host', readOnly: false, anonymous: false })
      const cases: Array<[string, Partial<OfferPayload['spec']>]> = [
        ['PRIVILEGED', { hostConfig: { Privileged: true } }],
        ['HOST_NAMESPACE', { hostConfig: { NetworkMode: 'host' } }],
        ['HOST_NAMESPACE', { hostConfig: { PidMode: 'host' } }],
        ['HOST_NAMESPACE', { hostConfig: { IpcMode: 'host' } }],
        ['CAPABILITY', { hostConfig: { CapAdd: ['SYS_ADMIN'] } }],
        ['DEVICE', { hostConfig: { Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda', CgroupPermissions: 'rwm' }] } }],
        ['HOST_PATH', { mounts: [bind('/')] }],
        ['HOST_PATH', { mounts: [bind('/var/run/docker.sock')] }],
        ['UNCONFINED', { hostConfig: { SecurityOpt: ['seccomp=unconfined'] } }]
      ]
      const before = await target().call('GET', '/v1/migrations')
      for (const [code, spec] of cases) {
        const name = `gain-${code.toLowerCase()}`
        const { s } = await offer({ spec: { name, image: BASE_IMAGE, config: { Cmd: ['true'] }, hostConfig: {}, mounts: [], ...spec } })
        const reply = await s.readControl()
        assert.equal(reply.type, 'reject', `${code}: ${JSON.stringify(reply)}`)
        assert.equal((reply as any).code, code, (reply as any).reason)
        s.abort(new Error('done'))
      }
      const e1 = cluster.engines[1]!
      assert.doesNotMatch(await e1.docker(['ps', '-a', '--format', '{{.Names}}']), /gain-/)
      assert.equal((await e1.docker(['volume', 'ls', '-q'])).trim(), '')
      assert.equal((await target().call('GET', '/v1/migrations')).body.migrations.length, before.body.migrations.length, 'a refused offer journals no migration')
    })

    it('keeps serving through garbage, oversized frames, truncated streams and a flood of offers; nothing it holds changes', async () => {
      const e1 = cluster.engines[1]!
      const held = async (): Promise<string> => [
        await e1.docker(['ps', '-a', '--format', '{{.Names}} {{.Status}}']),
        await e1.docker(['volume', 'ls', '-q']),
        await e1.docker(['images', '-q'])
      ].join('|').replace(/Up [^|\n]+/g, 'Up')
      const before = await held()
      const raws = async (protocol: string, bytes: Uint8Array[]): Promise<void> => {
        const stream = await raw.open(target(), protocol)
        for (const b of bytes) stream.send(b)
        await stream.close({ signal: AbortSignal.timeout(5000) }).catch(() => { stream.abort(new Error('done')) })
      }
      const varint = (n: number): Uint8Array => { const out: number[] = []; while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) } out.push(n); return Uint8Array.from(out) }
      for (const protocol of [MIGRATE_PROTOCOL, '/goto/chunks/1.0.0', '/goto/log-sync/1.0.0', '/goto/state/1.0.0']) {
        await raws(protocol, [Buffer.from('\xff\x00garbage that is no frame at all'.repeat(40))])
        await raws(protocol, [varint(2 ** 31), Buffer.alloc(64 * 1024, 1)]) // oversized: refused from its length prefix
        await raws(protocol, [varint(1000), Buffer.from('{"type":"off')]) // truncated
        await raws(protocol, [varint(20), Buffer.from('{"v":1,"type":"nope"}')]) // well framed, wrong schema
      }
      const flood = await Promise.allSettled(Array.from({ length: 40 }, async () => {
        const { s } = await offer()
        try {
          const reply = await s.readControl()
          return reply.type === 'reject' ? reply.code : reply.type
        } finally { s.abort(new Error('flood')) }
      }))
      assert.ok(flood.every(r => r.status === 'fulfilled' || /stream|reset|abort|limit/i.test(String(r.reason))), String((flood.find(r => r.status === 'rejected') as PromiseRejectedResult | undefined)?.reason))
      const replies = flood.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
      assert.ok(replies.includes('RATE_LIMITED') && replies.filter(r => r === 'accept').length <= OFFER_BURST, `the offer rate limit held: ${replies.join(' ')}`)
      // still serving: its API, the mesh, its log; and what it holds is as it was
      assert.equal((await target().call('GET', '/v1/node')).status, 200)
      await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.peerId === target().peerId && p.status === 'alive'), 10_000, 'the target alive in the mesh')
      await until(async () => (await target().call('GET', '/v1/migrations')).body.migrations.every((m: any) => ['aborted', 'activated', 'rolled-back', 'dry-run'].includes(m.phase) || m.role !== 'target'), 30_000, 'the flood\'s admissions to lapse')
      assert.equal(await held(), before)
      assert.equal((await target().cli(['log', 'verify'])).code, 0)
      // once its bucket refills, the same peer is admitted again
      await until(async () => {
        const { s } = await offer()
        try { return (await s.readControl()).type === 'accept' } finally { s.abort(new Error('done')) }
      }, 10_000, 'a good offer to be admitted again')
    })

    it('no secret in any log line: the API token, migration tokens, the swarm key', async () => {
      const swarmKey = readFileSync(target().swarmKeyFile, 'utf8').split('\n')[2]!
      assert.equal(tokens.length, 2)
      for (const agent of cluster.agents) {
        const audit = JSON.stringify((await agent.call('GET', '/v1/log?limit=1000')).body)
        for (const [what, text] of [['log file', agent.log()], ['audit log', audit]] as const) {
          for (const [name, secret] of [['API token', agent.token], ['swarm key', swarmKey], ...tokens.map(t => ['migration token', t])] as const) {
            assert.ok(!text.includes(secret), `${agent.name}'s ${what} holds the ${name}`)
          }
        }
      }
    })
  })
})
