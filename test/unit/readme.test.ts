/**
 * The README's API and CLI tables against the code: every route the API
 * documents, every field of a migration request, every goto-node command and
 * every go-to usage line appears there, so the README cannot fall behind.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { OPERATIONS } from '../../api/openapi.ts'
import { MigrateBody } from '../../api/schemas.ts'
import { GO_TO } from '../../node/cli/go-to.ts'
import { commands } from '../../node/cli/main.ts'

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
/** The rows of the README's tables. */
const TABLES = README.split('\n').filter(line => line.startsWith('| `')).join('\n')
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe('README', () => {
  it('lists every API route (the dashboard as /ui/)', () => {
    for (const op of OPERATIONS.filter(o => !o.path.startsWith('/ui') || o.path === '/ui/')) {
      assert.ok(new RegExp(`\`${op.method.toUpperCase()} ${escape(op.path)}[ ?\`]`).test(TABLES), `${op.method} ${op.path}`)
    }
  })

  it('names every field of a migration request', () => {
    const row = TABLES.split('\n').find(line => line.startsWith('| `POST /v1/migrations {')) ?? ''
    for (const field of Object.keys(MigrateBody.shape)) assert.ok(row.includes(`"${field}"`), field)
  })

  it('has a row for every goto-node command, and every go-to usage', () => {
    for (const name of Object.keys(commands)) assert.ok(new RegExp(`\`${escape(name)}[ \`]`).test(TABLES), name)
    for (const command of Object.values(GO_TO.commands)) {
      const usage = command.usage.replace(/ \[--json\]$/, '').replace(/^go-to /, '')
      assert.ok(README.includes(`go-to ${usage}`), usage)
    }
  })
})
