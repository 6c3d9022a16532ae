/**
 * The `docker save` archive format, as far as a delta needs it: read the
 * index (manifest.json and the image config) of a saved image, and write an
 * archive of that image plus one layer. `docker load` skips a layer whose
 * chain it already holds without opening its file, so the old layers are
 * empty placeholders and only the new layer's bytes go to the engine.
 */
import { createHash } from 'node:crypto'
import { pack } from 'tar-stream'
import { forEachEntry } from '../runtime/delta.ts'
import { GotoError } from '../errors.ts'

export class ImageArchiveError extends GotoError {
  override name = 'ImageArchiveError'
  override code = 'GOTO_ERR_BAD_IMAGE_ARCHIVE'
}

export interface SaveIndex {
  /** Layer paths in the archive, base first. */
  layers: string[]
  /** The image config, parsed. */
  config: { rootfs?: { diff_ids?: string[] }, history?: unknown[], [key: string]: unknown }
}

/** The largest JSON entry read (a config with a long history is tens of KB). */
const MAX_JSON = 4 * 1024 * 1024

/** Read the manifest and config of a one-image `docker save` archive; layer bodies are skipped. */
export async function readSaveIndex (archive: AsyncIterable<Uint8Array>): Promise<SaveIndex> {
  const jsons = new Map<string, string>()
  await forEachEntry(archive, async (header, body) => {
    if (header.type !== 'file' || header.name.includes('/') || !header.name.endsWith('.json') || header.size > MAX_JSON) return
    const parts: Buffer[] = []
    for await (const part of body) parts.push(part)
    jsons.set(header.name, Buffer.concat(parts).toString('utf8'))
  })
  let manifest: Array<{ Config?: string, Layers?: string[] }>
  try {
    manifest = JSON.parse(jsons.get('manifest.json') ?? 'null')
  } catch {
    throw new ImageArchiveError('the saved image\'s manifest.json is not JSON')
  }
  const entry = Array.isArray(manifest) && manifest.length === 1 ? manifest[0] : undefined
  const configText = entry?.Config != null ? jsons.get(entry.Config) : undefined
  if (entry == null || !Array.isArray(entry.Layers) || configText == null) throw new ImageArchiveError('the saved image has no single manifest entry with its config')
  const config = JSON.parse(configText) as SaveIndex['config']
  if (config.rootfs?.diff_ids?.length !== entry.Layers.length) throw new ImageArchiveError('the saved image\'s layers and diff ids disagree')
  return { layers: entry.Layers, config }
}

/**
 * An archive of the base image plus `layer` (a layer tar of `bytes` bytes
 * whose SHA-256 is `diffId`), tagged `ref`. Errors of `layer` end the archive.
 */
export function deltaImageArchive (base: SaveIndex, layer: NodeJS.ReadableStream, bytes: number, diffId: string, ref: string): NodeJS.ReadableStream {
  const config = structuredClone(base.config)
  config.rootfs = { ...(config.rootfs ?? {}), diff_ids: [...(config.rootfs?.diff_ids ?? []), `sha256:${diffId}`] }
  config.history = [...(config.history ?? []), { created: new Date().toISOString(), created_by: 'go-to: what changed after the pre-copy' }]
  const configText = JSON.stringify(config)
  const configName = `${createHash('sha256').update(configText).digest('hex')}.json`
  const layerPath = `${diffId}/layer.tar`
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: [...base.layers, layerPath] }])
  const tar = pack()
  const add = async (name: string, body: string | Buffer): Promise<void> => {
    await new Promise<void>((resolve, reject) => { tar.entry({ name }, body, err => { if (err != null) reject(err); else resolve() }) })
  }
  void (async () => {
    for (const path of base.layers) await add(path, Buffer.alloc(0))
    await new Promise<void>((resolve, reject) => {
      const entry = tar.entry({ name: layerPath, size: bytes }, err => { if (err != null) reject(err); else resolve() })
      layer.once('error', reject)
      layer.pipe(entry as unknown as NodeJS.WritableStream)
    })
    await add(configName, configText)
    await add('manifest.json', manifest)
    tar.finalize()
  })().catch(err => { tar.destroy(err as Error) })
  return tar as unknown as NodeJS.ReadableStream
}
