import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'

const ROOT = new URL('../../', import.meta.url)
/** A reference in the table: `test/…/x.test.ts` — "the test's name". */
const REFERENCE = /`(test\/[\w./-]+\.test\.ts)` — "([^"]+)"/g

/** The rows of the document's tables that hold a test column: the threats and the original's mistakes. */
function rows (doc: string): string[] {
  return doc.split('\n').filter(line => /^\| (?:[STRIDE]\d+ \||SSH|password|one IAM)/.test(line))
}

/** The names a test file gives its tests, with the quotes its source escapes unescaped. */
function testNames (source: string): Set<string> {
  const names = new Set<string>()
  for (const m of source.matchAll(/\bit\('((?:[^'\\]|\\.)*)'/g)) names.add(m[1]!.replace(/\\(.)/g, '$1'))
  return names
}

describe('the threat model', () => {
  it('names, for every threat row, tests that exist under those names, or says why it has none', async () => {
    const doc = await readFile(new URL('docs/THREAT_MODEL.md', ROOT), 'utf8')
    const table = rows(doc)
    assert.ok(table.length >= 25, `only ${table.length} rows found`)
    const ids = table.map(r => r.split('|')[1]!.trim()).filter(id => /^[STRIDE]\d+$/.test(id))
    assert.equal(new Set(ids).size, ids.length, 'a threat id twice')
    for (const letter of 'STRIDE') assert.ok(ids.some(id => id.startsWith(letter)), `no ${letter} threat`)
    const sources = new Map<string, Set<string>>()
    for (const row of table) {
      const refs = [...row.matchAll(REFERENCE)]
      const last = row.split('|').at(-2)!.trim()
      assert.ok(refs.length > 0 || last.startsWith('untested'), `a row with neither a test nor a reason: ${row.slice(0, 80)}`)
      for (const [, file, name] of refs) {
        if (!sources.has(file!)) sources.set(file!, testNames(await readFile(new URL(file!, ROOT), 'utf8')))
        assert.ok(sources.get(file!)!.has(name!), `${file} has no test "${name}"`)
      }
    }
  })
})
