/**
 * What the deploy tools hand to cloud-init, systemd and Vagrant passes those
 * tools' own validators: `cloud-init schema`, `systemd-analyze verify` (and
 * `systemd-analyze security` for the hardening), `vagrant validate`. Each also
 * rejects a broken input here, so a pass means it looked.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderUserData } from '../../deploy/lib/user-data.ts'
import { ROOT, tempDir } from './run.ts'
import { assertValidCloudConfig, cloudInitSchema, validator } from './validators.ts'

const SWARM_KEY = `/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}\n`

describe('deploy validators', () => {
  let dir: { path: string, remove: () => Promise<void> }
  before(async () => { dir = await tempDir('validators') })
  after(async () => { await dir.remove() })

  it('cloud-init schema: the user data is valid cloud-config, whatever the names; a broken document is not', async () => {
    const userData = renderUserData({
      agentBundleUrl: 'https://downloads.example/goto-node-0.1.0-bundle.tar.gz',
      swarmKey: SWARM_KEY,
      name: 'odd "name": [with] {yaml} #chars',
      bootstrap: ['/ip4/10.1.0.4/tcp/4001', '/ip4/10.1.0.5/tcp/4001'],
      operator: 'ubuntu'
    })
    await assertValidCloudConfig(dir.path, userData)
    const broken = await cloudInitSchema(dir.path, userData.replace('runcmd:', 'runcmd: 7\nbogus:'))
    assert.notEqual(broken.code, 0, 'cloud-init schema rejects a runcmd that is not a list')
  })

  it('the user data carries provision.sh byte for byte and is under EC2\'s 16 KiB', async () => {
    const userData = renderUserData({ agentBundleUrl: 'https://x.example/b.tar.gz', swarmKey: SWARM_KEY, name: 'n', bootstrap: [], operator: 'ubuntu' })
    const script = await readFile(join(ROOT, 'deploy/provision.sh'), 'utf8')
    const block = userData.split('    content: |\n')[1]?.split('\nruncmd:')[0] ?? ''
    assert.equal(block.split('\n').map(l => l.slice(6)).join('\n') + '\n', script)
    assert.ok(Buffer.byteLength(userData) < 16 * 1024)
    assert.throws(() => renderUserData({ agentBundleUrl: 'http://x.example/b.tar.gz', swarmKey: SWARM_KEY, name: 'n', bootstrap: [], operator: 'ubuntu' }), { code: 'GOTO_ERR_AGENT_BUNDLE' })
  })

  it('systemd-analyze verify: the unit is clean as installed; its exposure score stays low', async () => {
    // an image of the installed system: systemd's own units, the unit, and the command it starts
    const root = join(dir.path, 'root')
    await mkdir(join(root, 'etc/systemd/system'), { recursive: true })
    await mkdir(join(root, 'usr/local/bin'), { recursive: true })
    await mkdir(join(root, 'usr/lib/systemd'), { recursive: true })
    await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true })
    await copyFile(join(ROOT, 'deploy/systemd/goto-node.service'), join(root, 'etc/systemd/system/goto-node.service'))
    await writeFile(join(root, 'usr/local/bin/goto-node'), '#!/bin/sh\n')
    await chmod(join(root, 'usr/local/bin/goto-node'), 0o755)

    const verify = await validator('systemd-analyze', ['verify', `--root=${root}`, 'goto-node.service'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.equal(verify.stderr.trim(), '', 'no warning either')

    const security = await validator('systemd-analyze', ['security', '--offline=true', `--root=${root}`, '--threshold=25', 'goto-node.service'])
    assert.equal(security.code, 0, `exposure above 2.5:\n${security.stdout}`)
    const score = Number(/Overall exposure level for goto-node\.service: ([\d.]+)/.exec(security.stdout)?.[1])
    assert.ok(score <= 2.5, `exposure ${score}`)

    await writeFile(join(root, 'etc/systemd/system/goto-node.service'), (await readFile(join(ROOT, 'deploy/systemd/goto-node.service'), 'utf8')).replace('ExecStart=/usr/local/bin/goto-node start', 'ExecStart=/usr/local/bin/no-such-agent start'))
    const broken = await validator('systemd-analyze', ['verify', `--root=${root}`, 'goto-node.service'])
    assert.notEqual(broken.code, 0, 'verify notices a command that is not there')
  })

  it('vagrant validate: the Vagrantfile is valid, its libvirt block included; broken ones are not', async () => {
    const home = join(dir.path, 'vagrant-home')
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path, VAGRANT_HOME: home, VAGRANT_CHECKPOINT_DISABLE: '1' }
    const libvirt = { ...env, VAGRANT_DEFAULT_PROVIDER: 'libvirt' }
    // every block but the providers'
    const ok = await validator('vagrant', ['validate', '--ignore-provider'], { cwd: join(ROOT, 'vagrant'), env })
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /Vagrantfile validated successfully/)
    // and the libvirt provider's, through Debian's vagrant-libvirt (VirtualBox is not in Debian: its block goes unchecked)
    const withLibvirt = await validator('vagrant', ['validate'], { cwd: join(ROOT, 'vagrant'), env: libvirt })
    assert.equal(withLibvirt.code, 0, withLibvirt.stdout + withLibvirt.stderr)

    const broken = join(dir.path, 'broken')
    await mkdir(broken)
    await writeFile(join(broken, 'Vagrantfile'), 'Vagrant.configure("2") do |c|\n  c.vm.box = "debian/bookworm64"\n  c.vm.provision "shell", path: "no-such-script.sh"\nend\n')
    const bad = await validator('vagrant', ['validate', '--ignore-provider'], { cwd: broken, env })
    assert.notEqual(bad.code, 0, 'vagrant validate notices a provisioning script that is not there')
    await writeFile(join(broken, 'Vagrantfile'), 'Vagrant.configure("2") do |c|\n  c.vm.box = "debian/bookworm64"\n  c.vm.provider :libvirt do |lv|\n    lv.memroy = 2048\n  end\nend\n')
    const typo = await validator('vagrant', ['validate'], { cwd: broken, env: libvirt })
    assert.notEqual(typo.code, 0, 'the libvirt block is checked')
    assert.match(typo.stdout + typo.stderr, /memroy/)
  })
})
