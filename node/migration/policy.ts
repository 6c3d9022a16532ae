/**
 * The target's admission policy: a migrated config must not gain the host
 * through the back door. Everything that reaches beyond the container is
 * refused by default, each with its own reason code, unless the target's own
 * config allows it, for every peer or for the one that offers (`peers`).
 */
import type { ContainerSpec } from './spec.ts'

export interface AdmissionPolicy {
  /** Allow `--privileged`. @default false */
  allowPrivileged?: boolean
  /** Allow host network, PID, IPC, UTS or user namespaces. @default false */
  allowHostNamespaces?: boolean
  /** Capabilities that may be added. @default [] */
  allowCapabilities?: string[]
  /** Allow device mappings. @default false */
  allowDevices?: boolean
  /** Host paths (prefixes) that bind mounts may use. @default [] */
  allowHostPaths?: string[]
  /** Allow security options that turn confinement off (seccomp/apparmor unconfined, no-new-privileges false). @default false */
  allowUnconfined?: boolean
  /** What a peer (by peer id) may do beyond the rules above, which hold for every peer. @default {} */
  peers?: Record<string, PeerPolicy>
}

export type PeerPolicy = Omit<AdmissionPolicy, 'peers'>

/** The rules for one peer: the common ones, opened further where that peer's entry says so. */
export function policyFor (policy: AdmissionPolicy, peer: string): PeerPolicy {
  const own = Object.hasOwn(policy.peers ?? {}, peer) ? policy.peers![peer]! : {}
  return {
    allowPrivileged: policy.allowPrivileged === true || own.allowPrivileged === true,
    allowHostNamespaces: policy.allowHostNamespaces === true || own.allowHostNamespaces === true,
    allowCapabilities: [...policy.allowCapabilities ?? [], ...own.allowCapabilities ?? []],
    allowDevices: policy.allowDevices === true || own.allowDevices === true,
    allowHostPaths: [...policy.allowHostPaths ?? [], ...own.allowHostPaths ?? []],
    allowUnconfined: policy.allowUnconfined === true || own.allowUnconfined === true
  }
}

export interface PolicyViolation {
  code: 'PRIVILEGED' | 'HOST_NAMESPACE' | 'CAPABILITY' | 'DEVICE' | 'HOST_PATH' | 'UNCONFINED'
  reason: string
}

const HOST_MODES = ['PidMode', 'IpcMode', 'UTSMode', 'UsernsMode'] as const

export function checkPolicy (spec: ContainerSpec, policy: PeerPolicy = {}): PolicyViolation | undefined {
  const hc = spec.hostConfig
  if (hc.Privileged === true && policy.allowPrivileged !== true) {
    return { code: 'PRIVILEGED', reason: 'the container runs privileged; this target does not admit privileged containers' }
  }
  if (policy.allowHostNamespaces !== true) {
    if (hc.NetworkMode === 'host') return { code: 'HOST_NAMESPACE', reason: 'the container uses the host network namespace' }
    for (const key of HOST_MODES) {
      if (hc[key] === 'host') return { code: 'HOST_NAMESPACE', reason: `the container uses the host ${key.replace('Mode', '').toUpperCase()} namespace` }
    }
    if (typeof hc.NetworkMode === 'string' && hc.NetworkMode.startsWith('container:')) {
      return { code: 'HOST_NAMESPACE', reason: 'the container shares another container\'s network namespace' }
    }
  }
  const caps = Array.isArray(hc.CapAdd) ? hc.CapAdd as string[] : []
  const extra = caps.filter(c => !(policy.allowCapabilities ?? []).includes(c))
  if (extra.length > 0) return { code: 'CAPABILITY', reason: `the container adds capabilities ${extra.join(', ')}` }
  if (Array.isArray(hc.Devices) && hc.Devices.length > 0 && policy.allowDevices !== true) {
    return { code: 'DEVICE', reason: 'the container maps host devices' }
  }
  for (const m of spec.mounts) {
    if (m.type !== 'bind') continue
    const allowed = (policy.allowHostPaths ?? []).some(p => m.source === p || m.source.startsWith(p.endsWith('/') ? p : p + '/'))
    if (!allowed) return { code: 'HOST_PATH', reason: `the container bind-mounts the host path ${m.source} at ${m.destination}` }
  }
  const secOpts = Array.isArray(hc.SecurityOpt) ? hc.SecurityOpt as string[] : []
  const unconfined = secOpts.find(o => /unconfined|no-new-privileges[:=]false|label[:=]disable/i.test(o))
  if (unconfined != null && policy.allowUnconfined !== true) {
    return { code: 'UNCONFINED', reason: `the container turns confinement off (${unconfined})` }
  }
  return undefined
}
