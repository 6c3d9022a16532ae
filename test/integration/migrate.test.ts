import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'
import type { Engine } from '../harness/engine.ts'

/** Owners, modes, types, link targets and content hashes of everything under the given paths. */
async function fingerprint (engine: Engine, container: string, paths: string[]): Promise<string> {
  const script = paths.map(p => `cd ${p} && find . | sort | while read f; do if [ -L "$f" ]; then echo "${p} $f $(stat -c '%a %u:%g %F' "$f") -> $(readlink "$f")"; elif [ -f "$f" ]; then echo "${p} $f $(stat -c '%a %u:%g %F' "$f") $(md5sum < "$f")"; else echo "${p} $f $(stat -c '%a %u:%g %F' "$f")"; fi; done`).join('; ')
  return await engine.docker(['exec', container, 'sh', '-c', script])
}

const FIELDS = (i: any): unknown => ({
  env: i.Config.Env,
  cmd: i.Config.Cmd,
  entrypoint: i.Config.Entrypoint,
  labels: i.Config.Labels,
  workdir: i.Config.WorkingDir,
  user: i.Config.User,
  hostname: i.Config.Hostname,
  exposed: i.Config.ExposedPorts,
  healthcheck: i.Config.Healthcheck,
  ports: i.HostConfig.PortBindings,
  restart: i.HostConfig.RestartPolicy,
  memory: i.HostConfig.Memory,
  nanoCpus: i.HostConfig.NanoCpus,
  mounts: (i.Mounts as any[]).map(m => ({ type: m.Type, name: m.Name, destination: m.Destination, rw: m.RW })).sort((a, b) => a.destination.localeCompare(b.destination))
})

describe('migrating a container with its config and volumes', { timeout: 600_000 }, () => {
  let cluster: Cluster
  let before_: any
  let files: string
  let migrationId: string

  before(async () => {
    cluster = await startCluster({ hosts: 2, label: 'migrate' })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.some((p: any) => p.status === 'alive'), 10_000, 'the mesh')
    const e0 = cluster.engines[0]!
    await e0.docker(['volume', 'create', 'app-data'])
    await e0.docker(['run', '-d', '--network', 'none', '--name', 'web-1',
      '--env', 'GREETING=hello world', '--env', 'MODE=prod',
      '--label', 'app=web', '--label', 'tier=front',
      '--workdir', '/srv', '--user', '0:0', '--hostname', 'web-one',
      '--publish', '18080:80/tcp', '--restart', 'unless-stopped',
      '--memory', '64m', '--cpus', '0.5',
      '--health-cmd', 'test -f /srv/ready', '--health-interval', '1s', '--health-retries', '3',
      '-v', 'app-data:/data', '-v', '/cache',
      BASE_IMAGE, 'sh', '-c', 'mkdir -p /srv && touch /srv/ready && exec sleep 100000'])
    await e0.docker(['exec', 'web-1', 'sh', '-c', [
      'mkdir -p /data/conf /data/empty /cache/tmp',
      'echo "listen 80" > /data/conf/site.conf',
      'head -c 200000 /dev/urandom > /data/blob.bin',
      'chown 1000:1000 /data/conf/site.conf && chmod 640 /data/conf/site.conf',
      'chmod 1777 /data/empty && chown 65534:65534 /data/empty',
      'ln -s conf/site.conf /data/current.conf',
      'echo cached > /cache/tmp/entry && chmod 600 /cache/tmp/entry',
      'echo "written in the layer" > /srv/state.txt'
    ].join(' && ')])
    before_ = JSON.parse(await e0.docker(['inspect', 'web-1']))[0]
    files = await fingerprint(e0, 'web-1', ['/data', '/cache', '/srv'])
  })
  after(async () => { await cluster?.stop() })

  it('a dry run moves nothing and reports the bytes', async () => {
    const res = await cluster.agents[0]!.cli(['migrate', '--dry-run', '-s', 'web-1', 'host1'])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /dry run: host1 admits web-1; about [\d.]+ (KiB|MiB) would cross/)
    assert.equal(await cluster.engines[1]!.docker(['ps', '-aq']), '')
    assert.equal(await cluster.engines[1]!.docker(['volume', 'ls', '-q']), '')
    assert.equal(JSON.parse(await cluster.engines[0]!.docker(['inspect', 'web-1']))[0].State.Status, 'running')
  })

  it('moves it: the target agrees on every field, every volume file, and it runs', async () => {
    const res = await cluster.agents[0]!.cli(['migrate', '-s', 'web-1', cluster.agents[1]!.ip])
    assert.equal(res.code, 0, res.stderr + res.stdout)
    const id = /migration\s+([0-9a-f-]{36})/.exec(res.stdout)?.[1]
    assert.ok(id, res.stdout)
    migrationId = id
    assert.match(res.stdout, /downtime\s+\d+ ms/)

    const e1 = cluster.engines[1]!
    const moved = JSON.parse(await e1.docker(['inspect', 'web-1']))[0]
    assert.deepEqual(FIELDS(moved), FIELDS(before_))
    assert.equal(moved.State.Running, true)
    await until(async () => JSON.parse(await e1.docker(['inspect', 'web-1']))[0].State.Health?.Status === 'healthy', 20_000, 'healthy on the target')
    assert.equal(await fingerprint(e1, 'web-1', ['/data', '/cache', '/srv']), files)

    // the source keeps its original, stopped, as the rollback point
    const e0 = cluster.engines[0]!
    const kept = JSON.parse(await e0.docker(['ps', '-a', '--format', '{{json .}}', '--filter', 'name=web-1']).then(out => `[${out.split('\n').join(',')}]`))
    assert.equal(kept.length, 1)
    assert.match(kept[0].Names, /^web-1-goto-rollback-/)
    assert.match(kept[0].State, /exited/)
    assert.equal(JSON.parse(await e0.docker(['inspect', kept[0].Names]))[0].HostConfig.RestartPolicy.Name, 'no')

    const shown = await cluster.agents[0]!.cli(['migration', id, '--json'])
    const record = JSON.parse(shown.stdout)
    assert.equal(record.phase, 'activated')
    assert.deepEqual(record.phases.map((p: any) => p.phase), ['planned', 'offered', 'frozen', 'transferring', 'prepared', 'committed', 'activated'])
    assert.ok(record.transfer.movedBytes > 200_000, JSON.stringify(record.transfer))
    assert.equal(record.bytes.moved, record.bytes.total)
    const list = JSON.parse((await cluster.agents[1]!.cli(['migrations', '--json'])).stdout)
    assert.equal(list[0].id, id)
    assert.equal(list[0].role, 'target')
    assert.equal(list[0].phase, 'activated')
  })

  it('rolls back: the target\'s copy is gone and the original runs under its name', async () => {
    const res = await cluster.agents[0]!.cli(['rollback', migrationId])
    assert.equal(res.code, 0, res.stderr)
    assert.equal(await cluster.engines[1]!.docker(['ps', '-aq']), '')
    const back = JSON.parse(await cluster.engines[0]!.docker(['inspect', 'web-1']))[0]
    assert.equal(back.State.Running, true)
    assert.equal(back.HostConfig.RestartPolicy.Name, 'unless-stopped')
    assert.equal(await fingerprint(cluster.engines[0]!, 'web-1', ['/data', '/cache', '/srv']), files)
  })
})
