// Loads @segment/analytics-next's browser bundle in headless Chromium from a page on a local
// static server, points it at eventkit, and sends one page and one track call.
//
// Protocol (so the collector can allow this page's origin before it starts):
//   1. prints {"origin": "http://127.0.0.1:PORT"} on one line,
//   2. reads {"eventkit": URL, "writeKey": KEY, "chromium": PATH} from one line of stdin,
//   3. prints the result: {"page": {...}, "track": {...}, "errors": [...]}.
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, normalize } from 'node:path'
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'
import { chromium } from 'playwright-core'

const require = createRequire(import.meta.url)
const bundles = join(dirname(require.resolve('@segment/analytics-next/package.json')), 'dist', 'umd')

// The snippet's `_cdn` tells the bundle where to load its lazy chunks from: this server.
const PAGE = `<!doctype html>
<html><head><title>eventkit browser test</title>
<script>window.analytics = []; window.analytics._cdn = location.origin;</script>
<script src="/analytics-next/bundles/index.js"></script>
</head><body><h1>Pricing</h1></body></html>`

const server = createServer((request, response) => {
  const path = new URL(request.url, 'http://x').pathname
  if (path === '/favicon.ico') {
    response.writeHead(204).end()
    return
  }
  if (path === '/' || path === '/pricing') {
    response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)
    return
  }
  const prefix = '/analytics-next/bundles/'
  const name = path.startsWith(prefix) ? normalize(path.slice(prefix.length)) : ''
  if (name && !name.includes('..') && !name.includes('/')) {
    try {
      const body = readFileSync(join(bundles, name))
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(body)
      return
    } catch {}
  }
  response.writeHead(404).end()
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const origin = `http://127.0.0.1:${server.address().port}`
console.log(JSON.stringify({ origin }))

const lines = createInterface({ input: process.stdin })
const { eventkit, writeKey, chromium: executablePath } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)))
lines.close()

const errors = []
const userDataDir = mkdtempSync(join(tmpdir(), 'eventkit-chromium-'))
const watchdog = setTimeout(() => {
  console.error('browser test timed out')
  process.exit(2)
}, 60_000)
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
})
try {
  const page = await context.newPage()
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`)
  })
  page.on('response', (response) => {
    if (response.status() >= 400) errors.push(`HTTP ${response.status()} for ${response.url()}`)
  })
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`))
  await page.goto(`${origin}/pricing?utm_source=test`)
  const result = await page.evaluate(async ({ eventkit, writeKey }) => {
    const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(
      { writeKey, cdnURL: eventkit },
      { disableClientPersistence: true },
    )
    const summary = (ctx) => ({
      messageId: ctx.event.messageId,
      anonymousId: ctx.event.anonymousId,
      failed: ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null,
    })
    const viewed = await analytics.page('Docs', 'Pricing', { plan: 'team' })
    const clicked = await analytics.track('Browser Clicked', { button: 'buy', price: 12.5 })
    return { page: summary(viewed), track: summary(clicked), userAgent: navigator.userAgent }
  }, { eventkit, writeKey })
  console.log(JSON.stringify({ ...result, errors }))
} finally {
  clearTimeout(watchdog)
  await context.close()
  server.close()
  rmSync(userDataDir, { recursive: true, force: true })
}
