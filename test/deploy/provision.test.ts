/**
 * deploy/provision.sh in a fresh Debian 12 made by debootstrap, as it runs on
 * a new host, with what it installs given as files (`--offline`): the agent
 * bundle that `npm run deploy:bundle` makes and this Node.js. The root runs
 * in a chroot inside its own network, PID and mount namespaces, so the agents
 * reach nothing but each other on loopback and end with the test.
 *
 * The root is made once and cached in /var/cache/goto-debootstrap (debootstrap
 * from Debian's mirror: a minute or two); each run works on a copy.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, tempDir } from './run.ts'
import { validator } from './validators.ts'

const run = promisify(execFile)

const CACHE = '/var/cache/goto-debootstrap'
const ROOTFS = join(CACHE, 'bookworm')
const MIRROR = 'http://deb.debian.org/debian'
const SWARM_KEY = `/key/swarm/psk/1.0.0/\n/base16/\n${'c0ffee'.repeat(10)}abcd\n`

/** The cached minimal bookworm root, made first when missing. */
async function debianRoot (): Promise<string> {
  if (existsSync(join(ROOTFS, 'etc/debian_version'))) return ROOTFS
  await mkdir(CACHE, { recursive: true })
  const partial = `${ROOTFS}.${process.pid}`
  const made = await validator('debootstrap', ['--variant=minbase', 'bookworm', partial, MIRROR])
  assert.equal(made.code, 0, `debootstrap failed:\n${made.stdout.slice(-2000)}${made.stderr.slice(-2000)}`)
  await rename(partial, ROOTFS).catch(async () => { await rm(partial, { recursive: true, force: true }) }) // another run made it first
  return ROOTFS
}

/** What runs in the namespaces: provision, check as the operator, provision again, and a second agent joining by address. */
function session (root: string): string {
  const chroot = `chroot ${root} env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`
  const provision = `${chroot} /bin/bash /tmp/goto-in/provision.sh --offline --agent-bundle /tmp/goto-in/agent.tar.gz --node-dist /tmp/goto-in/node --swarm-key /tmp/goto-in/swarm.key --name chroot-1 --listen /ip4/127.0.0.1/tcp/4001 --docker-host none --operator tester`
  const asTester = (cmd: string): string => `chroot ${root} runuser -l tester -c '${cmd}'`
  return `set -eu
ip link set lo up
mount -t proc proc ${root}/proc
${chroot} useradd --create-home tester
echo "== provision"
${provision}
echo "== status"
${asTester('goto-node status --json')}
echo "== files"
${chroot} stat -c '%n %U %a' /var/lib/goto /var/lib/goto/api.token /var/lib/goto/swarm.key /var/lib/goto/identity.key /home/tester/.local/share/goto/api.token /usr/local/bin/goto-node
${chroot} cat /etc/default/goto-node
${chroot} /bin/sh /tmp/goto-in/agents.sh
echo "== again"
${provision}
echo "== join"
${chroot} goto-node init --data-dir /root/second --swarm-key /var/lib/goto/swarm.key > /dev/null
${chroot} setsid goto-node start --data-dir /root/second --name chroot-2 --listen /ip4/127.0.0.1/tcp/4002 --api 127.0.0.1:7072 --docker-host none --bootstrap /ip4/127.0.0.1/tcp/4001 > ${root}/root/second.log 2>&1 &
for i in $(seq 1 40); do
  if ${asTester('goto-node peers --json')} | grep -q '"status": "alive"'; then break; fi
  sleep 0.5
done
echo "== peers"
${asTester('goto-node peers --json')}
`
}

/** Each running agent's user and command line (a minimal root has no ps). */
const AGENTS_SH = `for d in /proc/[0-9]*; do
  c="$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)" || continue
  case "$c" in *goto-node.js\\ start*) echo "$(stat -c %U "$d") $c" ;; esac
done
`

function section (output: string, name: string): string {
  return output.split(`== ${name}\n`)[1]?.split('\n== ')[0] ?? ''
}

describe('deploy/provision.sh in a debootstrapped Debian 12', { timeout: 15 * 60_000 }, () => {
  let dir: { path: string, remove: () => Promise<void> }
  let output = ''

  before(async () => {
    dir = await tempDir('provision')
    const base = await debianRoot()
    const { stdout: bundle } = await run('bash', [join(ROOT, 'deploy/bundle.sh'), join(dir.path, 'out')], { cwd: ROOT, timeout: 300_000 })
    const root = join(dir.path, 'root')
    await run('cp', ['-a', base, root])
    const inputs = join(root, 'tmp/goto-in')
    await mkdir(join(inputs, 'node/bin'), { recursive: true })
    await copyFile(bundle.trim(), join(inputs, 'agent.tar.gz'))
    await copyFile(process.execPath, join(inputs, 'node/bin/node'))
    await copyFile(join(ROOT, 'deploy/provision.sh'), join(inputs, 'provision.sh'))
    await writeFile(join(inputs, 'swarm.key'), SWARM_KEY, { mode: 0o600 })
    await writeFile(join(inputs, 'agents.sh'), AGENTS_SH)
    const ran = await validator('unshare', ['--net', '--pid', '--fork', '--mount', '--kill-child', 'bash', '-c', session(root)], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }
    })
    output = ran.stdout
    assert.equal(ran.code, 0, `the session failed:\n${ran.stdout}\n${ran.stderr}`)
  })
  after(async () => { await dir.remove() })

  it('installs Node.js and the agent offline, and starts the agent: it answers on its API', () => {
    const provision = section(output, 'provision')
    assert.match(provision, /offline: apt skipped/)
    assert.match(provision, /node v\d+\.\d+\.\d+ in \/opt\/goto\/node/)
    assert.match(provision, /goto-node \d+\.\d+\.\d+ in \/opt\/goto\/agent/)
    assert.match(provision, /systemd is not running here: starting the agent as a background process/)
    assert.match(provision, /the agent answers on 127\.0\.0\.1:7070/)
    const status = JSON.parse(section(output, 'status'))
    assert.equal(status.name, 'chroot-1')
    assert.equal(status.state, 'active')
    assert.match(status.peerId, /^12D3KooW/)
  })

  it('runs the agent as its own user, secrets 0600, settings where the unit reads them, a token for the operator', () => {
    const files = section(output, 'files')
    assert.match(files, /^\/var\/lib\/goto goto 700$/m)
    for (const secret of ['api.token', 'swarm.key', 'identity.key']) assert.match(files, new RegExp(`^/var/lib/goto/${secret} goto 600$`, 'm'))
    assert.match(files, /^\/home\/tester\/\.local\/share\/goto\/api\.token tester 600$/m)
    assert.match(files, /^GOTO_NAME=chroot-1$/m)
    assert.match(files, /^GOTO_DOCKER_HOST=none$/m)
    assert.match(files, /^goto \/opt\/goto\/node\/bin\/node \/opt\/goto\/agent\/bin\/goto-node\.js start $/m, 'the agent runs as goto, not root')
  })

  it('is safe to run again: the identity stays, the agent comes back', () => {
    const again = section(output, 'again')
    assert.match(again, /\/var\/lib\/goto already initialised; identity kept/)
    assert.match(again, /the agent answers on 127\.0\.0\.1:7070/)
    assert.ok(again.includes(JSON.parse(section(output, 'status')).peerId), 'the same peer id')
  })

  it('forms a mesh: a second agent joins through the first one\'s address alone, as the Vagrant VMs do', () => {
    const peers = JSON.parse(section(output, 'peers'))
    assert.deepEqual(peers.map((p: { name: string, status: string }) => [p.name, p.status]), [['chroot-2', 'alive']])
  })
})

describe('deploy/provision.sh usage', () => {
  it('exits 2 with one line for a bad option, a missing value or a missing bundle', async () => {
    for (const [args, message] of [[['--bogus'], /unknown option --bogus/], [['--name'], /--name needs a value/], [['--name', 'x'], /--agent-bundle is required/]] as const) {
      const ran = await validator('bash', [join(ROOT, 'deploy/provision.sh'), ...args])
      assert.equal(ran.code, 2, ran.stderr)
      assert.match(ran.stderr, message)
      assert.equal(ran.stderr.trim().split('\n').length, 1)
    }
  })
})
