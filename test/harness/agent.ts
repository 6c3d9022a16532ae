/**
 * One agent process (`bin/goto-node.js start`) on its own loopback address,
 * as a real host would have its own IP. Its data dir is made with
 * `goto-node init`, exactly as an operator would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(REPO, 'bin', 'goto-node.js')
/**
 * The CLI's entry in the sources: tests run what is in the tree, never a
 * stale build. Benchmarks that measure memory set GOTO_HARNESS_ENTRY=dist to
 * run the build, as hosts do (type stripping costs some 30 MB of its own).
 */
export const ENTRY = process.env.GOTO_HARNESS_ENTRY === 'dist' ? BIN : join(REPO, 'node', 'cli', 'index.ts')
/** The `go-to` command's entry in the sources. */
export const GO_TO_ENTRY = join(REPO, 'node', 'cli', 'go-to-index.ts')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Run the CLI (goto-node, or the `entry` given) as a user would; never throws on a non-zero exit. */
export async function cli (args: string[], options: { env?: NodeJS.ProcessEnv, timeout?: number, entry?: string } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [options.entry ?? ENTRY, ...args], {
      env: { ...process.env, ...options.env },
      timeout: options.timeout ?? 60_000
    })
    return { code: 0, stdout, stderr }
  } catch (err: any) {
    if (typeof err.code !== 'number') throw err
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}

export interface AgentProcInit {
  root: string
  index: number
  ip: string
  /** Engine socket URL, or 'none'. */
  dockerHost: string
  /** Swarm key file to join; without it `init` makes a new mesh. */
  swarmKeyFile?: string
  bootstrap?: string[]
  name?: string
  env?: NodeJS.ProcessEnv
  /** Extra keys for the agent's config.json. */
  config?: Record<string, unknown>
}

export interface AgentProc {
  index: number
  name: string
  ip: string
  dataDir: string
  api: string
  token: string
  peerId: string
  /** The mesh multiaddr, with /p2p/. */
  addr: string
  swarmKeyFile: string
  proc: ChildProcess
  logFile: string
  /** Run a client command against this agent. */
  cli(args: string[]): Promise<CliResult>
  /** Call this agent's API with its token. */
  call<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number, body: T }>
  kill(signal?: NodeJS.Signals): void
  /** SIGTERM and wait for the exit; resolves to the exit code. */
  stop(): Promise<number | null>
  exited(): Promise<number | null>
  /** Start the same data dir again (after stop or kill), without bootstrap flags; `env` replaces the extra environment. */
  restart(env?: NodeJS.ProcessEnv): Promise<AgentProc>
  log(): string
}

export async function initAgent (init: AgentProcInit): Promise<{ dataDir: string, swarmKeyFile: string }> {
  const dataDir = join(init.root, `agent${init.index}`)
  const args = ['init', '--data-dir', dataDir]
  if (init.swarmKeyFile != null) args.push('--swarm-key', init.swarmKeyFile)
  const res = await cli(args)
  if (res.code !== 0) throw new Error(`goto-node init failed: ${res.stderr}`)
  if (init.config != null) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify(init.config, null, 2))
  }
  return { dataDir, swarmKeyFile: join(dataDir, 'swarm.key') }
}

export async function startAgent (init: AgentProcInit, dataDirIn?: string): Promise<AgentProc> {
  const { dataDir, swarmKeyFile } = dataDirIn != null ? { dataDir: dataDirIn, swarmKeyFile: join(dataDirIn, 'swarm.key') } : await initAgent(init)
  mkdirSync(dataDir, { recursive: true })
  const name = init.name ?? `host${init.index}`
  const apiHost = `${init.ip}:7070`
  const args = [ENTRY, 'start', '--data-dir', dataDir, '--name', name, '--listen', `/ip4/${init.ip}/tcp/0`, '--api', apiHost, '--docker-host', init.dockerHost]
  for (const b of init.bootstrap ?? []) args.push('--bootstrap', b)
  const logFile = join(init.root, `agent${init.index}.log`)
  const out = openSync(logFile, 'a')
  const proc = spawn(process.execPath, args, { stdio: ['ignore', out, out], env: { ...process.env, GOTO_LOG_LEVEL: 'debug', ...init.env } })
  const exitPromise = new Promise<number | null>(resolve => {
    if (proc.exitCode != null) resolve(proc.exitCode)
    proc.once('exit', (code) => { resolve(code) })
  })
  const token = readFileSync(join(dataDir, 'api.token'), 'utf8').trim()
  const api = `http://${apiHost}`

  const deadline = Date.now() + 30_000
  let node: any
  while (Date.now() < deadline && proc.exitCode == null) {
    try {
      const res = await fetch(`${api}/v1/node`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1000) })
      if (res.ok) {
        node = await res.json()
        break
      }
    } catch {}
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  if (node == null) {
    proc.kill('SIGKILL')
    throw new Error(`agent ${init.index} did not start:\n${readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')}`)
  }

  const agent: AgentProc = {
    index: init.index,
    name,
    ip: init.ip,
    dataDir,
    api,
    token,
    peerId: node.peerId,
    addr: node.addrs[0],
    swarmKeyFile,
    proc,
    logFile,
    cli: async (cmdArgs) => await cli([...cmdArgs, '--api', api, '--data-dir', dataDir]),
    async call (method, path, body) {
      const res = await fetch(api + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000)
      })
      const text = await res.text()
      return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
    },
    kill (signal = 'SIGKILL') { proc.kill(signal) },
    async stop () {
      if (proc.exitCode == null && proc.signalCode == null) proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      const code = await exitPromise
      clearTimeout(timer)
      return code
    },
    exited: async () => await exitPromise,
    async restart (env) {
      return await startAgent({ ...init, bootstrap: [], env: env ?? init.env }, dataDir)
    },
    log: () => readFileSync(logFile, 'utf8')
  }
  return agent
}
