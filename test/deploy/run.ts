/**
 * Runs one of the deploy tools as a person would, in a child process with an
 * environment of the test's making (no credentials of this machine leak in),
 * and the checks every deploy test shares.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'

export const ROOT = new URL('../../', import.meta.url).pathname

export interface Ran {
  code: number
  stdout: string
  stderr: string
}

/** `node <script> ...args` from the repo root, with only PATH, HOME and `env`. */
export async function runTool (script: string, args: string[], env: Record<string, string>, cwd: string): Promise<Ran> {
  return await new Promise(resolve => {
    execFile(process.execPath, [join(ROOT, script), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      timeout: 60_000
    }, (err, stdout, stderr) => {
      resolve({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** A command that failed the way the tools promise: this exit code, one line on stderr with this code. */
export function assertFailed (ran: Ran, exit: number, code: string, message: RegExp): void {
  assert.equal(ran.code, exit, `exit code (stderr: ${ran.stderr})`)
  const lines = ran.stderr.trim().split('\n')
  assert.match(lines[0] ?? '', new RegExp(`: ${code}: `))
  assert.match(lines[0] ?? '', message)
  if (exit === 1) assert.equal(lines.length, 1, `one line: ${ran.stderr}`)
}

export async function tempDir (name: string): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `goto-${name}-`))
  return { path, remove: async () => { await rm(path, { recursive: true, force: true }) } }
}
