import { hostCapacity } from './host.ts'
import type { ContainerRuntime } from './runtime.ts'

/**
 * The runtime of a member that runs no containers (`--docker-host none`): a
 * gateway or bootstrap node. It reports the host's capacity and an empty
 * inventory.
 */
export function noRuntime (dataDir: string): ContainerRuntime {
  return {
    description: 'none',
    async start () {},
    async stop () {},
    async listContainers () { return [] },
    async capacity () { return await hostCapacity(dataDir) },
    onChange () { return () => {} }
  }
}
