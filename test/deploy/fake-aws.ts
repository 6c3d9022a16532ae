/**
 * A local endpoint that speaks EC2's Query protocol (form-encoded requests,
 * XML answers) and SSM's JSON 1.1 protocol, for the deploy tools' tests:
 * `AWS_ENDPOINT_URL` sends the real SDK clients here. It records every call
 * with the region of its SigV4 signature and its decoded parameters, answers
 * from a small in-memory account, and refuses the calls a test names.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface AwsCall {
  /** `ec2:DescribeRegions`, `ssm:GetParameter`, … */
  action: string
  region: string
  /** The access key id the request was signed with. */
  accessKey: string
  /** EC2: the form fields as sent (`IpPermissions.1.FromPort`…); SSM: the JSON body. */
  params: Record<string, any>
}

export interface FakeAccount {
  regions: string[]
  /** Key pair names per region. */
  keyPairs: Record<string, string[]>
  /** Answers to `AMI parameter` reads. */
  amiId: string
  /** Actions answered with this error code (HTTP 403), e.g. { 'ec2:RunInstances': 'UnauthorizedOperation' }. */
  refuse: Record<string, string>
  /** How many DescribeInstances of a launched instance answer "pending" before "running". */
  pendingPolls: number
}

export interface FakeAws {
  url: string
  calls: AwsCall[]
  account: FakeAccount
  close(): Promise<void>
}

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/'

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function items (list: string[]): string {
  return list.map(body => `<item>${body}</item>`).join('')
}

function instanceXml (id: string, state: 'pending' | 'running', name: string): string {
  const code = state === 'running' ? 16 : 0
  const addresses = state === 'running'
    ? '<dnsName>ec2-198-51-100-7.compute.amazonaws.com</dnsName><ipAddress>198.51.100.7</ipAddress>'
    : ''
  return `<instanceId>${id}</instanceId><instanceState><code>${code}</code><name>${state}</name></instanceState>` +
    `<instanceType>t3.small</instanceType>${addresses}<privateIpAddress>172.31.5.9</privateIpAddress>` +
    `<tagSet>${items([`<key>Name</key><value>${esc(name)}</value>`])}</tagSet>`
}

async function body (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function startFakeAws (account: Partial<FakeAccount> = {}): Promise<FakeAws> {
  const state: FakeAccount = {
    regions: ['eu-west-1', 'us-east-1', 'ap-south-1'],
    keyPairs: {},
    amiId: 'ami-0abc1234def567890',
    refuse: {},
    pendingPolls: 1,
    ...account
  }
  const calls: AwsCall[] = []
  const launched = new Map<string, { name: string, polls: number }>()

  const ec2 = (action: string, region: string, p: Record<string, string>): string => {
    switch (action) {
      case 'DescribeRegions':
        return `<regionInfo>${items(state.regions.map(r => `<regionName>${r}</regionName><regionEndpoint>ec2.${r}.amazonaws.com</regionEndpoint>`))}</regionInfo>`
      case 'DescribeKeyPairs': {
        const wanted = p['Filter.1.Name'] === 'key-name' ? p['Filter.1.Value.1'] : undefined
        const names = (state.keyPairs[region] ?? []).filter(n => wanted == null || n === wanted)
        return `<keySet>${items(names.map(n => `<keyName>${esc(n)}</keyName><keyFingerprint>SHA256:fake/${esc(n)}</keyFingerprint><keyType>ed25519</keyType>`))}</keySet>`
      }
      case 'ImportKeyPair': {
        const name = p.KeyName ?? ''
        state.keyPairs[region] = [...(state.keyPairs[region] ?? []), name]
        return `<keyName>${esc(name)}</keyName><keyFingerprint>SHA256:fake/${esc(name)}</keyFingerprint><keyPairId>key-0123</keyPairId>`
      }
      case 'DescribeVpcs':
        return `<vpcSet>${items(['<vpcId>vpc-0default</vpcId><isDefault>true</isDefault>'])}</vpcSet>`
      case 'CreateSecurityGroup':
        return '<return>true</return><groupId>sg-0fake</groupId>'
      case 'AuthorizeSecurityGroupIngress':
      case 'DeleteSecurityGroup':
        return '<return>true</return>'
      case 'RunInstances': {
        const name = Object.entries(p).find(([k, v]) => /^TagSpecification\.1\.Tag\.\d+\.Key$/.test(k) && v === 'Name')
        const nameValue = name != null ? p[name[0].replace(/Key$/, 'Value')] ?? '' : ''
        launched.set('i-0fake', { name: nameValue, polls: 0 })
        return `<reservationId>r-0fake</reservationId><ownerId>123456789012</ownerId><instancesSet>${items([instanceXml('i-0fake', 'pending', nameValue)])}</instancesSet>`
      }
      case 'DescribeInstances': {
        const ids = Object.entries(p).filter(([k]) => k.startsWith('InstanceId.')).map(([, v]) => v)
        const shown = ids.length > 0 ? ids : [...launched.keys()]
        const xml = shown.flatMap(id => {
          const i = launched.get(id)
          if (i == null) return []
          const running = i.polls++ >= state.pendingPolls
          return [instanceXml(id, running ? 'running' : 'pending', i.name)]
        })
        return `<reservationSet>${xml.length === 0 ? '' : items([`<reservationId>r-0fake</reservationId><ownerId>123456789012</ownerId><instancesSet>${items(xml)}</instancesSet>`])}</reservationSet>`
      }
      default:
        throw new Error(`the fake EC2 does not know ${action}`)
    }
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await body(req)
      const scope = /Credential=([^/]+)\/\d{8}\/([a-z0-9-]+)\/(\w+)\//.exec(req.headers.authorization ?? '')
      const region = scope?.[2] ?? ''
      const target = req.headers['x-amz-target']
      const isSsm = typeof target === 'string'
      const params: Record<string, any> = isSsm ? JSON.parse(text) : Object.fromEntries(new URLSearchParams(text))
      const action = isSsm ? `ssm:${target.split('.')[1] ?? ''}` : `ec2:${String(params.Action)}`
      calls.push({ action, region, accessKey: scope?.[1] ?? '', params })

      const refusal = state.refuse[action]
      if (refusal != null) {
        res.statusCode = 403
        if (isSsm) {
          res.setHeader('content-type', 'application/x-amz-json-1.1')
          res.end(JSON.stringify({ __type: refusal, message: `User is not authorized to perform ${action}` }))
        } else {
          res.setHeader('content-type', 'text/xml')
          res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${refusal}</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>fake-1</RequestID></Response>`)
        }
        return
      }
      if (isSsm) {
        res.setHeader('content-type', 'application/x-amz-json-1.1')
        res.end(JSON.stringify({ Parameter: { Name: params.Name, Type: 'String', Value: state.amiId, Version: 1 } }))
        return
      }
      const name = String(params.Action)
      const inner = ec2(name, region, params)
      res.setHeader('content-type', 'text/xml')
      res.end(`<?xml version="1.0" encoding="UTF-8"?><${name}Response xmlns="${XMLNS}"><requestId>fake-1</requestId>${inner}</${name}Response>`)
    })().catch(err => {
      res.statusCode = 500
      res.end(String(err))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    account: state,
    close: async () => { await new Promise<void>(resolve => server.close(() => { resolve() })) }
  }
}
