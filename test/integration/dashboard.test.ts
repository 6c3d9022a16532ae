/**
 * The dashboard in Debian's Chromium, driven by playwright-core, against a
 * 3-agent mesh on real Docker engines: signed in by the link of
 * `goto-node dashboard`, it shows the 3 nodes; a migration started from the
 * page runs to 100% with its phases live; its entries appear in the log view;
 * a rollback from the page brings the container back. Then `goto-node watch`
 * and `go-to` on a second migration. Leaves docs/dashboard.png behind.
 */
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { OPERATIONS } from '../../api/openapi.ts'
import { cli, GO_TO_ENTRY, REPO, type AgentProc, type CliResult } from '../harness/agent.ts'
import { BASE_IMAGE, startCluster, until, type Cluster } from '../harness/cluster.ts'

/** Headless and off the network: no background, component, sync or QUIC traffic (see the machine notes). */
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

const goTo = async (agent: AgentProc, args: string[]): Promise<CliResult> => await cli([...args, '--api', agent.api, '--data-dir', agent.dataDir], { entry: GO_TO_ENTRY })

async function runContainer (cluster: Cluster, name: string, volume: string): Promise<void> {
  const engine = cluster.engines[0]!
  await engine.docker(['run', '-d', '--network', 'none', '--name', name, '-v', `${volume}:/data`, BASE_IMAGE, 'sh', '-c', 'head -c 3000000 /dev/urandom > /data/blob && exec sleep 100000'])
  await until(async () => (await cluster.agents[0]!.call('GET', `/v1/containers?match=^${name}$`)).body.containers.length === 1, 10_000, `${name} in the inventory`)
}

describe('the dashboard in a browser', { timeout: 300_000 }, () => {
  let cluster: Cluster
  let context: BrowserContext
  let page: Page
  let migrationId: string

  before(async () => {
    cluster = await startCluster({ hosts: 3, label: 'dashboard' })
    await until(async () => (await cluster.agents[0]!.call('GET', '/v1/peers')).body.peers.filter((p: any) => p.status === 'alive').length === 2, 15_000, 'the mesh of 3')
    await runContainer(cluster, 'web-1', 'web-1-data')
    const profile = join(cluster.root, 'chromium-profile')
    mkdirSync(profile)
    context = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 960 } })
    page = context.pages()[0] ?? await context.newPage()
  })
  after(async () => {
    await context?.close()
    await cluster?.stop()
  })

  it('signs in by the link, forgets the token from the address bar, and shows the 3 nodes', async () => {
    const res = await cluster.agents[0]!.cli(['dashboard'])
    assert.equal(res.code, 0, res.stderr)
    const link = /dashboard of host0: (\S+)/.exec(res.stdout)?.[1] ?? ''
    await page.goto(link)
    await page.locator('#nodes .node').nth(2).waitFor()
    assert.equal(await page.locator('#nodes .node').count(), 3)
    assert.doesNotMatch(page.url(), /token/)
    assert.deepEqual(await page.locator('#nodes .node .name').allTextContents(), ['host0', 'host1', 'host2'])
    assert.deepEqual(await page.locator('#nodes .node .badge').allTextContents(), ['this node', 'alive', 'alive'])
    assert.equal(await page.locator('#nodes meter').count(), 9)
    await page.locator('table.containers[data-node="host0"] td', { hasText: 'web-1' }).waitFor()
    await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 5000 })
  })

  it('without the link, asks for the token, refuses a wrong one and signs in with the right one', async () => {
    const [host0] = cluster.agents as [AgentProc]
    const tab = await context.newPage()
    await tab.goto(`${host0.api}/ui/`)
    await tab.locator('#login').waitFor()
    assert.equal(await tab.locator('#main').isHidden(), true)
    await tab.fill('#login-token', 'not-the-token')
    await tab.click('#login-form button')
    await tab.locator('#login p', { hasText: 'Sign in again: that token is not this agent\'s.' }).waitFor()
    await tab.fill('#login-token', host0.token)
    await tab.click('#login-form button')
    await tab.locator('#nodes .node').nth(2).waitFor()
    await tab.close()
  })

  it('starts a migration from the page and shows its progress, phase by phase, to 100%', async () => {
    // record every phase the row shows, to see it live (the page re-reads everything only every 5 s)
    // (browser code as text: the tests compile without the DOM's types)
    await page.evaluate(`
      window.phasesSeen = []
      new MutationObserver(() => {
        const phase = document.querySelector('#migrations tr[data-role="source"] .phase')?.textContent
        if (phase != null && window.phasesSeen.at(-1) !== phase) window.phasesSeen.push(phase)
      }).observe(document.querySelector('#migrations'), { subtree: true, childList: true, characterData: true })
    `)
    await page.selectOption('#migrate-container', 'web-1')
    await page.selectOption('#migrate-target', { label: 'host1' })
    await page.click('#migrate-start')
    const row = page.locator('#migrations tr[data-role="source"]')
    await row.locator('.phase', { hasText: 'activated' }).waitFor({ timeout: 60_000 })
    assert.equal(await row.locator('.pct').textContent(), '100%')
    assert.equal(await row.locator('progress').getAttribute('value'), '100')
    migrationId = await row.getAttribute('data-id') ?? ''
    const seen = await page.evaluate('window.phasesSeen') as string[]
    assert.equal(seen.at(-1), 'activated')
    assert.ok(seen.length >= 3, `phases seen live: ${seen.join(', ')}`)
    assert.deepEqual(await row.locator('.phases span').allTextContents(), ['planned', 'offered', 'frozen', 'transferring', 'prepared', 'committed', 'activated'])
    assert.match(await cluster.engines[1]!.docker(['ps', '--format', '{{.Names}}']), /^web-1$/m)
  })

  it('shows the migration\'s entries, from both sides, in the log view', async () => {
    await page.fill('#log-since', '10m')
    await page.fill('#log-kind', 'migration')
    const short = migrationId.slice(0, 8)
    await until(async () => {
      await page.click('#log-form button[type="submit"]')
      await page.waitForTimeout(300)
      const nodes = await page.locator(`#log tr[data-kind="migration.activated"] td:nth-child(2)`).allTextContents()
      return nodes.includes('host0') && nodes.includes('host1')
    }, 20_000, 'both sides\' migration.activated in the log view')
    assert.ok(await page.locator('#log tr[data-kind="migration.planned"] td', { hasText: short }).count() >= 1)
    await page.screenshot({ path: join(REPO, 'docs', 'dashboard.png'), fullPage: true })
  })

  it('rolls the migration back from the page', async () => {
    const row = page.locator(`#migrations tr[data-id="${migrationId}"][data-role="source"]`)
    await row.locator('button', { hasText: 'Roll back' }).click()
    await row.locator('.phase', { hasText: 'rolled-back' }).waitFor({ timeout: 30_000 })
    assert.match(await cluster.engines[0]!.docker(['ps', '--format', '{{.Names}}']), /^web-1$/m)
    assert.doesNotMatch(await cluster.engines[1]!.docker(['ps', '-a', '--format', '{{.Names}}']), /^web-1$/m)
  })

  it('goto-node watch follows a migration that go-to started; migrations, migration and peers show it; go-to lists, shows the log and rolls back; metrics count it all', async () => {
    const [host0] = cluster.agents as [AgentProc]
    await runContainer(cluster, 'web-2', 'web-2-data')
    const started = await goTo(host0, ['migrate', '-async', '-s', 'web-2', '-t', 'web-2b', cluster.ip(2)])
    assert.equal(started.code, 0, started.stderr)
    const id = started.stdout.trim()
    assert.match(id, /^[0-9a-f-]{36}$/)
    const watched = await host0.cli(['watch', id])
    assert.equal(watched.code, 0, watched.stderr)
    assert.match(watched.stdout, /^activated\s+\[#{24}\] 100%/m)
    const json = (await host0.cli(['watch', id, '--json'])).stdout.trim().split('\n').map(line => JSON.parse(line))
    assert.equal(json.at(-1).phase, 'activated')
    const listed = JSON.parse((await goTo(host0, ['list-containers', '^web-2b$', '--json'])).stdout)
    assert.deepEqual(listed.map((c: any) => c.node), ['host2'])
    const human = await goTo(host0, ['list-containers', '^web-2b$'])
    assert.match(human.stdout, /^host2\s+web-2b\s+\S+\s+running/m)
    const log = await goTo(host0, ['show-log', '-s', '10m', '-t', '0s'])
    assert.match(log.stdout, new RegExp(`migration\\.activated\\s+${id}`))
    const table = await host0.cli(['migrations'])
    assert.match(table.stdout, /^ID\s+ROLE\s+CONTAINER\s+FROM\s+TO\s+PHASE/)
    assert.match(table.stdout, new RegExp(`^${id}\\s+source\\s+web-2\\s+host0\\s+host2\\s+activated`, 'm'))
    assert.ok(JSON.parse((await host0.cli(['migrations', '--json'])).stdout).some((m: any) => m.id === id && m.phase === 'activated'))
    const one = await host0.cli(['migration', id])
    assert.match(one.stdout, /^phase\s+activated$/m)
    assert.match(one.stdout, /^ {2}\S+ {2}transferring {2}\(\+\d+ ms\)$/m)
    assert.equal(JSON.parse((await host0.cli(['migration', id, '--json'])).stdout).name, 'web-2b')
    const peers = await host0.cli(['peers'])
    assert.match(peers.stdout, /^host1\s+12D3KooW\S+\s+alive\s+active/m)
    assert.deepEqual(JSON.parse((await host0.cli(['peers', '--json'])).stdout).map((p: any) => p.name), ['host1', 'host2'])
    const back = await goTo(host0, ['rollback', id])
    assert.equal(back.code, 0, back.stderr)
    assert.match(back.stdout, /rolled back: web-2 runs again on host0/)
    // the inventory follows Docker's events a moment later
    const { value: text } = await until(async () => {
      const metrics = await (await fetch(`${host0.api}/metrics`, { headers: { authorization: `Bearer ${host0.token}` } })).text()
      return /^goto_containers\{node="host0",state="running"\} 2$/m.test(metrics) && metrics
    }, 5000, 'both containers back in the metrics')
    assert.match(text, /^goto_peers\{status="alive"\} 2$/m)
    assert.match(text, /^goto_migrations\{role="source",phase="rolled-back"\} 2$/m)
  })

  it('answers as its OpenAPI document says, on real agents of both sides of a migration', async () => {
    for (const agent of cluster.agents.slice(0, 3)) {
      const { migrations } = (await agent.call('GET', '/v1/migrations')).body
      const paths = ['/v1/node', '/v1/peers', '/v1/containers', '/v1/migrations', '/v1/log?since=1h', '/v1/log/verify', ...migrations.map((m: { id: string }) => `/v1/migrations/${m.id}`)]
      for (const path of paths) {
        const route = path.replace(/\?.*$/, '').replace(/[0-9a-f-]{36}$/, ':id')
        const op = OPERATIONS.find(o => o.method === 'get' && o.path === route)
        assert.ok(op?.schema != null, route)
        const parsed = op.schema.safeParse((await agent.call('GET', path)).body)
        assert.ok(parsed.success, `${agent.name} ${path}: ${parsed.error?.message ?? ''}`)
      }
    }
  })

  it('leaves no token in any agent\'s log, whatever the page and the CLI did', () => {
    for (const agent of cluster.agents) assert.ok(!agent.log().includes(agent.token), `${agent.name}'s log holds its token`)
  })
})
