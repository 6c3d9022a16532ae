/**
 * The Go-To dashboard: the mesh (nodes, state, capacity), containers per
 * node, migrations with live progress and phases, the audit log in a time
 * window; a migration or a rollback started from the page.
 *
 * The token arrives in the URL fragment (`/ui/#token=…`, never sent to a
 * server), is kept in sessionStorage and dropped from the address bar; every
 * call sends it as a bearer header, the events stream included (read with
 * fetch, since EventSource cannot send headers). One stream, `/v1/events`,
 * feeds peers and migrations; the rest is re-read every few seconds, as the
 * local inventory has no event of its own.
 */
const TOKEN_KEY = 'goto-token'
const REFRESH_MS = 5000
const RECONNECT_MS = 2000
const FINAL = new Set(['activated', 'aborted', 'rolled-back', 'dry-run'])

const $ = (id) => document.getElementById(id)

/** Make an element: properties (or attributes), `on…` listeners, children as nodes or text. */
function h (tag, props = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value)
    else if (key === 'class') el.className = value
    else if (key in el) el[key] = value
    else el.setAttribute(key, value)
  }
  el.append(...children.flat().filter(c => c != null && c !== false).map(c => c instanceof Node ? c : String(c)))
  return el
}

function bytes (n) {
  if (!Number.isFinite(n) || n < 0) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let unit = 0
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit++ }
  return `${unit === 0 ? n : n.toFixed(1)} ${units[unit]}`
}

const shortId = (id) => String(id ?? '').slice(0, 8)
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// ───────────────────────────── token and API ─────────────────────────────

function takeToken () {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash)
  if (match != null) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]))
    history.replaceState(null, '', location.pathname + location.search)
  }
  return sessionStorage.getItem(TOKEN_KEY)
}

class SignedOut extends Error {}

function headers () {
  return { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}` }
}

async function check (res) {
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY)
    showLogin('that token is not this agent\'s')
    throw new SignedOut('signed out')
  }
  if (!res.ok) {
    const problem = await res.json().catch(() => ({}))
    throw new Error(`${problem.code ?? `HTTP ${res.status}`}: ${problem.detail ?? res.statusText}`)
  }
  return res
}

async function api (path, options = {}) {
  const init = { method: options.method ?? 'GET', headers: headers() }
  if (options.body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(options.body)
  }
  return await (await check(await fetch(path, init))).json()
}

/** Server-Sent Events over fetch: yields `{event, data}` with the data parsed as JSON. */
async function * readEvents (path, onOpen) {
  const res = await check(await fetch(path, { headers: { ...headers(), accept: 'text/event-stream' } }))
  onOpen()
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buffer += value
    for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, cut)
      buffer = buffer.slice(cut + 2)
      let event = 'message'
      const data = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')) }
    }
  }
}

// ───────────────────────────── state ─────────────────────────────

const state = {
  node: null,
  peers: new Map(),
  containers: [],
  /** `${id}:${role}` → record */
  migrations: new Map()
}

const migrationKey = (r) => `${r.id}:${r.role}`

function nameOf (peerId) {
  if (state.node?.peerId === peerId) return state.node.name
  return state.peers.get(peerId)?.name ?? shortId(peerId)
}

async function refresh () {
  const [node, { peers }, { containers }, { migrations }] = await Promise.all([
    api('/v1/node'), api('/v1/peers'), api('/v1/containers'), api('/v1/migrations')
  ])
  state.node = node
  state.peers = new Map(peers.map(p => [p.peerId, p]))
  state.containers = containers
  state.migrations = new Map(migrations.map(r => [migrationKey(r), r]))
  render()
}

let refreshTimer
/** Re-read everything soon, once for a burst of events. */
function refreshSoon () {
  clearTimeout(refreshTimer)
  refreshTimer = setTimeout(() => { refresh().catch(showFailure) }, 300)
}

let logTimer
function logSoon () {
  clearTimeout(logTimer)
  logTimer = setTimeout(() => { loadLog().catch(() => {}) }, 500)
}

function onEvent ({ event, data }) {
  if (event === 'peer') {
    state.peers.set(data.peerId, data)
    renderMesh()
    renderForm()
    refreshSoon()
  } else if (event === 'peer-removed') {
    state.peers.delete(data.peerId)
    renderMesh()
  } else if (event === 'migration') {
    state.migrations.set(migrationKey(data), data)
    renderMigrations()
    logSoon()
    if (FINAL.has(data.phase)) refreshSoon()
  }
}

function setLive (on) {
  const badge = $('live')
  badge.textContent = on ? 'live' : 'offline'
  badge.className = `badge ${on ? 'on' : 'off'}`
}

/** Bumped at every sign-in, so the loops of an earlier one stop. */
let session = 0
let ticker

async function live (mine) {
  while (mine === session) {
    try {
      for await (const message of readEvents('/v1/events', () => { setLive(true) })) onEvent(message)
    } catch (err) {
      if (err instanceof SignedOut) return
    }
    setLive(false)
    await sleep(RECONNECT_MS)
    await refresh().catch(() => {})
  }
}

// ───────────────────────────── rendering ─────────────────────────────

function capacityRows (cap) {
  const used = (total, free) => Math.max(0, total - free)
  return [
    h('dt', {}, 'load'), h('dd', {}, h('meter', { min: 0, max: Math.max(cap.cpus, 1), high: Math.max(cap.cpus, 1) * 0.8, value: cap.load1 })), h('dd', { class: 'muted' }, `${cap.load1.toFixed(2)} / ${cap.cpus} cpus`),
    h('dt', {}, 'memory'), h('dd', {}, h('meter', { min: 0, max: cap.memTotal || 1, high: (cap.memTotal || 1) * 0.85, value: used(cap.memTotal, cap.memFree) })), h('dd', { class: 'muted' }, `${bytes(cap.memFree)} free`),
    h('dt', {}, 'disk'), h('dd', {}, h('meter', { min: 0, max: cap.diskTotal || 1, high: (cap.diskTotal || 1) * 0.85, value: used(cap.diskTotal, cap.diskFree) })), h('dd', { class: 'muted' }, `${bytes(cap.diskFree)} free`)
  ]
}

function nodeCard ({ name, peerId, status, nodeState, capacity, containers }) {
  const self = peerId === state.node?.peerId
  return h('article', { class: 'node', 'data-peer': peerId },
    h('header', {}, h('span', { class: 'name' }, name), h('span', { class: `badge ${self ? 'self' : status}` }, self ? 'this node' : status)),
    h('div', { class: 'muted mono', title: peerId }, `${shortId(peerId)}… · ${nodeState} · ${containers} containers`),
    h('dl', {}, capacityRows(capacity)))
}

function renderMesh () {
  const self = state.node
  if (self == null) return
  $('self').textContent = `${self.name} · mesh ${self.meshId} · ${self.version}`
  const cards = [nodeCard({ name: self.name, peerId: self.peerId, status: 'alive', nodeState: self.state, capacity: self.capacity, containers: self.containers })]
  for (const p of [...state.peers.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    cards.push(nodeCard({ name: p.name, peerId: p.peerId, status: p.status, nodeState: p.state, capacity: p.capacity, containers: p.containers }))
  }
  $('nodes').replaceChildren(...cards)
}

function renderContainers () {
  const byNode = new Map()
  for (const c of state.containers) byNode.set(c.node, [...(byNode.get(c.node) ?? []), c])
  const blocks = [...byNode].map(([node, list]) => [
    h('h3', {}, node),
    h('table', { class: 'containers', 'data-node': node },
      h('thead', {}, h('tr', {}, ['Name', 'Image', 'State', 'Size'].map(t => h('th', {}, t)))),
      h('tbody', {}, list.map(c => h('tr', {},
        h('td', {}, c.name), h('td', {}, c.image), h('td', {}, c.state), h('td', {}, `${bytes(c.sizeRw)} (${bytes(c.sizeRootFs)})`)))))
  ])
  $('containers').replaceChildren(...(blocks.length > 0 ? blocks.flat() : [h('p', { class: 'muted' }, 'no containers in the mesh')]))
}

/** Fill a select, keeping what was chosen when it is still there; with no options, say so in one empty one. */
function keepSelection (select, options, none) {
  const chosen = select.value
  select.replaceChildren(...(options.length > 0 ? options.map(([value, label]) => h('option', { value }, label)) : [h('option', { value: '' }, none)]))
  if (options.some(([value]) => value === chosen)) select.value = chosen
}

function renderForm () {
  const self = state.node
  if (self == null) return
  const local = state.containers.filter(c => c.peerId === self.peerId && !c.name.includes('-goto-rollback-'))
  keepSelection($('migrate-container'), local.map(c => [c.name, `${c.name} (${c.state})`]), 'none on this node')
  const targets = [...state.peers.values()].filter(p => p.status === 'alive' && p.state === 'active')
  keepSelection($('migrate-target'), targets.map(p => [p.peerId, p.name]), 'no live peer')
}

/** Percent of the bytes moved; 100 only once it runs on the target. */
function percent (r) {
  if (r.phase === 'activated') return 100
  const moved = r.bytes?.moved ?? 0
  const total = Math.max(r.bytes?.total ?? 0, moved)
  return total > 0 ? Math.min(99, Math.floor(moved / total * 100)) : 0
}

/**
 * What crossed the wire, where the record says (chunked transfers): sent, already held by the
 * target, on the wire, and what a pre-copy round moved while the container still ran.
 */
function transferLine (r) {
  const t = r.transfer
  if (t == null || typeof t.bytes !== 'number') return null
  const held = t.heldBytes ?? Math.max(0, t.bytes - (t.movedBytes ?? 0))
  const precopy = typeof r.precopy?.movedBytes === 'number' ? ` · ${bytes(r.precopy.movedBytes)} before the freeze` : ''
  return h('div', { class: 'muted' }, `sent ${bytes(t.movedBytes ?? 0)} · ${bytes(held)} deduplicated · ${bytes(t.wireBytes ?? 0)} on the wire${precopy}`)
}

function migrationRow (r) {
  const pct = percent(r)
  const action = r.role === 'source' && r.phase === 'activated' && r.rollbackName != null
    ? h('button', { class: 'secondary', onclick: (e) => { rollback(r, e.target) } }, 'Roll back')
    : null
  return h('tr', { 'data-id': r.id, 'data-role': r.role },
    h('td', { class: 'mono', title: r.id }, shortId(r.id), h('div', { class: 'muted' }, r.role)),
    h('td', {}, r.container, r.name !== r.container ? ` → ${r.name}` : ''),
    h('td', {}, `${r.sourceNode} → ${r.targetNode}`),
    h('td', {},
      h('span', { class: `phase ${r.phase}` }, r.phase),
      h('div', { class: 'phases' }, (r.phases ?? []).map(p => h('span', { title: p.at }, p.phase))),
      r.error != null ? h('div', { class: 'error' }, `${r.error.code}: ${r.error.message}`) : null),
    h('td', { class: 'progress' },
      h('progress', { max: 100, value: pct }),
      h('div', { class: 'muted' }, h('span', { class: 'pct' }, `${pct}%`), ` · ${bytes(r.bytes?.moved ?? 0)} of ${bytes(r.bytes?.total ?? 0)}`),
      transferLine(r)),
    h('td', {}, r.downtimeMs != null ? `${r.downtimeMs} ms` : '-'),
    h('td', {}, action))
}

function renderMigrations () {
  const rows = [...state.migrations.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt))).map(migrationRow)
  $('migrations').tBodies[0].replaceChildren(...(rows.length > 0 ? rows : [h('tr', {}, h('td', { colSpan: 7, class: 'muted' }, 'no migrations yet'))]))
}

function render () {
  renderMesh()
  renderContainers()
  renderForm()
  renderMigrations()
}

function renderLog (entries, more) {
  // peer ids in the details read as node names
  const value = (v) => typeof v !== 'string' ? JSON.stringify(v) : v.startsWith('12D3KooW') ? nameOf(v) : v
  const details = (d) => d == null ? '' : Object.entries(d).map(([k, v]) => `${k}=${value(v)}`).join(' ')
  const rows = entries.map(e => h('tr', { 'data-kind': e.kind },
    h('td', { class: 'mono time', title: e.time }, e.time.replace('T', ' ').replace('Z', '')), h('td', {}, nameOf(e.origin)), h('td', {}, e.seq), h('td', {}, e.kind),
    h('td', { class: 'mono', title: e.migration ?? '' }, shortId(e.migration)), h('td', {}, e.actor ?? ''), h('td', { class: 'mono' }, details(e.details))))
  if (more) rows.push(h('tr', {}, h('td', { colSpan: 7, class: 'muted' }, 'more entries: narrow the window')))
  $('log').tBodies[0].replaceChildren(...(rows.length > 0 ? rows : [h('tr', {}, h('td', { colSpan: 7, class: 'muted' }, 'no entries in this window'))]))
}

// ───────────────────────────── actions ─────────────────────────────

async function loadLog () {
  const query = new URLSearchParams()
  for (const [key, id] of [['since', 'log-since'], ['till', 'log-till'], ['kind', 'log-kind']]) {
    const value = $(id).value.trim()
    if (value !== '') query.set(key, value)
  }
  $('log-error').textContent = ''
  try {
    const { entries, next } = await api(`/v1/log?${query}`)
    renderLog(entries, next != null)
  } catch (err) {
    $('log-error').textContent = err.message
  }
}

async function startMigration (event) {
  event.preventDefault()
  const button = $('migrate-start')
  const name = $('migrate-name').value.trim()
  $('migrate-error').textContent = ''
  button.disabled = true
  try {
    const record = await api('/v1/migrations', {
      method: 'POST',
      body: { container: $('migrate-container').value, target: $('migrate-target').value, name: name === '' ? undefined : name, consistency: $('migrate-consistency').value, async: true }
    })
    state.migrations.set(migrationKey(record), record)
    renderMigrations()
  } catch (err) {
    $('migrate-error').textContent = err.message
  } finally {
    button.disabled = false
  }
}

async function rollback (record, button) {
  button.disabled = true
  try {
    const done = await api(`/v1/migrations/${record.id}/rollback`, { method: 'POST' })
    state.migrations.set(migrationKey(done), done)
    renderMigrations()
    refreshSoon()
  } catch (err) {
    button.disabled = false
    $('migrate-error').textContent = err.message
  }
}

function showFailure (err) {
  if (!(err instanceof SignedOut)) $('migrate-error').textContent = err.message
}

function showLogin (why) {
  clearInterval(ticker)
  $('main').hidden = true
  $('login').hidden = false
  if (why != null) $('login').querySelector('p').textContent = `Sign in again: ${why}.`
}

async function begin () {
  const mine = ++session
  $('login').hidden = true
  $('main').hidden = false
  try {
    await refresh()
  } catch (err) {
    showFailure(err)
    return
  }
  await loadLog()
  clearInterval(ticker)
  ticker = setInterval(() => { refresh().catch(() => {}) }, REFRESH_MS)
  void live(mine)
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('login-token').value.trim())
  $('login-token').value = ''
  void begin()
})
$('migrate-form').addEventListener('submit', startMigration)
$('log-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void loadLog()
})

if (takeToken() == null) showLogin()
else void begin()
