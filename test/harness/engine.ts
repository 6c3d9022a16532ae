/**
 * One simulated host's Docker Engine: its own dockerd with its own data root,
 * exec root, socket and pidfile, bridge and iptables off (test containers run
 * with --network none), and a small base image made with `docker import` from
 * Debian's busybox-static.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createReadStream, existsSync, mkdirSync, readFileSync, symlinkSync, copyFileSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const BASE_IMAGE = 'goto/busybox:latest'
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find(p => existsSync(p)) ?? '/bin/busybox'

export interface Engine {
  index: number
  dir: string
  socket: string
  /** `unix:///…/docker.sock`, as agents take it. */
  host: string
  /** Run the docker CLI against this engine; resolves to trimmed stdout. */
  docker(args: string[], options?: { input?: string, timeout?: number }): Promise<string>
  stop(): Promise<void>
}

export interface EngineInit {
  root: string
  index: number
  /** Put the data root here instead of under the engine's folder (e.g. a small tmpfs). */
  dataRoot?: string
  /** Import the busybox base image. @default true */
  baseImage?: boolean
}

const tars = new Map<string, Promise<string>>()

/** Build (once per root) a tar of a busybox root filesystem with every applet linked. */
export async function baseRootfsTar (root: string): Promise<string> {
  let tar = tars.get(root)
  if (tar == null) {
    tar = buildRootfsTar(root)
    tars.set(root, tar)
  }
  return await tar
}

async function buildRootfsTar (root: string): Promise<string> {
  const tar = join(root, 'busybox-rootfs.tar')
  const fs = join(root, 'busybox-rootfs')
  for (const d of ['bin', 'sbin', 'etc', 'tmp', 'var', 'root', 'proc', 'sys', 'dev', 'usr/bin', 'usr/sbin']) mkdirSync(join(fs, d), { recursive: true })
  copyFileSync(BUSYBOX, join(fs, 'bin', 'busybox'))
  const { stdout } = await run(BUSYBOX, ['--list-full'])
  for (const applet of stdout.split('\n').map(s => s.trim()).filter(Boolean)) {
    const target = join(fs, applet)
    if (applet === 'bin/busybox' || existsSync(target)) continue
    mkdirSync(join(target, '..'), { recursive: true })
    symlinkSync('/bin/busybox', target)
  }
  const { writeFileSync } = await import('node:fs')
  writeFileSync(join(fs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000:app:/tmp:/bin/sh\n')
  writeFileSync(join(fs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n')
  await run('tar', ['-C', fs, '-cf', tar, '.'])
  return tar
}

async function waitFor (check: () => Promise<boolean>, timeoutMs: number, what: string, proc?: ChildProcess, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc?.exitCode != null) break
    if (await check().catch(() => false)) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const log = logFile != null && existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : ''
  throw new Error(`${what} not ready within ${timeoutMs} ms${proc?.exitCode != null ? ` (exited with ${proc.exitCode})` : ''}\n${log}`)
}

export async function startEngine (init: EngineInit): Promise<Engine> {
  const dir = join(init.root, `engine${init.index}`)
  mkdirSync(dir, { recursive: true })
  const socket = join(dir, 'docker.sock')
  const dataRoot = init.dataRoot ?? join(dir, 'data')
  const logFile = join(dir, 'dockerd.log')
  const out = openSync(logFile, 'a')
  const proc = spawn('dockerd', [
    '--data-root', dataRoot,
    '--exec-root', join(dir, 'exec'),
    '-H', `unix://${socket}`,
    '--pidfile', join(dir, 'docker.pid'),
    '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false',
    '--storage-driver=overlay2'
  ], { stdio: ['ignore', out, out] })

  const docker = async (args: string[], options: { input?: string, timeout?: number } = {}): Promise<string> => {
    const child = execFile('docker', ['-H', `unix://${socket}`, ...args], { timeout: options.timeout ?? 60_000, maxBuffer: 64 * 1024 * 1024 })
    if (options.input != null) child.stdin?.end(options.input)
    else child.stdin?.end()
    return await new Promise((resolve, reject) => {
      let stdout = ''
      let stderr = ''
      child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
      child.on('error', reject)
      child.on('close', (code) => {
        if (code === 0) resolve(stdout.trim())
        else reject(new Error(`docker ${args.join(' ')} failed (${String(code)}): ${stderr.trim()}`))
      })
    })
  }

  try {
    await waitFor(async () => { await docker(['info', '--format', '{{.ServerVersion}}'], { timeout: 5000 }); return true }, 60_000, `dockerd ${init.index}`, proc, logFile)
    if (init.baseImage !== false) {
      const tar = await baseRootfsTar(init.root)
      await new Promise<void>((resolve, reject) => {
        const child = spawn('docker', ['-H', `unix://${socket}`, 'import', '-c', 'CMD ["/bin/sh"]', '-', BASE_IMAGE], { stdio: ['pipe', 'ignore', 'pipe'] })
        let stderr = ''
        child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
        createReadStream(tar).pipe(child.stdin)
        child.on('close', code => { code === 0 ? resolve() : reject(new Error(`docker import failed: ${stderr}`)) })
      })
    }
  } catch (err) {
    proc.kill('SIGKILL')
    throw err
  }

  let stopped = false
  return {
    index: init.index,
    dir,
    socket,
    host: `unix://${socket}`,
    docker,
    async stop () {
      if (stopped) return
      stopped = true
      // containers first: dockerd then stops in a moment instead of waiting on each
      try {
        const ids = (await docker(['ps', '-aq'], { timeout: 10_000 })).split('\n').filter(Boolean)
        if (ids.length > 0) await docker(['rm', '-f', '-v', ...ids], { timeout: 30_000 })
      } catch {}
      if (proc.exitCode == null) {
        const exited = new Promise(resolve => proc.once('exit', resolve))
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
        await exited
        clearTimeout(timer)
      }
    }
  }
}
