import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RateLimiter } from '../../node/rate-limit.ts'
import { createApp, type ApiAgent } from '../../api/app.ts'

describe('rate limits', () => {
  it('a bucket per key: the burst at once, then the rate, and a retry time', () => {
    let now = 0
    const limiter = new RateLimiter({ rate: 2, burst: 3, now: () => now })
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false])
    assert.equal(limiter.retryAfter('a'), 1)
    assert.equal(limiter.take('b'), true, 'another key has its own bucket')
    now += 500
    assert.equal(limiter.take('a'), true, 'half a second at 2/s refills one')
    assert.equal(limiter.take('a'), false)
    now += 60_000
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false], 'never more than the burst')
  })

  it('holds at most maxKeys buckets, dropping the least recently used', () => {
    const limiter = new RateLimiter({ rate: 1, burst: 1, maxKeys: 2, now: () => 0 })
    assert.equal(limiter.take('a'), true)
    assert.equal(limiter.take('b'), true)
    assert.equal(limiter.take('a'), false)
    assert.equal(limiter.take('c'), true) // drops b, the least recently used
    assert.equal(limiter.take('a'), false, 'a was used last, so it was kept, empty')
    assert.equal(limiter.take('b'), true, 'b was dropped and starts afresh')
  })

  it('the API answers 429 problem+json with Retry-After beyond its limit, before the token is checked', async () => {
    const agent = { peerId: 'p', info: () => ({}) } as unknown as ApiAgent
    const app = createApp({ agent, token: 'test-token-0123456789abcdef', rateLimit: { rate: 1, burst: 3 } })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await app.request('/v1/node', { headers: { authorization: 'Bearer wrong' } })).status)
    assert.deepEqual(statuses, [401, 401, 401, 429])
    const res = await app.request('/healthz')
    assert.equal(res.status, 429)
    assert.equal(res.headers.get('content-type'), 'application/problem+json')
    assert.equal(res.headers.get('retry-after'), '1')
    assert.equal((await res.json() as { code: string }).code, 'GOTO_ERR_RATE_LIMITED')
  })
})
