/**
 * Names of new hosts: the operator's prefix and the UTC time of the launch,
 * e.g. `goto-20261127t0612z`, valid as an EC2 security group name, an Azure
 * resource name and a hostname.
 */
import { UsageError } from './errors.ts'

const PREFIX = /^[a-z][a-z0-9-]{0,29}$/

export function hostName (prefix: string, now: Date = new Date()): string {
  if (!PREFIX.test(prefix)) {
    throw new UsageError(`--name-prefix "${prefix}" must be 1 to 30 lower-case letters, digits or dashes, starting with a letter`)
  }
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase()
  return `${prefix}-${stamp}z`
}
