/**
 * deploy/provision.sh in a fresh Debian 12 made by debootstrap, as it runs on
 * a new host, with what it installs given as files (`--offline`): the agent
 * bundle that `npm run deploy:bundle` makes and this Node.js. Twice:
 *
 * - in a chroot inside its own network, PID and mount namespaces, where no
 *   systemd runs: the agent as a background process, a rerun, a second agent
 *   joining the first;
 * - booted with systemd in systemd-nspawn (a private network: loopback only),
 *   given a test dockerd's socket as /run/docker.sock: the hardened unit
 *   installed, enabled and running the agent, which reaches Docker from inside
 *   its sandbox; the sandbox seen from the agent's /proc entry; a clean stop.
 *
 * The root (minbase plus systemd) is made once and cached in
 * /var/cache/goto-debootstrap (debootstrap from Debian's mirror: about a
 * minute); each run works on a copy.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, chown, copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, tempDir } from './run.ts'
import { validator } from './validators.ts'
import { startEngine, type Engine } from '../harness/engine.ts'

const run = promisify(execFile)

const CACHE = '/var/cache/goto-debootstrap'
const ROOTFS = join(CACHE, 'bookworm-systemd')
const MIRROR = 'http://deb.debian.org/debian'
/** The docker group's id inside the booted root, and the test engine socket's group. */
const DOCKER_GID = 2375
const SWARM_KEY = `/key/swarm/psk/1.0.0/\n/base16/\n${'c0ffee'.repeat(10)}abcd\n`

/** The cached minimal bookworm root with systemd, made first when missing. */
async function debianRoot (): Promise<string> {
  if (existsSync(join(ROOTFS, 'etc/debian_version'))) return ROOTFS
  await mkdir(CACHE, { recursive: true })
  const partial = `${ROOTFS}.${process.pid}`
  const made = await validator('debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus', 'bookworm', partial, MIRROR])
  assert.equal(made.code, 0, `debootstrap failed:\n${made.stdout.slice(-2000)}${made.stderr.slice(-2000)}`)
  await rename(partial, ROOTFS).catch(async () => { await rm(partial, { recursive: true, force: true }) }) // another run made it first
  return ROOTFS
}

/** What runs in the namespaces: provision, check as the operator, provision again, and a second agent joining by address. */
function session (root: string): string {
  const chroot = `chroot ${root} env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`
  const provision = `${chroot} /bin/bash /root/goto-in/provision.sh --offline --agent-bundle /root/goto-in/agent.tar.gz --node-dist /root/goto-in/node --swarm-key /root/goto-in/swarm.key --name chroot-1 --listen /ip4/127.0.0.1/tcp/4001 --docker-host none --operator tester --no-systemd`
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
${chroot} /bin/sh /root/goto-in/agents.sh
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

interface Prepared {
  dir: string
  base: string
  bundle: string
}

let preparing: Promise<Prepared> | undefined
let workDir: { path: string, remove: () => Promise<void> } | undefined

/** Once per file: the cached root and a fresh agent bundle of this checkout. */
async function prepared (): Promise<Prepared> {
  preparing ??= (async () => {
    workDir = await tempDir('provision')
    const base = await debianRoot()
    const { stdout } = await run('bash', [join(ROOT, 'deploy/bundle.sh'), join(workDir.path, 'out')], { cwd: ROOT, timeout: 300_000 })
    return { dir: workDir.path, base, bundle: stdout.trim() }
  })()
  return await preparing
}

/** A copy of the root with provision.sh and its inputs in /root/goto-in (nspawn mounts a tmpfs on /tmp). */
async function newRoot (name: string): Promise<string> {
  const { dir, base, bundle } = await prepared()
  const root = join(dir, name)
  await run('cp', ['-a', base, root])
  const inputs = join(root, 'root/goto-in')
  await mkdir(join(inputs, 'node/bin'), { recursive: true })
  await copyFile(bundle, join(inputs, 'agent.tar.gz'))
  await copyFile(process.execPath, join(inputs, 'node/bin/node'))
  await copyFile(join(ROOT, 'deploy/provision.sh'), join(inputs, 'provision.sh'))
  await writeFile(join(inputs, 'swarm.key'), SWARM_KEY, { mode: 0o600 })
  await writeFile(join(inputs, 'agents.sh'), AGENTS_SH)
  return root
}

after(async () => { await workDir?.remove() })

describe('deploy/provision.sh in a chroot of a debootstrapped Debian 12', { timeout: 15 * 60_000 }, () => {
  let output = ''

  before(async () => {
    const root = await newRoot('chroot')
    const ran = await validator('unshare', ['--net', '--pid', '--fork', '--mount', '--kill-child', 'bash', '-c', session(root)], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }
    })
    output = ran.stdout
    assert.equal(ran.code, 0, `the session failed:\n${ran.stdout}\n${ran.stderr}`)
  })

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

/** What the booted root runs as a oneshot unit, then powers off. */
function systemdSession (dockerGid: number): string {
  return `set -u
# the engine's socket is bound in from outside: its group is this host's docker group
groupadd --system --gid ${dockerGid} docker
echo "== provision"
bash /root/goto-in/provision.sh --offline --agent-bundle /root/goto-in/agent.tar.gz --node-dist /root/goto-in/node \\
  --swarm-key /root/goto-in/swarm.key --name nspawn-1 && echo "provisioned"
echo "== unit"
systemctl show -p User -p ActiveState -p UnitFileState -p FragmentPath goto-node
echo "== sandbox"
pid="$(systemctl show -p MainPID --value goto-node)"
grep -E '^(NoNewPrivs|Seccomp|CapEff):' "/proc/$pid/status"
awk '$5 == "/" || $5 == "/home" || $5 == "/var/lib/goto" { print $5, substr($6, 1, 2) }' "/proc/$pid/mountinfo"
echo "== status"
GOTO_DATA_DIR=/var/lib/goto goto-node status --json
echo "== stop"
systemctl stop goto-node
systemctl show -p ActiveState -p Result goto-node
journalctl -u goto-node --no-pager -o cat
echo "== end"
`
}

const TEST_UNIT = `[Unit]
Description=Go-To provisioning test

[Service]
Type=oneshot
ExecStart=/bin/bash /root/goto-in/systemd-session.sh
StandardOutput=file:/root/goto-out.txt
StandardError=inherit
TimeoutStartSec=150
ExecStopPost=/bin/systemctl poweroff

[Install]
WantedBy=multi-user.target
`

describe('deploy/provision.sh on a debootstrapped Debian 12 booted with systemd (systemd-nspawn)', { timeout: 15 * 60_000 }, () => {
  let output = ''
  let engine: Engine | undefined

  before(async () => {
    const root = await newRoot('nspawn')
    // a Docker engine of the test's own, its socket given to the booted root as /run/docker.sock
    engine = await startEngine({ root: join((await prepared()).dir, 'engines'), index: 1, baseImage: false })
    await chown(engine.socket, 0, DOCKER_GID)
    await chmod(engine.socket, 0o660)
    await writeFile(join(root, 'root/goto-in/systemd-session.sh'), systemdSession(DOCKER_GID))
    await writeFile(join(root, 'etc/systemd/system/goto-test.service'), TEST_UNIT)
    await symlink('/etc/systemd/system/goto-test.service', join(root, 'etc/systemd/system/multi-user.target.wants/goto-test.service'))
    const booted = await validator('systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--private-network', `--bind=${engine.socket}:/run/docker.sock`, '--boot', '--directory', root], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }
    })
    output = await readFile(join(root, 'root/goto-out.txt'), 'utf8').catch(() => '')
    assert.match(output, /== end\n/, `the booted session did not finish:\n${output}\n${booted.stdout.slice(-3000)}${booted.stderr}`)
  })
  after(async () => { await engine?.stop() })

  it('installs the unit, enables it, and systemd runs the agent as goto, reaching Docker through the socket', () => {
    assert.match(section(output, 'provision'), /the agent answers on 127\.0\.0\.1:7070\n[\s\S]*provisioned$/)
    assert.doesNotMatch(section(output, 'provision'), /starting the agent as a background process/)
    const unit = section(output, 'unit')
    assert.match(unit, /^User=goto$/m)
    assert.match(unit, /^ActiveState=active$/m)
    assert.match(unit, /^UnitFileState=enabled$/m)
    assert.match(unit, /^FragmentPath=\/etc\/systemd\/system\/goto-node\.service$/m)
    const status = JSON.parse(section(output, 'status'))
    assert.equal(status.name, 'nspawn-1')
    assert.match(status.runtime, /^docker \S+ at unix:\/\/\/var\/run\/docker\.sock$/, 'the sandbox leaves the Docker socket reachable')
  })

  it('runs the agent in the sandbox the unit asks for', () => {
    const sandbox = section(output, 'sandbox')
    assert.match(sandbox, /^NoNewPrivs:\s+1$/m)
    assert.match(sandbox, /^Seccomp:\s+2$/m, 'a system call filter')
    assert.match(sandbox, /^CapEff:\s+0+$/m, 'no capabilities')
    assert.match(sandbox, /^\/ ro$/m, 'a read-only system')
    assert.match(sandbox, /^\/home ro$/m, 'no home directories')
    assert.match(sandbox, /^\/var\/lib\/goto rw$/m, 'its data dir writable')
  })

  it('stops cleanly: the agent leaves the mesh on SIGTERM', () => {
    const stop = section(output, 'stop')
    assert.match(stop, /^ActiveState=inactive$/m)
    assert.match(stop, /^Result=success$/m)
    assert.match(stop, /leaving the mesh reason=SIGTERM/)
    assert.match(stop, /agent stopped/)
  })
})
