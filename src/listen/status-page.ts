// Owns: the status page (GET /status): one static HTML file with its style and script inline, no
// build step. It holds no data: the script reads /status.json every 10 s and /lookup for the lookup
// box, sending the admin token from the page's #token=… fragment (never sent to the server by the
// browser) as a bearer token. Everything from the server is put in with textContent, never as HTML;
// a Content-Security-Policy with the hashes of the inline style and script forbids anything else.
import { createHash } from 'node:crypto';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 72rem; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
.muted { color: #666; } .bad { color: #b00020; font-weight: 600; } .good { color: #1b6e20; font-weight: 600; }
.tiles { display: flex; flex-wrap: wrap; gap: .8rem; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .8rem; min-width: 8rem; }
.tile b { display: block; font-size: 1.4rem; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
svg { border: 1px solid #ddd; border-radius: 6px; background: #fafafa; }
.q { stroke: #1565c0; fill: none; stroke-width: 2; } .a { stroke: #ef6c00; fill: none; stroke-width: 2; }
pre { background: #f5f5f5; padding: .6rem; border-radius: 6px; white-space: pre-wrap; }
input { font: inherit; padding: .3rem; width: 22rem; } button { font: inherit; padding: .3rem .8rem; }
`;

const SCRIPT = `
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const headers = token ? { authorization: 'Bearer ' + token } : {};
const $ = (id) => document.getElementById(id);
const set = (id, text) => { $(id).textContent = String(text); };
function chart(history) {
  const svg = $('chart'); while (svg.firstChild) svg.removeChild(svg.firstChild);
  const w = 600, h = 140, n = history.length;
  if (n < 2) return;
  // Both series have a point per sample: the queue's size, and what was accepted since the sample before.
  const perStep = history.map((s, i) => (i === 0 ? 0 : s.accepted - history[i - 1].accepted));
  const queued = history.map((s) => s.queued);
  const max = Math.max(1, ...perStep, ...queued);
  const line = (values, cls) => {
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    p.setAttribute('class', cls);
    p.setAttribute('points', values.map((v, i) => ((i * w) / (values.length - 1)).toFixed(1) + ',' + (h - 5 - (v * (h - 10)) / max).toFixed(1)).join(' '));
    svg.appendChild(p);
  };
  line(queued, 'q'); line(perStep, 'a');
}
async function refresh() {
  try {
    const r = await fetch('/status.json', { headers });
    if (!r.ok) throw new Error('the server answered ' + r.status + (r.status === 401 ? ' (open the page as /status#token=…)' : ''));
    const s = await r.json();
    set('host', s.hostname); set('now', s.now); set('uptime', Math.round(s.uptimeSeconds / 60) + ' min');
    set('ready', s.ready ? 'ready' : 'NOT READY'); $('ready').className = s.ready ? 'good' : 'bad';
    set('directory', s.checks.directory ?? ''); set('spool', s.checks.spool ?? '');
    set('queue-total', s.queue.total); set('queue-active', s.queue.active); set('queue-deferred', s.queue.deferred); set('queue-held', s.queue.held);
    set('hour-accepted', s.lastHour.accepted); set('hour-delivered', s.lastHour.delivered); set('hour-deferred', s.lastHour.deferred); set('hour-failed', s.lastHour.failed);
    set('since', s.lastHour.since);
    set('cache-rate', s.cache.hitRate === null ? 'no lookups yet' : (100 * s.cache.hitRate).toFixed(1) + ' %');
    set('cache-lookups', s.cache.lookups);
    chart(s.history);
    const body = $('oldest'); while (body.firstChild) body.removeChild(body.firstChild);
    for (const m of s.oldest) {
      const tr = document.createElement('tr');
      for (const text of [m.id + (m.held ? ' (held)' : ''), m.queuedAt, m.sender, m.pending.join(', '), m.attempts, m.lastError ?? '']) {
        const td = document.createElement('td'); td.textContent = String(text); tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    set('oldest-none', s.oldest.length === 0 ? 'The queue is empty.' : '');
    set('error', ''); document.body.dataset.loaded = s.now;
  } catch (e) { set('error', e.message); }
}
$('lookup').addEventListener('submit', async (event) => {
  event.preventDefault();
  const address = $('address').value.trim();
  if (address === '') return;
  try {
    const r = await fetch('/lookup?address=' + encodeURIComponent(address), { headers });
    const answer = await r.json();
    set('lookup-result', r.ok ? describe(answer) : (answer.error ?? ('the server answered ' + r.status)));
  } catch (e) { set('lookup-result', e.message); }
});
function describe(a) {
  const r = a.resolution, lines = [a.address + ': ' + r.kind];
  const add = (k, v) => { if (v !== undefined && v !== null && v !== '') lines.push('  ' + k.padEnd(14) + ' ' + v); };
  if (r.kind === 'unknown') add('tried', (r.tried || []).join(', ') || '(no query: cannot match)');
  else if (r.kind === 'reject') { add('dn', r.dn); add('status', r.status + ' ' + r.reason); }
  else {
    add('dn', r.dn); add('address', r.address); if (r.matched !== r.address) add('matched', r.matched);
    add('matched by', r.matchedBy); add('accountStatus', r.accountStatus); add('mailHost', r.mailHost ?? '(this node)');
    if (r.kind === 'mailbox') add('mailbox', r.mailbox);
    if (r.forwards && r.forwards.length) add('forwards', r.forwards.join(', '));
  }
  add('source', a.source === 'ldap' ? 'directory (not cached)' : 'cache (' + a.source + ')');
  return lines.join('\\n');
}
refresh(); setInterval(refresh, 10000);
`;

const BODY = `
<h1>ldapmta on <span id="host">…</span></h1>
<div class="muted">as of <span id="now">…</span>, up <span id="uptime">…</span> · <span id="ready">…</span> <span id="error" class="bad"></span></div>
<h2>Queue</h2>
<div class="tiles">
  <div class="tile">in the queue<b id="queue-total">…</b></div>
  <div class="tile">being delivered<b id="queue-active">…</b></div>
  <div class="tile">waiting for a retry<b id="queue-deferred">…</b></div>
  <div class="tile">on hold<b id="queue-held">…</b></div>
</div>
<h2>Last hour <span class="muted">(since <span id="since">…</span>)</span></h2>
<div class="tiles">
  <div class="tile">accepted<b id="hour-accepted">…</b></div>
  <div class="tile">delivered<b id="hour-delivered">…</b></div>
  <div class="tile">deferred (will retry)<b id="hour-deferred">…</b></div>
  <div class="tile">failed (bounced)<b id="hour-failed">…</b></div>
</div>
<p class="muted"><svg id="chart" width="600" height="140" role="img" aria-label="queue size (blue) and messages accepted per minute (orange)"></svg><br>blue: messages in the queue; orange: accepted per minute</p>
<h2>Directory and cache</h2>
<table><tr><th>directory</th><td id="directory">…</td></tr><tr><th>spool</th><td id="spool">…</td></tr>
<tr><th>cache hit rate</th><td><span id="cache-rate">…</span> <span class="muted">of <span id="cache-lookups">…</span> lookups</span></td></tr></table>
<h2>Oldest messages waiting</h2>
<table><thead><tr><th>queue id</th><th>queued</th><th>sender</th><th>pending</th><th>attempts</th><th>last error</th></tr></thead><tbody id="oldest"></tbody></table>
<p id="oldest-none" class="muted"></p>
<h2>How does an address resolve?</h2>
<form id="lookup"><input id="address" name="address" placeholder="alice@example.org" autocomplete="off"> <button type="submit">Look up</button></form>
<pre id="lookup-result"></pre>
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page and the headers it must be served with. */
export const STATUS_PAGE = {
  html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>ldapmta status</title><style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>`,
  headers: {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': `default-src 'none'; connect-src 'self'; img-src 'self'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
  },
} as const;
