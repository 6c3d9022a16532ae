import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { streamPair } from '@libp2p/utils'
import {
  decodeControl, encodeControl, parseManifest, parseOfferPayload, session, canMove, isFinal, isCommitted,
  MAX_CONTROL_BYTES, MAX_RECIPE_BATCH, RemoteRefusalError
} from '../../protocols/migrate/index.ts'
import { checkPolicy } from '../../node/migration/policy.ts'
import { createBody, publishedPorts, specFromInspect, type ContainerSpec } from '../../node/migration/spec.ts'
import { uuidv7 } from '../../node/migration/ids.ts'
import { parseFailpoints } from '../../node/migration/failpoints.ts'

const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
const control = json

describe('migrate frames', () => {
  it('round-trips control messages, recipes included', () => {
    const id = uuidv7()
    assert.deepEqual(decodeControl(encodeControl({ type: 'commit', id })), { type: 'commit', id })
    const recipe = { type: 'recipe' as const, id, name: 'pre:volume:/data', chunks: [['a'.repeat(64), 65536] as [string, number]] }
    assert.deepEqual(decodeControl(encodeControl(recipe)), recipe)
  })

  it('refuses malformed, unknown and oversized frames with a clear error', () => {
    const bad = (frame: Uint8Array, pattern: RegExp): void => {
      assert.throws(() => decodeControl(frame), (err: any) => err.code === 'GOTO_ERR_INVALID_MIGRATE_MESSAGE' && pattern.test(err.message))
    }
    bad(new Uint8Array(0), /empty frame/)
    bad(new Uint8Array([0xff]), /not UTF-8 JSON/)
    bad(control({ type: 'launch-missiles' }), /schema/)
    bad(control({ type: 'commit', id: 'not-a-uuid' }), /"id"/)
    bad(control({ type: 'commit', id: uuidv7(), extra: true }), /schema/)
    bad(control({ type: 'reject', id: uuidv7(), code: 'MADE_UP', reason: '' }), /"code"/)
    bad(control({ type: 'blob-end', id: uuidv7(), name: 'image', bytes: -1, sha256: 'a'.repeat(64) }), /"bytes"/)
    bad(control({ type: 'blob', id: uuidv7(), name: '../../etc' }), /"name"/)
    bad(control({ type: 'recipe', id: uuidv7(), name: 'image', chunks: [['zz', 1]] }), /"chunks/)
    bad(control({ type: 'recipe', id: uuidv7(), name: 'image', chunks: [['a'.repeat(64), 0]] }), /"chunks/)
    bad(control({ type: 'recipe', id: uuidv7(), name: 'image', chunks: Array.from({ length: MAX_RECIPE_BATCH + 1 }, () => ['a'.repeat(64), 1]) }), /"chunks"/)
    bad(new Uint8Array(MAX_CONTROL_BYTES + 2), /exceeds/)
    assert.throws(() => encodeControl({ type: 'abort', id: uuidv7(), reason: 'x'.repeat(MAX_CONTROL_BYTES) }), /exceeds/)
  })

  it('checks offers and manifests against their schemas', () => {
    const offer = { id: uuidv7(), source: 'a', target: 'b', time: 1, spec: { name: 'web-1', image: 'x', config: {}, hostConfig: {}, mounts: [] }, diskBytes: 1, memoryBytes: 0, consistency: 'freeze', dryRun: false }
    assert.deepEqual(parseOfferPayload(JSON.stringify(offer)), offer)
    assert.throws(() => parseOfferPayload(JSON.stringify({ ...offer, consistency: 'yolo' })), /consistency/)
    assert.throws(() => parseOfferPayload(JSON.stringify({ ...offer, spec: { ...offer.spec, name: '../etc' } })), /spec\.name/)
    assert.throws(() => parseOfferPayload(JSON.stringify({ ...offer, spec: { ...offer.spec, mounts: [{ type: 'volume', source: 'v', destination: 'relative', readOnly: false, anonymous: false }] } })), /destination/)
    const blob = { name: 'image', bytes: 1, sha256: 'a'.repeat(64), chunks: 1, recipe: 'b'.repeat(64) }
    assert.deepEqual(parseManifest(JSON.stringify({ id: uuidv7(), source: 'a', target: 'b', blobs: [blob] })).blobs, [blob])
    assert.throws(() => parseManifest(JSON.stringify({ id: uuidv7(), source: 'a', target: 'b', blobs: [{ ...blob, sha256: 'zz' }] })), /sha256/)
    assert.throws(() => parseManifest(JSON.stringify({ id: uuidv7(), source: 'a', target: 'b', blobs: [{ ...blob, recipe: undefined }] })), /recipe/)
  })

  it('a session caps frames read from the peer and surfaces refusals with their code', async () => {
    const [a, b] = await streamPair()
    const left = session(a)
    const right = session(b)
    await left.send({ type: 'reject', id: uuidv7(), code: 'NAME_TAKEN', reason: 'a container named "web" exists' })
    await assert.rejects(right.expect('accept'), (err: any) => err instanceof RemoteRefusalError && err.code === 'GOTO_ERR_NAME_TAKEN' && /exists/.test(err.message))
    // a length prefix announcing more than a frame may hold
    a.send(new Uint8Array([0xff, 0xff, 0xff, 0x0f]))
    await assert.rejects(right.readControl(), (err: any) => /length|InvalidDataLength/i.test(`${err.name} ${err.message}`))
  })
})

describe('migration phases', () => {
  it('allow only the moves of the design', () => {
    assert.ok(canMove('source', 'prepared', 'committed'))
    assert.ok(canMove('source', 'frozen', 'aborted'))
    assert.ok(!canMove('source', 'committed', 'aborted'), 'after the commit only forward')
    assert.ok(!canMove('target', 'committed', 'aborted'))
    assert.ok(!canMove('target', 'admitted', 'committed'), 'no commit without prepare')
    assert.ok(isFinal('activated') && isFinal('aborted') && !isFinal('prepared'))
    assert.ok(isCommitted('committed') && !isCommitted('prepared'))
  })

  it('ids are UUIDv7 in time order', () => {
    const a = uuidv7(1000)
    const b = uuidv7(2000)
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.ok(a < b)
  })

  it('failpoints parse and ignore what they do not know', () => {
    assert.deepEqual([...parseFailpoints('source:frozen=crash, target:prepared=cut,bogus=explode,x=on,y=cut@3')], [
      ['source:frozen', { action: 'crash', at: 1 }], ['target:prepared', { action: 'cut', at: 1 }], ['x', { action: 'on', at: 1 }], ['y', { action: 'cut', at: 3 }]
    ])
  })
})

describe('container spec and admission policy', () => {
  const inspect = {
    Name: '/web-1',
    Config: { Image: 'busybox', Env: ['A=1'], Cmd: ['sleep', '1'], Labels: { app: 'web' }, Hostname: 'abc123', Volumes: { '/anon': {} } },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }] }, RestartPolicy: { Name: 'always' }, Memory: 67108864, Binds: ['data:/data'], ContainerIDFile: '/x' },
    Mounts: [
      { Type: 'volume', Name: 'data', Destination: '/data', RW: true },
      { Type: 'volume', Name: 'a'.repeat(64), Destination: '/anon', RW: false },
      { Type: 'bind', Source: '/etc', Destination: '/host-etc', RW: true }
    ]
  }

  it('keeps what must hold on the target and nothing host-bound', () => {
    const spec = specFromInspect(inspect)
    assert.equal(spec.name, 'web-1')
    assert.deepEqual(spec.config.Env, ['A=1'])
    assert.equal(spec.config.Volumes, undefined)
    assert.equal(spec.hostConfig.Binds, undefined, 'volumes travel as mounts')
    assert.equal(spec.hostConfig.ContainerIDFile, undefined)
    assert.deepEqual(spec.mounts.map(m => [m.type, m.source, m.anonymous, m.readOnly]), [['volume', 'data', false, false], ['volume', 'a'.repeat(64), true, true], ['bind', '/etc', false, false]])
    assert.deepEqual(publishedPorts(spec), [{ hostIp: '', hostPort: 8080, proto: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, proto: 'udp' }])
    const body = createBody(spec, 'goto-migrate/web-1:abc') as any
    assert.equal(body.Image, 'goto-migrate/web-1:abc')
    assert.equal(body.HostConfig.Mounts.length, 3)
    assert.equal(body.HostConfig.Memory, 67108864)
  })

  it('refuses by default what would gain the host, each with its code', () => {
    const base: ContainerSpec = { name: 'x', image: 'x', config: {}, hostConfig: {}, mounts: [] }
    const code = (spec: Partial<ContainerSpec>, policy = {}): string | undefined => checkPolicy({ ...base, ...spec }, policy)?.code
    assert.equal(code({}), undefined)
    assert.equal(code({ hostConfig: { Privileged: true } }), 'PRIVILEGED')
    assert.equal(code({ hostConfig: { NetworkMode: 'host' } }), 'HOST_NAMESPACE')
    assert.equal(code({ hostConfig: { PidMode: 'host' } }), 'HOST_NAMESPACE')
    assert.equal(code({ hostConfig: { IpcMode: 'host' } }), 'HOST_NAMESPACE')
    assert.equal(code({ hostConfig: { NetworkMode: 'container:abc' } }), 'HOST_NAMESPACE')
    assert.equal(code({ hostConfig: { CapAdd: ['SYS_ADMIN'] } }), 'CAPABILITY')
    assert.equal(code({ hostConfig: { Devices: [{ PathOnHost: '/dev/sda' }] } }), 'DEVICE')
    assert.equal(code({ mounts: [{ type: 'bind', source: '/', destination: '/host', readOnly: true, anonymous: false }] }), 'HOST_PATH')
    assert.equal(code({ mounts: [{ type: 'bind', source: '/var/run/docker.sock', destination: '/s', readOnly: false, anonymous: false }] }), 'HOST_PATH')
    assert.equal(code({ hostConfig: { SecurityOpt: ['seccomp=unconfined'] } }), 'UNCONFINED')
    assert.equal(code({ hostConfig: { SecurityOpt: ['apparmor:unconfined'] } }), 'UNCONFINED')
    // the target's own config opens each one
    assert.equal(code({ hostConfig: { Privileged: true } }, { allowPrivileged: true }), undefined)
    assert.equal(code({ hostConfig: { CapAdd: ['NET_ADMIN'] } }, { allowCapabilities: ['NET_ADMIN'] }), undefined)
    assert.equal(code({ mounts: [{ type: 'bind', source: '/srv/app/data', destination: '/d', readOnly: false, anonymous: false }] }, { allowHostPaths: ['/srv/app'] }), undefined)
    assert.equal(code({ mounts: [{ type: 'bind', source: '/srv/application', destination: '/d', readOnly: false, anonymous: false }] }, { allowHostPaths: ['/srv/app'] }), 'HOST_PATH', 'a prefix is a path, not a string')
  })
})
