/**
 * deploy/cloudwatch/ against the publisher: every metric the dashboard and
 * the alarms name is one the publisher sends, in its namespace and with its
 * dimensions, and the dashboard shows every metric it sends.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { CLOUDWATCH_METRICS } from '../../node/metrics/cloudwatch.ts'

const read = (file: string): unknown => JSON.parse(readFileSync(new URL(`../../deploy/cloudwatch/${file}`, import.meta.url), 'utf8'))
const SENT = new Set(Object.keys(CLOUDWATCH_METRICS))

interface Widget { type: string, properties: { metrics: Array<Array<{ expression?: string } | string>> } }
interface Alarm { AlarmName: string, Namespace: string, MetricName: string, Dimensions: Array<{ Name: string, Value: string }>, Statistic: string, Period: number, Threshold: number, ComparisonOperator: string }

/** The metric names a dashboard's SEARCH expressions ask for, and their schema's dimensions. */
function searched (widgets: Widget[]): Array<{ name: string, schema: string }> {
  const found: Array<{ name: string, schema: string }> = []
  for (const w of widgets) {
    for (const row of w.properties.metrics) {
      for (const item of row) {
        if (typeof item === 'string' || item.expression == null) continue
        const m = /^SEARCH\('\{([^}]+)\} MetricName="(\w+)"/.exec(item.expression)
        assert.ok(m != null, `not a SEARCH on a schema and a metric name: ${item.expression}`)
        found.push({ schema: m[1] as string, name: m[2] as string })
      }
    }
  }
  return found
}

describe('deploy/cloudwatch', () => {
  it('the dashboard searches only metrics the publisher sends, in GoTo by Mesh and Node, and shows them all', () => {
    const { widgets } = read('dashboard.json') as { widgets: Widget[] }
    const found = searched(widgets.filter(w => w.type === 'metric'))
    for (const { name, schema } of found) {
      assert.ok(SENT.has(name), `${name} is not sent`)
      assert.equal(schema, 'GoTo,Mesh,Node', name)
    }
    assert.deepEqual(new Set(found.map(f => f.name)), SENT)
  })

  it('every alarm watches a metric the publisher sends, with its dimensions', () => {
    const alarms = read('alarms.json') as Alarm[]
    assert.ok(alarms.length > 0)
    for (const a of alarms) {
      assert.ok(SENT.has(a.MetricName), `${a.AlarmName}: ${a.MetricName} is not sent`)
      assert.equal(a.Namespace, 'GoTo', a.AlarmName)
      assert.deepEqual(a.Dimensions.map(d => d.Name).sort(), ['Mesh', 'Node'], a.AlarmName)
      assert.ok(Number.isFinite(a.Threshold) && a.Period >= 60 && a.Period % 60 === 0, a.AlarmName)
      assert.match(a.ComparisonOperator, /^(GreaterThan|LessThan)(OrEqualTo)?Threshold$/, a.AlarmName)
      assert.match(a.Statistic, /^(Minimum|Maximum|Sum|Average|SampleCount)$/, a.AlarmName)
    }
  })
})
