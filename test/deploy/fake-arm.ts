/**
 * A fake Azure Resource Manager behind the SDK's own seam: an `httpClient`
 * for the clients' pipeline, as the Azure SDK's tests use, so each request has
 * gone through the real serializers, the bearer-token policy and the
 * long-running-operation poller. It keeps the resources put to it, answers
 * gets and lists from them, records every request, and refuses what a test
 * names with ARM's AuthorizationFailed.
 */
import type { HttpClient, TokenCredential } from '../../deploy/azure/arm.ts'

type PipelineRequest = Parameters<HttpClient['sendRequest']>[0]
type PipelineResponse = Awaited<ReturnType<HttpClient['sendRequest']>>
type HttpHeaders = PipelineResponse['headers']

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
/** A JWT as Entra ID issues one, with an unverifiable signature: ARM's fake does not check it. */
export const FAKE_TOKEN = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ upn: 'operator@example.org', tid: '72f988bf-0000-0000-0000-2d7cd011db47' })}.fake-signature`

export interface ArmRequest {
  method: string
  /** The path, as sent. */
  path: string
  /** The resource type's last segment, lower case: `virtualmachines`, `resourcegroups`, … */
  type: string
  authorization: string
  body: any
}

export interface FakeArm {
  httpClient: HttpClient
  credential: TokenCredential
  requests: ArmRequest[]
  /** `PUT virtualmachines` → refused with 403 AuthorizationFailed. */
  refuse: Set<string>
  /** What ARM holds, by lower-case resource id. */
  resources: Map<string, any>
}

class Headers implements HttpHeaders {
  readonly #map = new Map<string, string>()
  constructor (init: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(init)) this.set(k, v)
  }

  get (name: string): string | undefined { return this.#map.get(name.toLowerCase()) }
  has (name: string): boolean { return this.#map.has(name.toLowerCase()) }
  set (name: string, value: string | number | boolean): void { this.#map.set(name.toLowerCase(), String(value)) }
  delete (name: string): void { this.#map.delete(name.toLowerCase()) }
  toJSON (): Record<string, string> { return Object.fromEntries(this.#map) }
  [Symbol.iterator] (): Iterator<[string, string]> { return this.#map.entries() }
}

function typeOf (path: string): string {
  const parts = path.split('/').filter(Boolean)
  // …/{type}/{name} for one resource, …/{type} for a list
  return (parts.length % 2 === 0 ? parts[parts.length - 2] : parts[parts.length - 1])?.toLowerCase() ?? ''
}

/** ARM's answer to a PUT: the body with an id, a name and, inside, what the service fills in. */
function created (id: string, type: string, body: any): any {
  const name = id.split('/').at(-1)
  const properties = { ...(body.properties ?? {}), provisioningState: type === 'virtualmachines' ? 'Creating' : 'Succeeded' }
  if (type === 'virtualnetworks') {
    properties.subnets = (properties.subnets ?? []).map((s: any) => ({ ...s, id: `${id}/subnets/${String(s.name)}` }))
  }
  if (type === 'networkinterfaces') {
    properties.ipConfigurations = (properties.ipConfigurations ?? []).map((c: any, i: number) => ({
      ...c,
      id: `${id}/ipConfigurations/${String(c.name)}`,
      properties: { ...c.properties, privateIPAddress: `10.20.1.${4 + i}` }
    }))
  }
  if (type === 'publicipaddresses') properties.ipAddress = '20.31.0.7'
  return type === 'resourcegroups' ? { ...body, id, name, properties: { provisioningState: 'Succeeded' } } : { ...body, id, name, properties }
}

export function fakeArm (): FakeArm {
  const requests: ArmRequest[] = []
  const refuse = new Set<string>()
  const resources = new Map<string, any>()

  const answer = (request: PipelineRequest, status: number, body: unknown): PipelineResponse => ({
    request,
    status,
    headers: new Headers({ 'content-type': 'application/json', 'x-ms-request-id': 'fake' }),
    bodyAsText: body === undefined ? '' : JSON.stringify(body)
  })

  const httpClient: HttpClient = {
    async sendRequest (request) {
      const url = new URL(request.url)
      const path = url.pathname
      const type = typeOf(path)
      const body = typeof request.body === 'string' ? JSON.parse(request.body) : undefined
      requests.push({ method: request.method, path, type, authorization: request.headers.get('authorization') ?? '', body })
      if (refuse.has(`${request.method} ${type}`)) {
        return answer(request, 403, { error: { code: 'AuthorizationFailed', message: `The client does not have authorization to perform action over scope '${path}'.` } })
      }
      const id = path.toLowerCase()
      if (request.method === 'PUT') {
        const resource = created(path, type, body)
        resources.set(id, resource)
        return answer(request, 201, resource)
      }
      if (request.method !== 'GET') return answer(request, 405, { error: { code: 'MethodNotAllowed', message: request.method } })
      if (id.endsWith('/providers/microsoft.compute')) {
        return answer(request, 200, { id: path, namespace: 'Microsoft.Compute', resourceTypes: [{ resourceType: 'virtualMachines', locations: ['West Europe', 'East US'] }] })
      }
      const held = resources.get(id)
      if (held != null) {
        // a VM being created is done when it is next looked at
        if (held.properties?.provisioningState === 'Creating') held.properties.provisioningState = 'Succeeded'
        return answer(request, 200, held)
      }
      if (path.split('/').filter(Boolean).length % 2 === 1) {
        return answer(request, 200, { value: [...resources.values()].filter(r => typeOf(String(r.id)) === type) })
      }
      return answer(request, 404, { error: { code: 'ResourceNotFound', message: `${path} was not found` } })
    }
  }
  const credential: TokenCredential = {
    getToken: async () => ({ token: FAKE_TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 })
  }
  return { httpClient, credential, requests, refuse, resources }
}
