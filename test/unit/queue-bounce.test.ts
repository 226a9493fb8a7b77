// The bounce (RFC 3464 DSN): parsed back into its parts to check structure, fields and statuses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress } from '../../src/mail.ts';
import { composeBounce, rfc5322Date, type BounceInput, type FailedRecipient } from '../../src/queue/bounce.ts';

interface Part { headers: Map<string, string>; body: string }

function parseEntity(text: string): Part {
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 4);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `header line ${JSON.stringify(line)}`);
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** Top-level entity, the boundary and the parts between the delimiters. */
function parseDsn(bytes: Buffer): { top: Part; parts: Part[] } {
  const text = bytes.toString('utf8');
  assert.doesNotMatch(text, /[^\r]\n/, 'no bare LF');
  for (const line of text.split('\r\n')) assert.ok(Buffer.byteLength(line) <= 998, 'line length');
  const top = parseEntity(text);
  const type = top.headers.get('content-type') ?? '';
  assert.match(type, /^multipart\/report;/);
  assert.match(type, /report-type=delivery-status/);
  const boundary = /boundary="([^"]+)"/.exec(type)?.[1];
  assert.ok(boundary !== undefined);
  const sections = top.body.split(`\r\n--${boundary}`);
  assert.match(sections.at(-1) ?? '', /^--\r\n$/, 'closing delimiter');
  const parts = sections.slice(1, -1).map((s) => parseEntity(s.replace(/^\r\n/, '')));
  return { top, parts };
}

/** The delivery-status body as groups of fields (per-message first, then one per recipient). */
function statusGroups(body: string): Map<string, string>[] {
  return body.trim().split(/\r\n\r\n/).map((group) =>
    new Map(group.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

const now = new Date('2030-05-06T07:08:09Z');
const arrival = new Date('2030-05-01T00:00:00Z');
const headers = 'Received: from client.test\r\n\tby mx1.example.org\r\nSubject: hello\r\nMessage-ID: <1@client.test>';
const input = (failed: FailedRecipient[], extra: Partial<BounceInput> = {}): BounceInput => ({
  hostname: 'mx1.example.org', queueId: '01k82lvt5c00002boemi', sender: parseAddress('Alice@Example.NET'),
  arrivalDate: arrival, failed, originalHeaders: headers, now, ...extra,
});
const bob: FailedRecipient = { address: parseAddress('bob@example.org'), status: '5.1.1', text: 'user unknown', reply: 550 };

const cases: [name: string, failed: FailedRecipient[], expect: { status: string; diagnostic: string; final: string }[]][] = [
  ['one recipient', [bob], [{ status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 user unknown', final: 'rfc822; bob@example.org' }]],
  ['three recipients, expiry and no reply code', [
    bob,
    { address: parseAddress('carol@remote.test'), status: '5.4.7', text: 'delivery time expired (last error: 4.4.1 connection refused)', reply: 550 },
    { address: parseAddress('dave@remote.test'), status: '5.7.1', text: 'relaying denied' },
  ], [
    { status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 user unknown', final: 'rfc822; bob@example.org' },
    { status: '5.4.7', diagnostic: 'smtp; 550 5.4.7 delivery time expired (last error: 4.4.1 connection refused)', final: 'rfc822; carol@remote.test' },
    { status: '5.7.1', diagnostic: 'x-local; 5.7.1 relaying denied', final: 'rfc822; dave@remote.test' },
  ]],
  ['header injection in the text is flattened', [{ ...bob, text: 'bad\r\nX-Injected: yes\r\n\r\n--x' }],
    [{ status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 bad X-Injected: yes --x', final: 'rfc822; bob@example.org' }]],
  ['non-ASCII recipient uses the RFC 6533 utf-8 type', [{ ...bob, address: parseAddress('jürgen@example.org') }],
    [{ status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 user unknown', final: 'utf-8; j\\x{FC}rgen@example.org' }]],
  ['a malformed status becomes 5.0.0', [{ ...bob, status: 'garbage' }],
    [{ status: '5.0.0', diagnostic: 'smtp; 550 garbage user unknown', final: 'rfc822; bob@example.org' }]],
];

for (const [name, failed, expect] of cases) {
  test(`bounce: ${name}`, () => {
    const { top, parts } = parseDsn(composeBounce(input(failed)));
    assert.equal(top.headers.get('from'), 'Mail Delivery System <MAILER-DAEMON@mx1.example.org>');
    assert.equal(top.headers.get('to'), '<Alice@example.net>');
    assert.equal(top.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(top.headers.get('mime-version'), '1.0');
    assert.equal(top.headers.get('date'), 'Mon, 06 May 2030 07:08:09 +0000');
    assert.match(top.headers.get('message-id') ?? '', /^<01k82lvt5c00002boemi\.bounce\.[0-9a-z]+@mx1\.example\.org>$/);
    assert.equal(parts.length, 3);
    const [human, report, original] = parts as [Part, Part, Part];

    assert.match(human.headers.get('content-type') ?? '', /^text\/plain; charset=utf-8/);
    for (const f of failed) assert.ok(human.body.includes(`${f.status} `), `human part names ${f.status}`);
    assert.ok(human.body.includes('<bob@example.org>') || failed.every((f) => f.address.local !== 'bob'));

    assert.equal(report.headers.get('content-type'), 'message/delivery-status');
    const [perMessage, ...perRecipient] = statusGroups(report.body);
    assert.equal(perMessage?.get('reporting-mta'), 'dns; mx1.example.org');
    assert.equal(perMessage?.get('arrival-date'), rfc5322Date(arrival));
    assert.equal(perRecipient.length, expect.length);
    perRecipient.forEach((group, i) => {
      assert.equal(group.get('action'), 'failed');
      assert.equal(group.get('status'), expect[i]?.status);
      assert.equal(group.get('diagnostic-code'), expect[i]?.diagnostic);
      assert.equal(group.get('final-recipient'), expect[i]?.final);
    });
    assert.ok(!report.body.includes('X-Injected: yes\r\n'), 'no injected field line');

    assert.equal(original.headers.get('content-type'), 'text/rfc822-headers');
    assert.equal(original.body, `${headers}\r\n`);
  });
}

test('bounce: LF-only original headers come out with CRLF; 8-bit headers are labelled 8bit', () => {
  const { parts } = parseDsn(composeBounce(input([bob], { originalHeaders: 'Subject: grüße\nFrom: a@b\n' })));
  assert.equal(parts[2]?.body, 'Subject: grüße\r\nFrom: a@b\r\n');
  assert.equal(parts[2]?.headers.get('content-transfer-encoding'), '8bit');
});

test('bounce: original headers that contain the boundary do not break the structure', () => {
  const boundary = `=_ldapmta_01k82lvt5c00002boemi_${now.getTime().toString(36)}`;
  const evil = `Subject: x\r\nX-Evil: --${boundary}\r\n--${boundary}--`;
  const { parts } = parseDsn(composeBounce(input([bob], { originalHeaders: evil })));
  assert.equal(parts.length, 3);
  assert.equal(parts[2]?.body, `${evil}\r\n`);
});

test('bounce: empty original headers still make three parts', () => {
  const { parts } = parseDsn(composeBounce(input([bob], { originalHeaders: '' })));
  assert.equal(parts.length, 3);
});

test('a delay warning: Action delayed, the temporary status, Will-Retry-Until, its own subject; still a valid report', () => {
  const until = new Date(Date.UTC(2026, 11, 5, 12));
  const { top, parts } = parseDsn(composeBounce(input([{ address: parseAddress('far@remote.test'), status: '4.4.1', text: 'connection refused', reply: 451 }], { delayedUntil: until })));
  assert.equal(top.headers.get('subject'), 'Delayed Mail (still being retried)');
  assert.match(parts[0]!.body, /THIS IS A WARNING ONLY/);
  assert.ok(parts[0]!.body.includes(`keep trying until ${rfc5322Date(until)}.`), parts[0]!.body);
  const [, recipient] = statusGroups(parts[1]!.body);
  assert.equal(recipient!.get('action'), 'delayed');
  assert.equal(recipient!.get('status'), '4.4.1');
  assert.equal(recipient!.get('will-retry-until'), rfc5322Date(until));
});
