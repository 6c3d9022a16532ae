/** Helpers for the CLI's human output: tables, sizes, durations. */

export function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

export function bytes (n: number): string {
  if (!Number.isFinite(n) || n < 0) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`
}

export function ago (iso: string, now = Date.now()): string {
  const ms = now - Date.parse(iso)
  if (!Number.isFinite(ms)) return '-'
  if (ms < 1000) return 'just now'
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s}s ago`
  const m = Math.round(s / 60)
  if (m < 120) return `${m}m ago`
  return `${Math.round(m / 60)}h ago`
}
