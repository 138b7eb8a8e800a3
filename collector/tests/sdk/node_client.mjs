// Sends the shared SDK scenario (see mod.rs) through @segment/analytics-node.
// Usage: node node_client.mjs HOST WRITE_KEY PREFIX COUNT
// Prints {"library_version": ..., "errors": [...]} once every batch has been answered.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, prefix, countText] = process.argv.slice(2)
const count = Number(countText)
const require = createRequire(import.meta.url)
const manifest = require.resolve('@segment/analytics-node/package.json')
const version = JSON.parse(readFileSync(manifest, 'utf8')).version

const errors = []
const analytics = new Analytics({ writeKey, host, flushAt: 100, maxRetries: 1 })
analytics.on('error', (error) => errors.push(String(error?.reason ?? error?.code ?? error)))

const start = Date.UTC(2026, 2, 1, 10, 0, 0)
for (let i = 0; i < count; i++) {
  const userId = `${prefix}-user-${i}`
  const timestamp = new Date(start + i * 1000)
  analytics.track({ userId, event: 'Order Completed', properties: { i, sku: `sku-${i}`, price: 9.5 }, timestamp, messageId: `${prefix}-track-${i}` })
  analytics.identify({ userId, traits: { email: `${prefix}-${i}@example.com`, plan: 'pro' }, timestamp, messageId: `${prefix}-identify-${i}` })
  analytics.page({ userId, name: 'Pricing', properties: { i, path: '/pricing' }, timestamp, messageId: `${prefix}-page-${i}` })
  analytics.screen({ userId, name: 'Home', properties: { i }, timestamp, messageId: `${prefix}-screen-${i}` })
  analytics.group({ userId, groupId: `${prefix}-team-${i % 5}`, traits: { name: `Team ${i % 5}` }, timestamp, messageId: `${prefix}-group-${i}` })
  analytics.alias({ userId, previousId: `${prefix}-anon-${i}`, timestamp, messageId: `${prefix}-alias-${i}` })
}
await analytics.closeAndFlush({ timeout: 30000 })
console.log(JSON.stringify({ library_version: version, errors }))
