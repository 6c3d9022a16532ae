/**
 * The API against its OpenAPI document, route by route: the document names
 * exactly the routes the app registers; every route answers with a status
 * and content type the document gives; 401 without the token on every
 * secured route; each kind of invalid body, parameter and id is a 400 that
 * names the field; unknown ids are 404; and every status seen here is one
 * the document lists for that route. Then the two event streams.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Hono } from 'hono'
import { createApp } from '../../api/app.ts'
import { eventStream } from '../../api/events.ts'
import { OPERATIONS, openApiPath } from '../../api/openapi.ts'
import { ProblemSchema } from '../../api/responses.ts'
import type { PeerRecord } from '../../node/mesh/view.ts'
import { parseExposition, sampleValue } from '../harness/prometheus-text.ts'
import { capacity, record, stubAgent, TOKEN, UNKNOWN_ID, type StubAgent } from './stub-agent.ts'

const auth = { authorization: `Bearer ${TOKEN}` }

interface DocOperation {
  security?: unknown[]
  responses: Record<string, { content?: Record<string, unknown> }>
  requestBody?: unknown
}

type Doc = { paths: Record<string, Record<string, DocOperation>> }

/** A valid body per route that takes one. */
const VALID_BODY: Record<string, unknown> = {
  'POST /v1/mesh/join': { addr: '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWOther' },
  'POST /v1/migrations': { container: 'web-1', target: 'host1' },
  'POST /v1/mesh/drain': { deadline: '1m' }
}

/** Statuses seen per documented route, checked against the document at the end. */
const seen = new Map<string, Set<number>>()

function harness (agent: StubAgent = stubAgent()): { agent: StubAgent, call: (method: string, route: string, options?: { path?: string, body?: string, headers?: Record<string, string> }) => Promise<Response> } {
  const app = createApp({ agent, token: TOKEN })
  return {
    agent,
    async call (method, route, options = {}) {
      const path = options.path ?? route.replace(':id', record.id)
      const headers = { ...auth, ...(options.body != null ? { 'content-type': 'application/json' } : {}), ...options.headers }
      const res = await app.request(path, { method, headers, body: options.body })
      const key = `${method} ${route}`
      seen.set(key, (seen.get(key) ?? new Set()).add(res.status))
      return res
    }
  }
}

async function documentOf (): Promise<Doc> {
  const { call } = harness()
  const res = await call('GET', '/v1/openapi.json')
  assert.equal(res.status, 200)
  return await res.json() as Doc
}

/** Read an event stream until it ends or `count` events came, then let go of it. */
async function readEvents (res: Response, count = Infinity): Promise<Array<{ event: string, data: any }>> {
  assert.equal(res.headers.get('content-type'), 'text/event-stream')
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader()
  const events: Array<{ event: string, data: any }> = []
  let buffer = ''
  while (events.length < count) {
    const { done, value } = await reader.read()
    if (done) return events
    buffer += value
    for (let cut = buffer.indexOf('\n\n'); cut >= 0 && events.length < count; cut = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, cut)
      buffer = buffer.slice(cut + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
      const data = [...block.matchAll(/^data: (.*)$/gm)].map(m => m[1]).join('\n')
      if (data !== '') events.push({ event, data: JSON.parse(data) })
    }
  }
  await reader.cancel()
  return events
}

const peerRecord = (peerId: string, name: string): PeerRecord => ({
  peerId,
  status: 'alive',
  since: 0,
  lastHeard: 0,
  connected: true,
  capacity,
  nodeStatus: 'active',
  state: { v: 1, peerId, name, incarnation: 1, seq: 1, state: 'active', addrs: [], runtime: 'none', capacity, containers: [] } as unknown as PeerRecord['state']
})

describe('HTTP API contract', () => {
  it('the OpenAPI document names every route the app registers, and no other', async () => {
    const doc = await documentOf()
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const registered = app.routes.filter(r => r.method !== 'ALL').map(r => `${r.method} ${openApiPath(r.path)}`).sort()
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map(m => `${m.toUpperCase()} ${path}`)).sort()
    assert.deepEqual(documented, registered)
    assert.equal(documented.length, OPERATIONS.length)
  })

  it('documents each body with the schema the route checks', async () => {
    const doc = await documentOf()
    const schema = (path: string): any => (doc.paths[path]?.post?.requestBody as any).content['application/json'].schema
    assert.deepEqual(schema('/v1/mesh/join').required, ['addr'])
    assert.equal(schema('/v1/mesh/join').additionalProperties, false)
    const migrate = schema('/v1/migrations')
    assert.deepEqual(migrate.required, ['container', 'target'])
    assert.deepEqual(migrate.properties.consistency.enum, ['freeze', 'stop'])
    assert.deepEqual(Object.keys(migrate.properties).sort(), ['allowBindMounts', 'async', 'bwlimit', 'consistency', 'container', 'dryRun', 'name', 'precopy', 'stopTimeout', 'target'])
  })

  it('answers every documented route with a documented status, content type and body', async () => {
    const doc = await documentOf()
    const { call } = harness()
    for (const op of OPERATIONS) {
      const key = `${op.method.toUpperCase()} ${op.path}`
      const body = VALID_BODY[key]
      const res = await call(op.method.toUpperCase(), op.path, { body: body != null ? JSON.stringify(body) : undefined })
      const documented = doc.paths[openApiPath(op.path)]?.[op.method]?.responses[String(res.status)]
      if (documented == null || res.status >= 400) assert.fail(`${key}: ${res.status} ${await res.text()}`)
      const type = Object.keys(documented.content ?? {})[0]
      if (type != null) assert.equal(res.headers.get('content-type')?.split(';')[0], type, key)
      if (op.schema != null) {
        const parsed = op.schema.safeParse(await res.json())
        assert.ok(parsed.success, `${key}: ${parsed.error?.message ?? ''}`)
      } else {
        await res.body?.cancel()
      }
    }
  })

  it('refuses every secured route without the right token, and serves the public ones without', async () => {
    const doc = await documentOf()
    const { call } = harness()
    for (const op of OPERATIONS) {
      const secured = doc.paths[openApiPath(op.path)]?.[op.method]?.security == null
      for (const authorization of ['', 'Bearer wrong', TOKEN]) {
        const res = await call(op.method.toUpperCase(), op.path, { headers: { authorization } })
        if (!secured) {
          await res.body?.cancel()
          assert.ok(res.status < 400, `${op.method} ${op.path} is public`)
          continue
        }
        assert.equal(res.status, 401, `${op.method} ${op.path} with "${authorization}"`)
        assert.equal(res.headers.get('content-type'), 'application/problem+json')
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/)
        assert.ok(ProblemSchema.safeParse(await res.json()).success)
      }
    }
  })

  it('says exactly what is wrong with each kind of invalid body', async () => {
    const { call } = harness()
    const cases: Array<[string, string, RegExp]> = [
      ['POST /v1/mesh/join', 'not json', /the body is not JSON/],
      ['POST /v1/mesh/join', '[]', /^body: .*object/],
      ['POST /v1/mesh/join', '"/ip4/127.0.0.1/tcp/1"', /^body: .*object/],
      ['POST /v1/mesh/join', '{}', /^body\.addr: .*string/],
      ['POST /v1/mesh/join', JSON.stringify({ addr: 7 }), /^body\.addr: .*string/],
      ['POST /v1/mesh/join', JSON.stringify({ addr: '' }), /^body\.addr: .*>=1/],
      ['POST /v1/mesh/join', JSON.stringify({ addr: '/ip4/1.2.3.4/tcp/1/' + 'x'.repeat(1100) }), /^body\.addr: .*<=1024/],
      ['POST /v1/mesh/join', JSON.stringify({ addr: '/ip4/127.0.0.1/tcp/1', via: 'x' }), /^body: .*"via"/],
      ['POST /v1/migrations', 'not json', /the body is not JSON/],
      ['POST /v1/migrations', JSON.stringify({ target: 'host1' }), /^body\.container: /],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1' }), /^body\.target: /],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', consistency: 'maybe' }), /^body\.consistency: .*"freeze"\|"stop"/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', name: '-x/y' }), /^body\.name: a Docker container name/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', stopTimeout: 1.5 }), /^body\.stopTimeout: .*expected int/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', stopTimeout: 4000 }), /^body\.stopTimeout: .*<=3600/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', async: 'yes' }), /^body\.async: .*boolean/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', bwlimit: 'fast' }), /^bwlimit: bandwidth limit "fast" is not a rate/],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', bwlimit: -1 }), /^body\.bwlimit: /],
      ['POST /v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', speed: 'fast' }), /^body: .*"speed"/],
      ['POST /v1/mesh/drain', 'not json', /the body is not JSON/],
      ['POST /v1/mesh/drain', JSON.stringify({ deadline: 'soon' }), /^body\.deadline: a span like 90s, 15m or 1h/],
      ['POST /v1/mesh/drain', JSON.stringify({ deadline: 600 }), /^body\.deadline: .*string/],
      ['POST /v1/mesh/drain', JSON.stringify({ deadline: '10m', force: true }), /^body: .*"force"/]
    ]
    for (const [route, body, detail] of cases) {
      const [method, path] = route.split(' ') as [string, string]
      const res = await call(method, path, { body })
      assert.equal(res.status, 400, `${route} ${body}`)
      const problem = await res.json() as { code: string, detail: string }
      assert.equal(problem.code, 'GOTO_ERR_BAD_REQUEST')
      assert.match(problem.detail, detail, `${route} ${body}`)
    }
  })

  it('says exactly what is wrong with a bad query or id', async () => {
    const { call } = harness()
    const cases: Array<[string, string, string, RegExp]> = [
      ['/v1/containers', '/v1/containers?match=(', 'GOTO_ERR_INVALID_PATTERN', /"\(" is not a regular expression/],
      ['/v1/log', '/v1/log?since=yesterday', 'GOTO_ERR_INVALID_TIME', /^since: "yesterday"/],
      ['/v1/log', '/v1/log?till=soon', 'GOTO_ERR_INVALID_TIME', /^till: "soon"/],
      ['/v1/log', '/v1/log?limit=-1', 'GOTO_ERR_BAD_REQUEST', /^limit: "-1" is not a whole number from 0 to 10000/],
      ['/v1/log', '/v1/log?limit=10001', 'GOTO_ERR_BAD_REQUEST', /^limit: /],
      ['/v1/log', '/v1/log?offset=1.5', 'GOTO_ERR_BAD_REQUEST', /^offset: "1\.5"/]
    ]
    for (const [route, path, code, detail] of cases) {
      const res = await call('GET', route, { path })
      assert.equal(res.status, 400, path)
      const problem = await res.json() as { code: string, detail: string }
      assert.equal(problem.code, code, path)
      assert.match(problem.detail, detail, path)
    }
    for (const op of OPERATIONS.filter(o => o.path.includes(':id'))) {
      const res = await call(op.method.toUpperCase(), op.path, { path: op.path.replace(':id', 'not-an-id') })
      assert.equal(res.status, 400, op.path)
      assert.match((await res.json() as { detail: string }).detail, /"not-an-id" is not a migration id/)
    }
  })

  it('answers 404 for an unknown migration on every route that takes an id, and for unknown routes', async () => {
    const { call } = harness()
    for (const op of OPERATIONS.filter(o => o.path.includes(':id'))) {
      const res = await call(op.method.toUpperCase(), op.path, { path: op.path.replace(':id', UNKNOWN_ID) })
      assert.equal(res.status, 404, op.path)
      assert.equal(res.headers.get('content-type'), 'application/problem+json')
      assert.equal((await res.json() as { code: string }).code, 'GOTO_ERR_UNKNOWN_MIGRATION', op.path)
    }
    const res = await call('POST', '/v1/migrations', { body: JSON.stringify({ container: 'nope', target: 'host1' }) })
    assert.equal(res.status, 404)
    for (const path of ['/v1/nowhere', '/v2/node', '/ui/secret.txt']) {
      const missing = await call('GET', path)
      assert.equal(missing.status, 404, path)
      assert.equal((await missing.json() as { code: string }).code, 'GOTO_ERR_NOT_FOUND')
      seen.delete(`GET ${path}`)
    }
  })

  it('serves Prometheus metrics of the node, the mesh view, the migrations and the log at /metrics, and the same at /v1/metrics', async () => {
    const { call } = harness()
    const res = await call('GET', '/metrics')
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
    const families = parseExposition(await res.text())
    const v = (name: string, labels = {}): number => sampleValue(families, name, labels)
    assert.deepEqual(families.get('goto_info')?.samples.map(s => s.labels), [{ peer_id: '12D3KooWStub', name: 'stub', version: '0', mesh: 'm' }])
    assert.equal(v('goto_cpus'), 2)
    assert.equal(v('goto_peers', { status: 'alive' }), 0)
    assert.equal(v('goto_containers', { node: 'stub', state: 'running' }), 1)
    assert.equal(v('goto_migrations', { role: 'source', phase: 'planned' }), 1)
    assert.equal(v('goto_audit_entries', { origin: '12D3KooWStub' }), 3)
    assert.equal(v('goto_audit_refused_total'), 0)
    assert.ok(families.has('goto_process_cpu_seconds_total'))
    const alias = parseExposition(await (await call('GET', '/v1/metrics')).text())
    assert.deepEqual([...alias.keys()], [...families.keys()])
  })

  it('streams a drain as JSON lines ending in the report, and answers 409 to a second drain', async () => {
    const { agent, call } = harness()
    const res = await call('POST', '/v1/mesh/drain', { body: JSON.stringify({ deadline: '2m' }) })
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson')
    const lines = (await res.text()).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { type: string, report?: { done: boolean } })
    assert.deepEqual(lines.map(l => l.type), ['started', 'progress', 'report'])
    assert.equal(lines.at(-1)?.report?.done, true)
    assert.equal(agent.left, 1)
    const again = await call('POST', '/v1/mesh/drain', { body: '{}' })
    assert.equal(again.status, 409)
    assert.equal((await again.json() as { code: string }).code, 'GOTO_ERR_DRAINING')
  })

  it('pages the log with next', async () => {
    const { call } = harness()
    const first = await (await call('GET', '/v1/log', { path: '/v1/log?limit=2' })).json() as { entries: unknown[], next?: number }
    assert.equal(first.entries.length, 2)
    assert.equal(first.next, 2)
    const rest = await (await call('GET', '/v1/log', { path: '/v1/log?limit=2&offset=2' })).json() as { entries: unknown[], next?: number }
    assert.equal(rest.entries.length, 1)
    assert.equal(rest.next, undefined)
  })

  it('serves the dashboard without a token, confined by its content security policy', async () => {
    const { call } = harness()
    const page = await call('GET', '/ui/', { headers: { authorization: '' } })
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<script type="module" src="\/ui\/app\.js">/)
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';.*connect-src 'self'/)
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer')
    const redirect = await call('GET', '/ui')
    assert.equal(redirect.status, 301)
    assert.equal(redirect.headers.get('location'), '/ui/')
  })

  it('every status seen above is one the document lists for its route', async () => {
    const doc = await documentOf()
    assert.ok(seen.size >= OPERATIONS.length)
    for (const [key, statuses] of seen) {
      const [method, route] = key.split(' ') as [string, string]
      const responses = doc.paths[openApiPath(route)]?.[method.toLowerCase()]?.responses
      assert.ok(responses != null, `${key} is not documented`)
      for (const status of statuses) assert.ok(responses[String(status)] != null, `${key} answered ${status}, which the document does not list`)
    }
  })
})

describe('event streams', () => {
  it('keep an idle stream open with a comment line, and unsubscribe when the reader leaves', async () => {
    let subscribed = 0
    const app = new Hono().get('/idle', (c) => eventStream(c, () => {
      subscribed++
      return () => { subscribed-- }
    }, { keepAliveMs: 20 }))
    const res = await app.request('/idle')
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    while (!text.includes(': keep-alive\n\n: keep-alive\n\n')) text += (await reader.read()).value ?? ''
    assert.equal(subscribed, 1)
    await reader.cancel()
    await new Promise(resolve => setTimeout(resolve, 30))
    assert.equal(subscribed, 0)
  })

  it('streams one migration: the record, each update of it, and ends after a final phase', async () => {
    const { agent, call } = harness()
    const res = await call('GET', '/v1/migrations/:id/events')
    const reading = readEvents(res)
    await new Promise(resolve => setImmediate(resolve))
    agent.events.safeDispatchEvent('update', { detail: { ...record, id: UNKNOWN_ID, phase: 'frozen' } })
    agent.events.safeDispatchEvent('update', { detail: { ...record, role: 'target', phase: 'receiving' } })
    await new Promise(resolve => setImmediate(resolve))
    agent.events.safeDispatchEvent('update', { detail: { ...record, phase: 'transferring', bytes: { total: 1000, moved: 500 } } })
    await new Promise(resolve => setTimeout(resolve, 10))
    agent.events.safeDispatchEvent('update', { detail: { ...record, phase: 'activated', bytes: { total: 1000, moved: 1000 } } })
    const events = await reading
    assert.deepEqual(events.map(e => [e.event, e.data.phase, e.data.role]), [
      ['migration', 'planned', 'source'], ['migration', 'transferring', 'source'], ['migration', 'activated', 'source']
    ])
    assert.equal(agent.events.listenerCount('update'), 0)
  })

  it('a reader that falls behind gets the newest record, not a backlog', async () => {
    const { agent, call } = harness()
    const res = await call('GET', '/v1/migrations/:id/events')
    const reader = readEvents(res)
    await new Promise(resolve => setImmediate(resolve))
    for (let moved = 1; moved <= 100; moved++) agent.events.safeDispatchEvent('update', { detail: { ...record, phase: 'transferring', bytes: { total: 100, moved } } })
    agent.events.safeDispatchEvent('update', { detail: { ...record, phase: 'activated', bytes: { total: 100, moved: 100 } } })
    const events = await reader
    assert.ok(events.length <= 3, `${events.length} events`)
    assert.equal(events.at(-1)?.data.phase, 'activated')
  })

  it('streams mesh changes: peers appearing, changing and removed, and migration updates', async () => {
    const { agent, call } = harness()
    const reading = readEvents(await call('GET', '/v1/events'), 4)
    await new Promise(resolve => setImmediate(resolve))
    const peer = peerRecord('12D3KooWPeerA', 'host-a')
    agent.view.safeDispatchEvent('peer:status', { detail: { peerId: peer.peerId, from: 'new', to: 'alive', record: peer } })
    await new Promise(resolve => setTimeout(resolve, 10))
    agent.view.safeDispatchEvent('peer:state', { detail: { ...peer, nodeStatus: 'draining' } })
    await new Promise(resolve => setTimeout(resolve, 10))
    agent.events.safeDispatchEvent('update', { detail: { ...record, phase: 'offered' } })
    await new Promise(resolve => setTimeout(resolve, 10))
    agent.view.safeDispatchEvent('peer:status', { detail: { peerId: peer.peerId, from: 'gone', to: 'removed', record: peer } })
    const events = await reading
    assert.deepEqual(events.map(e => e.event), ['peer', 'peer', 'migration', 'peer-removed'])
    assert.equal(events[0]?.data.name, 'host-a')
    assert.equal(events[0]?.data.status, 'alive')
    assert.equal(events[1]?.data.state, 'draining')
    assert.equal(events[2]?.data.phase, 'offered')
    assert.deepEqual(events[3]?.data, { peerId: peer.peerId })
    await new Promise(resolve => setTimeout(resolve, 10))
    assert.equal(agent.view.listenerCount('peer:status'), 0)
    assert.equal(agent.events.listenerCount('update'), 0)
  })
})
