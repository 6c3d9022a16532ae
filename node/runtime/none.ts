import { hostCapacity } from './host.ts'
import { GotoError } from '../errors.ts'
import type { ContainerRuntime, MigrationRuntime } from './runtime.ts'

export class NoRuntimeError extends GotoError {
  override name = 'NoRuntimeError'
  override code = 'GOTO_ERR_NO_RUNTIME'
}

const refuse = async (): Promise<never> => { throw new NoRuntimeError('this node runs no containers (--docker-host none)') }

/**
 * The runtime of a member that runs no containers (`--docker-host none`): a
 * gateway or bootstrap node. It reports the host's capacity and an empty
 * inventory.
 */
export function noRuntime (dataDir: string): ContainerRuntime {
  const ops = Object.fromEntries(([
    'pause', 'unpause', 'stopContainer', 'kill', 'startContainer', 'removeContainer', 'rename', 'setRestartPolicy', 'commit', 'saveImage', 'loadImage',
    'removeImage', 'createContainer', 'createVolume', 'removeVolume', 'getArchive', 'putArchive'
  ] as const).map(k => [k, refuse])) as unknown as MigrationRuntime
  return {
    ...ops,
    inspect: async () => undefined,
    imageExists: async () => false,
    volumeExists: async () => false,
    volumeSizes: async () => new Map(),
    portsInUse: async () => new Set(),
    writableLayerDir: async () => undefined,
    imageLayerDir: async () => undefined,
    volumeDir: async () => undefined,
    description: 'none',
    async start () {},
    async stop () {},
    async listContainers () { return [] },
    async capacity () { return await hostCapacity(dataDir) },
    onChange () { return () => {} }
  }
}
