/**
 * The dashboard: a static page (`api/ui/`: HTML, one ES module, one style
 * sheet; no build step) that every agent serves under `/ui/`. The files hold
 * no data and no secret, so they need no token; the page reads the token from
 * its URL fragment (`/ui/#token=…`, which a browser never sends to a server,
 * so it lands in no server or proxy log), keeps it in sessionStorage, drops
 * it from the address bar, and calls the API with the bearer header.
 */
import { readFileSync } from 'node:fs'
import { Hono } from 'hono'

/** Served path under /ui/ → file in api/ui/ and its content type. */
export const DASHBOARD_FILES: Record<string, { file: string, type: string }> = {
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' }
}

const HEADERS = {
  // only this origin's scripts, styles and API; no framing; no referrer (the page never carries the token in its URL anyway)
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache'
}

/** The dashboard's routes; the files are read once, when the app is made. */
export function dashboard (): Hono {
  const dir = new URL('./ui/', import.meta.url)
  const app = new Hono()
    .get('/ui', (c) => c.redirect('/ui/', 301))
  for (const [path, { file, type }] of Object.entries(DASHBOARD_FILES)) {
    const body = readFileSync(new URL(file, dir), 'utf8')
    app.get(path, (c) => c.body(body, 200, { ...HEADERS, 'content-type': type }))
  }
  return app
}
