/**
 * The distribution's own validators, run on what the deploy tools write:
 * `cloud-init schema` for user data, `systemd-analyze verify` for the unit,
 * `vagrant validate` for the Vagrantfile. scripts/setup.sh installs them, so a
 * missing one fails the test that needs it.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import assert from 'node:assert/strict'

export interface Output {
  code: number
  stdout: string
  stderr: string
}

/** Run a validator; ENOENT (not installed) is a failure that says what to do. */
export async function validator (file: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<Output> {
  return await new Promise((resolve, reject) => {
    execFile(file, args, { ...options, timeout: 120_000 }, (err: any, stdout, stderr) => {
      if (err?.code === 'ENOENT') {
        reject(new assert.AssertionError({ message: `${file} is not installed: run "bash scripts/setup.sh" (it installs the validators)` }))
        return
      }
      resolve({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** `cloud-init schema` on one user-data document, written to `dir`. */
export async function cloudInitSchema (dir: string, userData: string): Promise<Output> {
  const file = join(dir, `user-data-${Date.now()}-${Math.random().toString(16).slice(2)}.yaml`)
  await writeFile(file, userData)
  return await validator('cloud-init', ['schema', '--config-file', file])
}

export async function assertValidCloudConfig (dir: string, userData: string): Promise<void> {
  const out = await cloudInitSchema(dir, userData)
  assert.equal(out.code, 0, `cloud-init schema: ${out.stdout}${out.stderr}`)
  assert.match(out.stdout, /Valid cloud-config/)
}
