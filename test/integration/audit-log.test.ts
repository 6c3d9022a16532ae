import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import { startCluster, until, type Cluster } from '../harness/cluster.ts'
import { startRawPeer, type RawPeer } from '../harness/raw-peer.ts'
import { LOG_SYNC_PROTOCOL, MAX_FRAME_BYTES, decodeLogMessage, encodeLogMessage, type SignedEntry } from '../../protocols/log-sync/index.ts'
import { entryHash } from '../../node/audit/log.ts'
import type { AgentProc } from '../harness/agent.ts'

async function heads (agent: AgentProc): Promise<Record<string, number>> {
  const { body } = await agent.call('GET', '/v1/log/verify')
  return Object.fromEntries((body.origins as any[]).map(o => [o.origin, o.head]))
}

async function act (agent: AgentProc, peer: AgentProc): Promise<void> {
  // a join through an already connected peer: harmless, and it writes an api.request entry first
  const res = await agent.call('POST', '/v1/mesh/join', { addr: peer.addr })
  assert.equal(res.status, 200, JSON.stringify(res.body))
}

describe('the audit log is replicated, checked and shown mesh-wide', { timeout: 300_000 }, () => {
  let cluster: Cluster
  let raw: RawPeer | undefined

  before(async () => {
    cluster = await startCluster({ hosts: 4, engines: false, label: 'audit', config: { logSyncMs: 1000 } })
    await until(async () => {
      const views = await Promise.all(cluster.agents.map(async a => (await a.call('GET', '/v1/peers')).body.peers as any[]))
      return views.every(v => v.filter(p => p.status === 'alive').length === 3)
    }, 15_000, 'the mesh')
  })
  after(async () => {
    await raw?.stop()
    await cluster?.stop()
  })

  it('an entry written on any node is on all within 2 s', async () => {
    for (const writer of cluster.agents) {
      const before = (await heads(writer))[writer.peerId] ?? 0
      await act(writer, cluster.agents[(writer.index + 1) % 4]!)
      const { ms } = await until(async () => {
        const all = await Promise.all(cluster.agents.map(heads))
        return all.every(h => (h[writer.peerId] ?? 0) > before)
      }, 2000, `${writer.name}'s entry everywhere`, 20)
      assert.ok(ms <= 2000)
    }
    const res = await cluster.agents[0]!.cli(['show-log', '--kind', 'api', '-s', '5m'])
    assert.equal(res.code, 0, res.stderr)
    for (const name of ['host0', 'host1', 'host2', 'host3']) assert.match(res.stdout, new RegExp(`${name}\\s+#\\d+\\s+api\\.request`))
    // who asked: the CLI says which user it runs as
    const viaCli = await cluster.agents[0]!.cli(['join', cluster.agents[1]!.addr])
    assert.equal(viaCli.code, 0, viaCli.stderr)
    const { body } = await cluster.agents[0]!.call('GET', `/v1/log?node=${cluster.agents[0]!.peerId}&kind=api.request`)
    assert.match((body.entries as any[]).at(-1).actor, /^[\w.-]+@[\w.-]+$/)
  })

  it('a node stopped for a while catches up on all it missed when it restarts', async () => {
    const sleeper = cluster.agents[3]!
    assert.equal(await sleeper.stop(), 0)
    for (let i = 0; i < 5; i++) await act(cluster.agents[i % 3]!, cluster.agents[(i + 1) % 3]!)
    const expected = await heads(cluster.agents[0]!)
    await until(async () => ((await cluster.agents[0]!.call('GET', `/v1/log?kind=node.left&node=${sleeper.peerId}`)).body.entries as any[]).length > 0, 5000, 'the leave to reach host0')
    cluster.agents[3] = await sleeper.restart()
    await until(async () => {
      const got = await heads(cluster.agents[3]!)
      return Object.entries(expected).every(([origin, seq]) => (got[origin] ?? 0) >= seq)
    }, 10_000, 'the restarted node to catch up')
  })

  it('a node that joins late receives the whole history, and every copy verifies', async () => {
    const late = await cluster.addHost()
    const expected = await heads(cluster.agents[0]!)
    await until(async () => {
      const got = await heads(late)
      return Object.entries(expected).every(([origin, seq]) => origin === late.peerId || (got[origin] ?? 0) >= seq)
    }, 10_000, 'the late node to receive everything')
    await until(async () => ((await cluster.agents[0]!.call('GET', `/v1/log?kind=node.joined&node=${late.peerId}`)).body.entries as any[]).length > 0, 5000, 'the join to reach host0')
    const res = await late.cli(['log', 'verify'])
    assert.equal(res.code, 0, res.stdout + res.stderr)
    assert.match(res.stdout, /every chain holds/)
    const json = JSON.parse((await late.cli(['show-log', '--json'])).stdout.split('\n').filter(Boolean).map((l: string) => l).join(',').replace(/^/, '[').replace(/$/, ']'))
    assert.ok(json.length >= Object.values(expected).reduce((a, b) => a + b, 0))
  })

  it('forged, altered and reordered entries from a peer are refused and reported', async () => {
    const victim = cluster.agents[1]!
    raw = await startRawPeer(victim, cluster.ip(9))
    // real, signed entries to tamper with, taken the way any member can
    const stream = await raw.node.dialProtocol((await import('@multiformats/multiaddr')).multiaddr(victim.addr), LOG_SYNC_PROTOCOL)
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    await lp.write(encodeLogMessage({ type: 'want', vector: {} }))
    const real: SignedEntry[] = []
    const m = decodeLogMessage((await lp.read()).subarray())
    if (m.type === 'entries') real.push(...m.entries)
    await stream.close()
    const victimsOwn = real.map(s => ({ s, e: JSON.parse(s.text) })).filter(x => x.e.origin === victim.peerId)
    const last = victimsOwn.at(-1)!
    const sign = async (text: string): Promise<string> => Buffer.from(await raw!.privateKey.sign(new TextEncoder().encode(text))).toString('base64url')
    const nextSeq = last.e.seq + 1
    // forged: the victim's next entry, signed by the raw peer
    const forgedText = JSON.stringify({ origin: victim.peerId, seq: nextSeq, time: new Date().toISOString(), prev: entryHash(last.s.text), kind: 'forged.claim' })
    // altered: the raw peer's own first entry, one byte changed after signing
    const ownText = JSON.stringify({ origin: raw.peerId, seq: 1, time: new Date().toISOString(), prev: '0'.repeat(64), kind: 'raw.hello' })
    const ownSig = await sign(ownText)
    // reordered: the raw peer's entry 2 whose prev is not entry 1
    const skipText = JSON.stringify({ origin: raw.peerId, seq: 2, time: new Date().toISOString(), prev: 'f'.repeat(64), kind: 'raw.skip' })
    const bad: SignedEntry[] = [
      { text: forgedText, signature: await sign(forgedText) },
      { text: ownText.replace('raw.hello', 'raw.hellp'), signature: ownSig },
      { text: ownText, signature: ownSig },
      { text: skipText, signature: await sign(skipText) }
    ]
    await raw.node.handle(LOG_SYNC_PROTOCOL, async (s) => {
      const l = lpStream(s, { maxDataLength: MAX_FRAME_BYTES })
      await l.read()
      await l.write(encodeLogMessage({ type: 'entries', entries: bad }))
      await s.close()
    })
    // connecting makes the victim pull from us
    await raw.introduce(victim)
    await until(async () => {
      const { body } = await victim.call('GET', '/v1/log?kind=security.bad-log-entry')
      return (body.entries as any[]).length >= 3
    }, 10_000, 'the refusals to be recorded')
    const { body } = await victim.call('GET', '/v1/log?kind=security.bad-log-entry')
    const reasons = (body.entries as any[]).map(e => `${e.details.seq}:${e.details.reason}`).join(' | ')
    // the victim may have written its own entry at that sequence meanwhile: then the forgery is a conflict
    assert.match(reasons, new RegExp(`${nextSeq}:(the signature does not hold|conflicts with the entry held)`), 'forged')
    assert.match(reasons, /1:the signature does not hold/, 'altered')
    assert.match(reasons, /2:its previous-entry hash does not match/, 'reordered')
    const verify = (await victim.call('GET', '/v1/log/verify')).body
    assert.ok(verify.refused >= 3)
    assert.equal(verify.ok, true, 'nothing bad was stored')
    const forgedStored = (await victim.call('GET', '/v1/log?kind=forged.claim')).body.entries as any[]
    assert.equal(forgedStored.length, 0)
  })

  it('an entry deleted from a node\'s store shows up in log verify as a gap', async () => {
    const agent = cluster.agents[2]!
    const origin = cluster.agents[0]!.peerId
    assert.equal(await agent.stop(), 0)
    const { Level } = await import('level')
    const { join } = await import('node:path')
    const db = new Level<string, unknown>(join(agent.dataDir, 'db'), { valueEncoding: 'json' })
    await db.open()
    await db.sublevel('audit').del(`${origin}!${(2).toString(16).padStart(16, '0')}`)
    await db.close()
    cluster.agents[2] = await agent.restart()
    const res = await cluster.agents[2]!.cli(['log', 'verify'])
    assert.equal(res.code, 1)
    assert.match(res.stdout, new RegExp(`${origin}\\s+\\d+\\s+\\d+\\s+2\\s`), res.stderr)
    assert.match(res.stdout, /gaps or breaks/)
  })
})
