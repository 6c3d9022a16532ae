/**
 * A strict reader of the Prometheus text format (version 0.0.4), for tests of
 * `/metrics`. It throws, naming the line, on anything a Prometheus server would
 * refuse and on what the format allows but we do not write: a family without
 * `# HELP` and `# TYPE` before its samples, a family split in two, an invalid
 * metric or label name, an unknown escape, a value that is not a float, the
 * same series twice, and a histogram whose buckets are not cumulative, do not
 * end in `le="+Inf"` equal to `_count`, or lack `_sum`.
 *
 * @example
 * ```ts
 * const families = parseExposition(await res.text())
 * sampleValue(families, 'goto_migration_bytes_total', { direction: 'sent' })
 * ```
 */

export type Labels = Record<string, string>

export interface Sample {
  /** The sample's own name: the family's, or with `_bucket`, `_sum`, `_count`. */
  name: string
  labels: Labels
  value: number
}

export interface Family {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
/** A float as Prometheus reads one (Go's ParseFloat): `Inf`, `Infinity` and `NaN` in any case. */
const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<Family['type'], string[]> = { counter: [''], gauge: [''], untyped: [''], histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

class ExpositionError extends Error {
  override name = 'ExpositionError'
  constructor (line: number, text: string, why: string) {
    super(`line ${line} (${JSON.stringify(text)}): ${why}`)
  }
}

function parseFloatStrict (text: string): number | undefined {
  if (!FLOAT.test(text)) return undefined
  if (/nan$/i.test(text)) return NaN
  if (/inf(inity)?$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity
  return Number(text)
}

/** `\\` and `\n` in a HELP text; `\"` too in a label value. Any other escape is an error. */
function unescape (text: string, quotes: boolean): string | undefined {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c !== '\\') {
      out += c
      continue
    }
    const next = text[++i]
    if (next === '\\') out += '\\'
    else if (next === 'n') out += '\n'
    else if (next === '"' && quotes) out += '"'
    else return undefined
  }
  return out
}

/** The label set of `{…}` starting at `text[0]`, and where it ends. */
function parseLabels (text: string, fail: (why: string) => never): { labels: Labels, end: number } {
  const labels: Labels = {}
  let i = 1
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 }
    const name = /^[^=]*/.exec(text.slice(i))?.[0] ?? ''
    if (!LABEL_NAME.test(name) || name.startsWith('__')) fail(`bad label name "${name}"`)
    if (Object.hasOwn(labels, name)) fail(`label "${name}" twice`)
    i += name.length
    if (text.slice(i, i + 2) !== '="') fail(`label "${name}" has no ="…"`)
    i += 2
    let raw = ''
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') raw += text[i++]
      raw += text[i++]
    }
    if (i >= text.length) fail(`label "${name}"'s value is not closed`)
    const value = unescape(raw, true)
    if (value == null) fail(`label "${name}"'s value has an unknown escape`)
    labels[name] = value
    i++
    if (text[i] === ',') i++
    else if (text[i] !== '}') fail(`expected , or } after label "${name}"`)
  }
}

const seriesKey = (name: string, labels: Labels): string =>
  name + JSON.stringify(Object.entries(labels).sort(([a], [b]) => a < b ? -1 : 1))

/** Every histogram's series: cumulative buckets ending in +Inf, equal to _count, and a _sum. */
function checkHistogram (family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>, sum?: number, count?: number }>()
  for (const s of family.samples) {
    const { le, ...rest } = s.labels
    const key = seriesKey('', rest)
    const entry = series.get(key) ?? { buckets: [] }
    series.set(key, entry)
    const suffix = s.name.slice(family.name.length)
    if (suffix === '_bucket') {
      const bound = le == null ? undefined : parseFloatStrict(le)
      if (bound == null || Number.isNaN(bound)) throw new Error(`${family.name}: a bucket with le="${le ?? ''}"`)
      entry.buckets.push([bound, s.value])
    } else {
      if (le != null) throw new Error(`${s.name} has an le label`)
      entry[suffix === '_sum' ? 'sum' : 'count'] = s.value
    }
  }
  for (const [key, { buckets, sum, count }] of series) {
    const where = `${family.name}${key}`
    for (let i = 1; i < buckets.length; i++) {
      const [bound, value] = buckets[i]!
      const [lastBound, lastValue] = buckets[i - 1]!
      if (bound <= lastBound) throw new Error(`${where}: bucket bounds not increasing at le=${bound}`)
      if (value < lastValue) throw new Error(`${where}: buckets not cumulative at le=${bound}`)
    }
    const last = buckets.at(-1)
    if (last == null || last[0] !== Infinity) throw new Error(`${where}: the last bucket is not le="+Inf"`)
    if (count == null || last[1] !== count) throw new Error(`${where}: +Inf bucket ${last[1]} is not _count ${count ?? 'absent'}`)
    if (sum == null) throw new Error(`${where}: no _sum`)
  }
}

/** Parse a whole exposition; the families by name. */
export function parseExposition (text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a line feed')
  const families = new Map<string, Family>()
  const seen = new Set<string>()
  let current: { name: string, help?: string, type?: Family['type'], family?: Family } | undefined
  /** The family read so far is complete: it had its HELP and TYPE, with or without samples. */
  const close = (): void => {
    if (current == null) return
    if (current.help == null || current.type == null) throw new Error(`family ${current.name} lacks # HELP or # TYPE`)
    current.family ??= { name: current.name, help: current.help, type: current.type, samples: [] }
    families.set(current.name, current.family)
    current = undefined
  }
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((line, index) => {
    const fail = (why: string): never => { throw new ExpositionError(index + 1, line, why) }
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
    if (meta != null) {
      const [, what, name, rest = ''] = meta as unknown as [string, 'HELP' | 'TYPE', string, string?]
      if (current?.name !== name) {
        close()
        if (!METRIC_NAME.test(name)) fail(`bad metric name "${name}"`)
        if (families.has(name)) fail(`family ${name} appears twice`)
        current = { name }
      }
      const family = current as NonNullable<typeof current>
      if (family.family != null) fail(`# ${what} after the samples of ${name}`)
      if (what === 'HELP') {
        if (family.help != null) fail(`second HELP for ${name}`)
        family.help = unescape(rest, false) ?? fail('unknown escape in HELP')
      } else {
        if (family.type != null) fail(`second TYPE for ${name}`)
        if (!TYPES.has(rest)) fail(`unknown type "${rest}"`)
        family.type = rest as Family['type']
      }
      return
    }
    // comments and empty lines are ignored (prom-client puts one between families)
    if (line.startsWith('#') || line === '') return
    const name = /^[^{ ]*/.exec(line)?.[0] ?? ''
    if (!METRIC_NAME.test(name)) fail(`bad metric name "${name}"`)
    let rest = line.slice(name.length)
    let labels: Labels = {}
    if (rest.startsWith('{')) {
      const parsed = parseLabels(rest, fail)
      labels = parsed.labels
      rest = rest.slice(parsed.end)
    }
    const fields = /^ (\S+)(?: (-?\d+))?$/.exec(rest) ?? fail('expected " value [timestamp]"')
    const value = parseFloatStrict(fields[1] ?? '') ?? fail(`"${fields[1] ?? ''}" is not a float`)
    const family = current ?? fail(`sample ${name} without # HELP and # TYPE`)
    if (family.help == null || family.type == null) fail(`family ${family.name} lacks # HELP or # TYPE before its samples`)
    const type = family.type as Family['type']
    const suffix = name.startsWith(family.name) ? name.slice(family.name.length) : undefined
    if (suffix == null || !SUFFIXES[type].includes(suffix)) fail(`sample ${name} in family ${family.name} (${type})`)
    if (type === 'histogram' && suffix === '_bucket' && labels.le == null) fail('a bucket without le')
    if (type !== 'histogram' && labels.le != null) fail('le outside a histogram')
    if (type === 'summary' && suffix === '' && labels.quantile == null) fail('a summary sample without quantile')
    const key = seriesKey(name, labels)
    if (seen.has(key)) fail(`series ${name}${JSON.stringify(labels)} twice`)
    seen.add(key)
    family.family ??= { name: family.name, help: family.help as string, type, samples: [] }
    family.family.samples.push({ name, labels, value })
  })
  close()
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family)
  return families
}

/** The value of the one sample of `name` whose labels include `labels`; throws when none or several match. */
export function sampleValue (families: Map<string, Family>, name: string, labels: Labels = {}): number {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''))
  const matches = (family?.samples ?? []).filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (matches.length !== 1) throw new Error(`${matches.length} samples of ${name}${JSON.stringify(labels)}`)
  return matches[0]!.value
}
