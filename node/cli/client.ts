/**
 * The CLI's client of a local agent's HTTP API. The URL comes from `--api`,
 * `GOTO_API`, the data dir's config, or http://127.0.0.1:7070; the token from
 * `GOTO_TOKEN` or the data dir's api.token. `events()` reads a Server-Sent
 * Events stream with the same token and the same errors.
 */
import { readConfigFile, DEFAULT_API_HOST, DEFAULT_API_PORT, defaultDataDir, parseHostPort } from '../config.ts'
import { readToken } from '../data-dir.ts'
import { hostname, userInfo } from 'node:os'
import { GotoError } from '../errors.ts'

export class ApiCallError extends GotoError {
  override name = 'ApiCallError'
  override code: string
  readonly status: number
  constructor (status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

export class AgentUnreachableError extends GotoError {
  override name = 'AgentUnreachableError'
  override code = 'GOTO_ERR_AGENT_UNREACHABLE'
}

export interface ClientOptions {
  api?: string
  dataDir?: string
  env?: NodeJS.ProcessEnv
}

/** One Server-Sent Event, its data parsed as JSON. */
export interface ServerEvent {
  event: string
  data: unknown
}

export interface Client {
  readonly url: string
  /** The API token this client sends. */
  token(): Promise<string>
  get<T>(path: string): Promise<T>
  post<T>(path: string, body?: unknown): Promise<T>
  /** POST a body and read the answer's JSON lines (`application/x-ndjson`) as they come. */
  lines(path: string, body: unknown, options?: { signal?: AbortSignal }): AsyncGenerator<unknown>
  /** The events of a `text/event-stream` route until the agent ends the stream or `signal` aborts. */
  events(path: string, options?: { signal?: AbortSignal }): AsyncGenerator<ServerEvent>
}

/** Split a Server-Sent Events text stream into events; comments (keep-alives) and events without data are skipped. */
async function * parseEvents (text: AsyncIterable<string>): AsyncGenerator<ServerEvent> {
  let buffer = ''
  for await (const chunk of text) {
    buffer += chunk.replaceAll('\r\n', '\n')
    for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, cut)
      buffer = buffer.slice(cut + 2)
      let event = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')) }
    }
  }
}

export async function resolveApiUrl (options: ClientOptions): Promise<string> {
  const env = options.env ?? process.env
  if (options.api != null) return options.api.replace(/\/$/, '')
  if (env.GOTO_API != null && env.GOTO_API !== '') return env.GOTO_API.replace(/\/$/, '')
  const file = await readConfigFile(options.dataDir ?? defaultDataDir(env)).catch(() => ({ api: undefined }))
  const { host, port } = file.api != null ? parseHostPort(file.api, 'api') : { host: DEFAULT_API_HOST, port: DEFAULT_API_PORT }
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${port}`
}

export async function createClient (options: ClientOptions = {}): Promise<Client> {
  const env = options.env ?? process.env
  const url = await resolveApiUrl(options)
  const actor = `${userInfo().username}@${hostname()}`.replace(/[^\w.@:-]/g, '_').slice(0, 128)
  let token: string | undefined = env.GOTO_TOKEN != null && env.GOTO_TOKEN !== '' ? env.GOTO_TOKEN : undefined
  const getToken = async (): Promise<string> => {
    token ??= await readToken(options.dataDir ?? defaultDataDir(env))
    return token
  }
  const request = async (method: string, path: string, init: { body?: unknown, accept?: string, signal?: AbortSignal }): Promise<Response> => {
    const headers: Record<string, string> = { authorization: `Bearer ${await getToken()}`, 'x-goto-actor': actor }
    if (init.body !== undefined) headers['content-type'] = 'application/json'
    if (init.accept != null) headers.accept = init.accept
    let res: Response
    try {
      res = await fetch(url + path, { method, headers, body: init.body === undefined ? undefined : JSON.stringify(init.body), signal: init.signal })
    } catch (err: any) {
      const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message
      throw new AgentUnreachableError(`no agent answers at ${url} (${String(cause)}); is "goto-node start" running, and is --api right?`)
    }
    if (res.ok) return res
    const text = await res.text()
    let json: any
    try { json = JSON.parse(text) } catch { json = { detail: text } }
    throw new ApiCallError(res.status, typeof json?.code === 'string' ? json.code : `HTTP_${res.status}`, typeof json?.detail === 'string' ? json.detail : res.statusText)
  }
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const text = await (await request(method, path, { body, signal: AbortSignal.timeout(30_000) })).text()
    return (text === '' ? {} : JSON.parse(text)) as T
  }
  return {
    url,
    token: getToken,
    get: async (path) => await call('GET', path),
    post: async (path, body) => await call('POST', path, body ?? {}),
    async * lines (path, body, options = {}) {
      const res = await request('POST', path, { body, accept: 'application/x-ndjson', signal: options.signal })
      if (res.body == null) return
      let buffer = ''
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        buffer += chunk
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl).trim()
          buffer = buffer.slice(nl + 1)
          if (line !== '') yield JSON.parse(line)
        }
      }
    },
    async * events (path, options = {}) {
      const res = await request('GET', path, { accept: 'text/event-stream', signal: options.signal })
      if (res.body == null) return
      yield * parseEvents(res.body.pipeThrough(new TextDecoderStream()))
    }
  }
}
