import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createApp } from '../../api/app.ts'
import { record, stubAgent, TOKEN } from './stub-agent.ts'

const auth = { authorization: `Bearer ${TOKEN}` }
const json = async (res: Response): Promise<any> => await res.json()

describe('HTTP API', () => {
  it('answers /healthz without a token', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const res = await app.request('/healthz')
    assert.equal(res.status, 200)
    assert.deepEqual(await json(res), { status: 'ok', peerId: '12D3KooWStub' })
  })

  it('refuses every /v1 route without the right token, as problem+json', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    for (const [method, path] of [['GET', '/v1/node'], ['GET', '/v1/peers'], ['GET', '/v1/containers'], ['POST', '/v1/mesh/join'], ['POST', '/v1/mesh/leave'], ['GET', '/v1/nowhere']]) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]) {
        const res = await app.request(path!, { method, headers })
        assert.equal(res.status, 401, `${method} ${path} ${JSON.stringify(headers)}`)
        assert.equal(res.headers.get('content-type'), 'application/problem+json')
        assert.equal((await json(res)).code, 'GOTO_ERR_UNAUTHORIZED')
      }
    }
  })

  it('serves node, peers and containers with a regexp filter', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const get = async (path: string): Promise<any> => await json(await app.request(path, { headers: auth }))
    assert.equal((await get('/v1/node')).name, 'stub')
    assert.deepEqual(await get('/v1/peers'), { peers: [] })
    assert.equal((await get('/v1/containers?match=^web-')).containers.length, 1)
    assert.equal((await get('/v1/containers?match=^db-')).containers.length, 0)
    const bad = await app.request('/v1/containers?match=(', { headers: auth })
    assert.equal(bad.status, 400)
    assert.equal((await json(bad)).code, 'GOTO_ERR_INVALID_PATTERN')
  })

  it('joins, and says exactly what is wrong with a bad join', async () => {
    const agent = stubAgent()
    const app = createApp({ agent, token: TOKEN })
    const post = async (body: string): Promise<Response> => await app.request('/v1/mesh/join', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })
    const ok = await post(JSON.stringify({ addr: '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWOther' }))
    assert.equal(ok.status, 200)
    assert.deepEqual(await json(ok), { peerId: '12D3KooWOther' })
    const cases: Array<[string, number, string, RegExp]> = [
      ['not json', 400, 'GOTO_ERR_BAD_REQUEST', /not JSON/],
      ['{}', 400, 'GOTO_ERR_BAD_REQUEST', /body\.addr/],
      [JSON.stringify({ addr: 42 }), 400, 'GOTO_ERR_BAD_REQUEST', /body\.addr/],
      [JSON.stringify({ addr: '/ip4/x', extra: 1 }), 400, 'GOTO_ERR_BAD_REQUEST', /extra/],
      [JSON.stringify({ addr: 'nonsense' }), 400, 'GOTO_ERR_INVALID_MULTIADDR', /not a multiaddr/],
      [JSON.stringify({ addr: '/ip4/127.0.0.1/udp/1' }), 400, 'GOTO_ERR_INVALID_MULTIADDR', /tcp/],
      [JSON.stringify({ addr: '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWOther' }), 502, 'GOTO_ERR_DIAL', /cannot join/]
    ]
    for (const [body, status, code, detail] of cases) {
      const res = await post(body)
      assert.equal(res.status, status, body)
      const problem = await json(res)
      assert.equal(problem.code, code, body)
      assert.match(problem.detail, detail)
      assert.equal(problem.status, status)
    }
    assert.equal(agent.joined.length, 1)
  })

  it('accepts a leave, answers first, then leaves', async () => {
    const agent = stubAgent()
    let stopped = false
    const app = createApp({ agent, token: TOKEN, onLeave: () => { stopped = true } })
    const res = await app.request('/v1/mesh/leave', { method: 'POST', headers: auth })
    assert.equal(res.status, 202)
    assert.equal(agent.left, 0)
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(agent.left, 1)
    assert.equal(stopped, true)
  })

  it('answers unknown routes with 404 problem+json', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const res = await app.request('/v1/nowhere', { headers: auth })
    assert.equal(res.status, 404)
    assert.equal((await json(res)).code, 'GOTO_ERR_NOT_FOUND')
  })

  it('starts migrations, sync and async, and says exactly what is wrong with a bad request', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const post = async (path: string, body: string): Promise<Response> => await app.request(path, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })
    const sync = await post('/v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1' }))
    assert.equal(sync.status, 200)
    assert.equal((await json(sync)).phase, 'activated')
    const background = await post('/v1/migrations', JSON.stringify({ container: 'web-1', target: 'host1', async: true }))
    assert.equal(background.status, 202)
    assert.equal((await json(background)).id, record.id)
    const cases: Array<[string, number, string, RegExp]> = [
      ['{}', 400, 'GOTO_ERR_BAD_REQUEST', /body\.container/],
      [JSON.stringify({ container: 'web-1' }), 400, 'GOTO_ERR_BAD_REQUEST', /body\.target/],
      [JSON.stringify({ container: 'web-1', target: 'h', consistency: 'maybe' }), 400, 'GOTO_ERR_BAD_REQUEST', /body\.consistency/],
      [JSON.stringify({ container: 'web-1', target: 'h', name: '../x' }), 400, 'GOTO_ERR_BAD_REQUEST', /body\.name/],
      [JSON.stringify({ container: 'web-1', target: 'h', stopTimeout: -1 }), 400, 'GOTO_ERR_BAD_REQUEST', /body\.stopTimeout/],
      [JSON.stringify({ container: 'nope', target: 'h' }), 404, 'GOTO_ERR_UNKNOWN_CONTAINER', /no container "nope"/]
    ]
    for (const [body, status, code, detail] of cases) {
      const res = await post('/v1/migrations', body)
      assert.equal(res.status, status, body)
      const problem = await json(res)
      assert.equal(problem.code, code, body)
      assert.match(problem.detail, detail)
    }
  })

  it('lists and reads migrations; 404 and 400 on unknown or malformed ids', async () => {
    const app = createApp({ agent: stubAgent(), token: TOKEN })
    const get = async (path: string): Promise<Response> => await app.request(path, { headers: auth })
    assert.equal((await json(await get('/v1/migrations'))).migrations.length, 1)
    assert.equal((await json(await get(`/v1/migrations/${record.id}`))).id, record.id)
    const missing = await get('/v1/migrations/01a21b22-3118-716a-9b46-000000000000')
    assert.equal(missing.status, 404)
    assert.equal((await json(missing)).code, 'GOTO_ERR_UNKNOWN_MIGRATION')
    const malformed = await get('/v1/migrations/42')
    assert.equal(malformed.status, 400)
    assert.match((await json(malformed)).detail, /not a migration id/)
    assert.equal((await app.request('/v1/migrations')).status, 401)
    assert.equal((await app.request(`/v1/migrations/${record.id}/rollback`, { method: 'POST' })).status, 401)
  })
})
