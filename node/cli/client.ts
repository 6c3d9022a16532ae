/**
 * The CLI's client of a local agent's HTTP API. The URL comes from `--api`,
 * `GOTO_API`, the data dir's config, or http://127.0.0.1:7070; the token from
 * `GOTO_TOKEN` or the data dir's api.token.
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

export interface Client {
  readonly url: string
  get<T>(path: string): Promise<T>
  post<T>(path: string, body?: unknown): Promise<T>
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
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const headers: Record<string, string> = { authorization: `Bearer ${await getToken()}`, 'x-goto-actor': actor }
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) })
    } catch (err: any) {
      const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message
      throw new AgentUnreachableError(`no agent answers at ${url} (${String(cause)}); is "goto-node start" running, and is --api right?`)
    }
    const text = await res.text()
    let json: any
    try { json = text === '' ? {} : JSON.parse(text) } catch { json = { detail: text } }
    if (!res.ok) {
      throw new ApiCallError(res.status, typeof json.code === 'string' ? json.code : `HTTP_${res.status}`, typeof json.detail === 'string' ? json.detail : res.statusText)
    }
    return json as T
  }
  return {
    url,
    get: async (path) => await call('GET', path),
    post: async (path, body) => await call('POST', path, body ?? {})
  }
}
