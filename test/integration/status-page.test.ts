// The status page in a real browser (Debian's Chromium driven by playwright-core): loaded from a
// running server's admin listener with the token in the page's #fragment, its numbers equal the
// JSON API's, the oldest deferred message shows with its last error, the lookup box explains an
// address (text only: markup in an answer stays text), and without the token the page says 401.
// A screenshot is saved to test-output/status-page.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { assertReply, marker, sendOnce, simpleMessage, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

const TOKEN = 'status-page-token';
const OUTPUT = join(REPO_ROOT, 'test-output');

function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : { text }, headers: res.headers });
      });
    });
    req.once('error', reject);
    req.end();
  });
}

describe('the status page in Chromium', () => {
  let slapd: Slapd;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let admin: number;
  let heldId = '';

  before(async () => {
    slapd = await startSlapd();
    server = await startServer(slapd, {
      listen: { admin: '127.0.0.1:0' }, admin: { token: TOKEN }, relay: { trustedNetworks: ['127.0.0.0/8'] },
      cache: { maxEntries: 1000 }, queue: { retryMinSeconds: 600 },
    });
    admin = server.running.ports.admin!;
    const mark = marker('status');
    assertReply((await sendOnce(server.smtpPort, 'bob@example.org', ['alice@example.org'], simpleMessage(mark))).end!, 250, null, 'to alice');
    assertReply((await sendOnce(server.smtpPort, 'bob@example.org', ['alice@example.org'], simpleMessage(`${mark}-2`))).end!, 250, null, 'again');
    const held = await sendOnce(server.smtpPort, 'bob@example.org', ['someone@held.test'], simpleMessage(marker('held')));
    heldId = /queued as (\S+)/.exec(held.end!.text)![1]!;
    await waitForMessages(server.maildir('alice'), mark, 1);
    await waitFor('the remote attempt to fail', async () => {
      const json = await getJson(admin, '/status.json');
      return (json.body.lastHour as { deferred: number }).deferred >= 1 && (json.body.lastHour as { delivered: number }).delivered >= 2;
    }, 10_000);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await slapd?.stop();
  });

  test('the page is static and locked down: no data in it, a CSP with hashes, served without the token', async () => {
    const raw = await new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: admin, path: '/status' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      }).once('error', reject).end();
    });
    assert.equal(raw.status, 200);
    assert.match(String(raw.headers['content-security-policy']), /script-src 'sha256-[^']+'; /);
    for (const data of ['held.test', heldId, server.config.hostname]) assert.ok(!raw.text.includes(data), `no data in the page itself (${data})`);
    assert.equal((await getJson(admin, '/status.json')).status, 200);
  });

  test('the numbers on the page are the API\'s; the oldest deferred message shows with its last error; a screenshot is saved', async () => {
    await page.goto(`http://127.0.0.1:${admin}/status#token=${TOKEN}`);
    await page.waitForSelector('body[data-loaded]');
    const api = (await getJson(admin, '/status.json')).body as {
      hostname: string; queue: Record<string, number>; lastHour: Record<string, number>; cache: { lookups: number; hitRate: number };
    };
    const text = (id: string) => page.locator(`#${id}`).innerText();
    assert.equal(await text('host'), api.hostname);
    assert.equal(await text('queue-total'), String(api.queue.total));
    assert.equal(await text('queue-deferred'), String(api.queue.deferred));
    assert.equal(await text('hour-accepted'), String(api.lastHour.accepted));
    assert.equal(await text('hour-delivered'), String(api.lastHour.delivered));
    assert.equal(await text('hour-deferred'), String(api.lastHour.deferred));
    assert.equal(api.lastHour.accepted, 3);
    assert.equal(await text('cache-rate'), `${(100 * api.cache.hitRate).toFixed(1)} %`);
    assert.equal(await text('cache-lookups'), String(api.cache.lookups));
    assert.equal(await text('ready'), 'ready');
    const row = page.locator('#oldest tr').first();
    assert.match(await row.innerText(), new RegExp(`${heldId}[\\s\\S]*someone@held\\.test[\\s\\S]*4\\.4\\.3`));
    assert.equal(await page.locator('#chart polyline').count(), 2);
    for (const cls of ['q', 'a']) {
      const points = (await page.locator(`#chart polyline.${cls}`).getAttribute('points'))!.split(' ');
      assert.ok(points.length >= 2, `the ${cls} line has a point per sample: ${points.join(' ')}`);
    }
    // The queue line ends at the queue's size now (1 message), drawn above the bottom.
    const lastQueued = (await page.locator('#chart polyline.q').getAttribute('points'))!.split(' ').at(-1)!.split(',').map(Number);
    assert.ok(lastQueued[1]! < 135, `queue line ends above the baseline: ${lastQueued.join(',')}`);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'status-page.png'), fullPage: true });
  });

  test('the lookup box explains an address; markup in an answer stays text', async () => {
    await page.fill('#address', 'a.smith@example.org');
    await page.click('button[type=submit]');
    await page.locator('#lookup-result', { hasText: 'matched by' }).waitFor();
    const answer = await page.locator('#lookup-result').innerText();
    assert.match(answer, /^a\.smith@example\.org: mailbox/);
    assert.match(answer, /matched by\s+mailAlternateAddress/);
    assert.match(answer, /address\s+alice@example\.org/);
    await page.fill('#address', '"<img src=x id=injected>"@example.org');
    await page.click('button[type=submit]');
    await page.locator('#lookup-result', { hasText: 'unknown' }).waitFor();
    assert.match(await page.locator('#lookup-result').innerText(), /<img src=x id=injected>/);
    assert.equal(await page.locator('#injected').count(), 0);
  });

  test('without the token the page loads but says the server answered 401', async () => {
    const other = await browser.newPage();
    try {
      await other.goto(`http://127.0.0.1:${admin}/status`);
      await other.locator('#error', { hasText: /./ }).waitFor();
      assert.match(await other.locator('#error').innerText(), /401/);
      assert.equal(await other.locator('#queue-total').innerText(), '…');
    } finally {
      await other.close();
    }
  });
});
