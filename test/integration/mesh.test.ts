import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'

interface Peer { peerId: string, name: string, status: string }
interface Container { name: string, node: string, state: string }

describe('a mesh of 4 agents on 4 Docker engines', { timeout: 300_000 }, () => {
  let cluster: Cluster

  before(async () => {
    cluster = await startCluster({ hosts: 4, label: 'mesh' })
  })
  after(async () => { await cluster?.stop() })

  const peersOf = async (i: number): Promise<Peer[]> => (await cluster.agents[i]!.call('GET', '/v1/peers')).body.peers

  it('each agent lists the other three as alive', async () => {
    for (const [i, agent] of cluster.agents.entries()) {
      let last: Peer[] = []
      await until(async () => {
        last = await peersOf(i)
        return last.filter(p => p.status === 'alive').length === 3
      }, 10_000, `agent ${i} to see 3 peers`).catch((err: Error) => {
        throw new Error(`${err.message}; it sees ${JSON.stringify(last.map(p => `${p.name}:${p.status}`))}`)
      })
      const res = await agent.cli(['peers', '--json'])
      assert.equal(res.code, 0, res.stderr)
      const peers: Peer[] = JSON.parse(res.stdout)
      assert.deepEqual(peers.map(p => p.name).sort(), ['host0', 'host1', 'host2', 'host3'].filter(n => n !== agent.name))
      assert.ok(peers.every(p => p.peerId !== agent.peerId))
      const human = await agent.cli(['peers'])
      assert.equal(human.code, 0)
      assert.match(human.stdout, /^NAME\s+PEER ID\s+STATUS/)
      for (const other of cluster.agents.filter(a => a !== agent)) assert.ok(human.stdout.includes(other.peerId))
    }
  })

  it('a container created on host 3 is in host 1\'s list-containers within 2 s', async () => {
    await cluster.engines[2]!.docker(['run', '-d', '--network', 'none', '--name', 'web-1', BASE_IMAGE, 'sleep', '3600'])
    const { ms } = await until(async () => {
      const { body } = await cluster.agents[0]!.call('GET', '/v1/containers')
      return (body.containers as Container[]).some(c => c.name === 'web-1' && c.node === 'host2' && c.state === 'running')
    }, 2000, 'web-1 to reach host0', 20)
    assert.ok(ms <= 2000)
    const res = await cluster.agents[0]!.cli(['list-containers'])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /host2\s+web-1\s+goto\/busybox(:latest)?\s+running/)
  })

  it('list-containers filters by regexp, in tables and in JSON', async () => {
    await cluster.engines[1]!.docker(['run', '-d', '--network', 'none', '--name', 'web-2', BASE_IMAGE, 'sleep', '3600'])
    await cluster.engines[3]!.docker(['create', '--network', 'none', '--name', 'db-1', BASE_IMAGE, 'sleep', '3600'])
    await until(async () => {
      const { body } = await cluster.agents[0]!.call('GET', '/v1/containers')
      const names = (body.containers as Container[]).map(c => c.name)
      return names.includes('web-2') && names.includes('db-1')
    }, 5000, 'web-2 and db-1 to reach host0')
    const json = await cluster.agents[0]!.cli(['list-containers', '^web-', '--json'])
    assert.equal(json.code, 0, json.stderr)
    const listed: Container[] = JSON.parse(json.stdout)
    assert.deepEqual(listed.map(c => `${c.node}/${c.name}`).sort(), ['host1/web-2', 'host2/web-1'])
    const human = await cluster.agents[0]!.cli(['list-containers', '^db-'])
    assert.equal(human.code, 0)
    assert.match(human.stdout, /host3\s+db-1\s+\S+\s+created/)
    assert.doesNotMatch(human.stdout, /web-/)
    const bad = await cluster.agents[0]!.cli(['list-containers', '(unclosed'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /GOTO_ERR_INVALID_PATTERN/)
  })

  it('an agent that leaves is shown as left at once, never as failed', async () => {
    const leaving = cluster.agents[1]!
    const seen = new Set<string>()
    const res = await leaving.cli(['leave'])
    assert.equal(res.code, 0, res.stderr)
    const { ms } = await until(async () => {
      const statuses = await Promise.all([0, 2, 3].map(async i => (await peersOf(i)).find(p => p.peerId === leaving.peerId)?.status))
      for (const s of statuses) seen.add(String(s))
      return statuses.every(s => s === 'left')
    }, 2000, 'the leave to be seen', 10)
    assert.ok(ms < 2000)
    assert.equal(await leaving.exited(), 0)
    // and it stays left: no suspicion, no failure, after the connection is gone
    await new Promise(resolve => setTimeout(resolve, 1500))
    for (const i of [0, 2, 3]) assert.equal((await peersOf(i)).find(p => p.peerId === leaving.peerId)?.status, 'left')
    assert.ok(!seen.has('gone') && !seen.has('suspect'), `saw ${[...seen].join(',')}`)
    // its containers leave the mesh-wide list with it
    const { body } = await cluster.agents[0]!.call('GET', '/v1/containers?match=web-2')
    assert.equal(body.containers.length, 0)
  })

  it('an agent killed with SIGKILL is marked gone by the others within 10 s', async () => {
    const victim = cluster.agents[3]!
    victim.kill('SIGKILL')
    await victim.exited()
    const { ms } = await until(async () => {
      const statuses = await Promise.all([0, 2].map(async i => (await peersOf(i)).find(p => p.peerId === victim.peerId)?.status))
      return statuses.every(s => s === 'gone')
    }, 10_000, 'the crash to be seen', 50)
    assert.ok(ms < 10_000)
  })

  it('a restarted agent keeps its peer id and rejoins without bootstrap flags', async () => {
    const before = cluster.agents[3]!
    const again = await before.restart()
    cluster.agents[3] = again
    assert.equal(again.peerId, before.peerId)
    assert.doesNotMatch(again.proc.spawnargs.join(' '), /--bootstrap/)
    await until(async () => {
      const statuses = await Promise.all([0, 2].map(async i => (await peersOf(i)).find(p => p.peerId === again.peerId)?.status))
      return statuses.every(s => s === 'alive')
    }, 10_000, 'the restarted agent to be alive everywhere')
    const { body } = await again.call('GET', '/v1/peers')
    assert.deepEqual((body.peers as Peer[]).filter(p => p.status === 'alive').map(p => p.name).sort(), ['host0', 'host2'])
  })
})
