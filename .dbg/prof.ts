import { readFileSync, readdirSync } from 'node:fs'
for (const dir of process.argv.slice(2)) {
  const file = readdirSync(dir).map(f => `${dir}/${f}`).sort().at(-1)!
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const self = new Map<string, number>()
  const byId = new Map<number, any>(prof.nodes.map((n: any) => [n.id, n]))
  const dt = prof.timeDeltas as number[]
  prof.samples.forEach((id: number, i: number) => {
    const n = byId.get(id); const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0))
  })
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  console.log('==', dir, 'total ms', (total / 1000).toFixed(0))
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 18)) console.log((v / 1000).toFixed(0).padStart(6), k)
}
