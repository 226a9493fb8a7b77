// IMAP safety, through raw sockets where a client library would not send what is tested: the
// STARTTLS injection, plaintext logins refused before TLS, malformed input answered with BAD while the
// session goes on, literals too large, input that cannot be resynchronised, refused and locked-out
// logins, and APPEND with synchronising and non-synchronising (LITERAL+) literals.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { flow, ImapRaw, rawLogin, rawStartTls } from '../harness/imap.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { sleep } from '../harness/ports.ts';
import { REPO_ROOT, sshaHash, startSlapd, type Slapd } from '../harness/slapd.ts';
import { marker } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };
/** smtp.maxMessageSize, the largest literal the server takes. */
const MAX = 65_536;
const plainResponse = (authz: string, user: string, pass: string) => Buffer.from(`${authz}\0${user}\0${pass}`).toString('base64');

/**
 * Sends `line` and, in the same write, "<next> NOOP": the bad line must get exactly one response
 * matching `expected`, and the NOOP after it its OK (the session went on, in step).
 */
async function expectBad(c: ImapRaw, line: string | Buffer, expected: RegExp, next: string): Promise<void> {
  c.write(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'latin1') : line, Buffer.from(`\r\n${next} NOOP\r\n`, 'latin1')]));
  const reply = await c.until(next);
  const what = JSON.stringify(String(line).slice(0, 60));
  assert.equal(reply.untagged.length, 1, `exactly one answer to ${what}: ${JSON.stringify(reply.untagged)}`);
  assert.match(reply.untagged[0]!, expected, what);
  assert.match(reply.tagged, new RegExp(`^${next} OK `), `the NOOP after ${what}`);
}

describe('imap safety', () => {
  let slapd: Slapd;
  /** STARTTLS and IMAPS, no plaintext login; literals up to 64 KiB. */
  let server: TestServer;
  /** limits.authFailuresPerLogin 2. */
  let tight: TestServer;
  let imap: number;
  let imaps: number;

  before(async () => {
    slapd = await startSlapd();
    // grace (disabled) and heidi (deleted) get a password, so only their accountStatus refuses them.
    await slapd.ldapmodify([
      'dn: uid=grace,ou=people,dc=example,dc=org', 'changetype: modify', 'add: userPassword', `userPassword: ${sshaHash('Grace-pw-7')}`, '',
      'dn: uid=heidi,ou=people,dc=example,dc=org', 'changetype: modify', 'add: userPassword', `userPassword: ${sshaHash('Heidi-pw-8')}`, '',
    ].join('\n'));
    // A forward-only account that may log in but has no Maildir.
    await slapd.ldapadd([
      'dn: uid=forwarder,ou=people,dc=example,dc=org', 'objectClass: inetOrgPerson', 'objectClass: qmailUser',
      'cn: forwarder', 'sn: forwarder', 'uid: forwarder', 'mail: forwarder@example.org',
      `userPassword: ${sshaHash('Forwarder-pw-1')}`, 'mailForwardingAddress: someone@elsewhere.test', 'accountStatus: active', '',
    ].join('\n'));
    server = await startServer(slapd, { smtp: { tls: TLS, maxMessageSize: MAX }, listen: { imap: '127.0.0.1:0', imaps: '127.0.0.1:0' } });
    imap = server.running.ports.imap!;
    imaps = server.running.ports.imaps!;
    tight = await startServer(slapd, {
      smtp: { tls: TLS }, listen: { imap: '127.0.0.1:0' },
      limits: { authFailuresPerLogin: 2, authFailuresPerIp: 100, lockoutSeconds: 60 },
    });
  });
  after(async () => {
    await server?.stop();
    await tight?.stop();
    await slapd?.stop();
  });

  test('STARTTLS injection: a command pipelined after STARTTLS in the same clear-text write is never answered, neither before nor inside TLS', async () => {
    const c = await ImapRaw.open(imap);
    try {
      assert.match(await c.response(), /^\* OK /);
      c.write('a STARTTLS\r\nb CAPABILITY\r\n');
      assert.match(await c.response(), /^a OK /);
      await sleep(200);
      assert.equal(c.unread, '', 'nothing answered b in clear text');
      await c.startTls();
      await sleep(200);
      assert.equal(c.unread, '', 'nothing answered b inside TLS');
      const reply = await c.command('c NOOP');
      assert.deepEqual(reply, { tagged: 'c OK NOOP completed', untagged: [] });
      await sleep(100);
      assert.equal(c.unread, '');
    } finally {
      c.close();
    }
    // An injected LOGIN would log the session in inside TLS: it must not.
    const d = await ImapRaw.open(imap);
    try {
      await d.response();
      d.write('a STARTTLS\r\nb LOGIN alice Alice-pw-1\r\n');
      assert.match(await d.response(), /^a OK /);
      await sleep(100);
      assert.equal(d.unread, '', 'nothing answered b in clear text');
      await d.startTls();
      assert.match((await d.command('c SELECT INBOX')).tagged, /^c BAD /, 'not logged in: the injected LOGIN was thrown away');
      assert.match((await d.command('d LOGIN alice Alice-pw-1')).tagged, /^d OK /);
      assert.match((await d.command('e SELECT INBOX')).tagged, /^e OK /);
    } finally {
      d.close();
    }
  });

  test('before TLS: LOGINDISABLED, and LOGIN and AUTHENTICATE PLAIN get NO [PRIVACYREQUIRED] (no "+" continuation); after STARTTLS: AUTH=PLAIN, and both log in', async () => {
    const c = await ImapRaw.open(imap);
    try {
      const greeting = await c.response();
      assert.match(greeting, /^\* OK \[CAPABILITY [^\]]*\bSTARTTLS\b[^\]]*\bLOGINDISABLED\b[^\]]*\] /, greeting);
      assert.doesNotMatch(greeting, /AUTH=PLAIN/);
      const caps = await c.command('x0 CAPABILITY');
      assert.match(caps.untagged[0]!, /^\* CAPABILITY IMAP4rev1 .*\bSTARTTLS\b.*\bLOGINDISABLED\b/);
      assert.doesNotMatch(caps.untagged[0]!, /AUTH=PLAIN/);
      assert.deepEqual(await c.command('x1 LOGIN alice Alice-pw-1'), { tagged: 'x1 NO [PRIVACYREQUIRED] LOGIN needs TLS first: use STARTTLS', untagged: [] });
      const sasl = await c.command('x2 AUTHENTICATE PLAIN');
      assert.deepEqual(sasl.untagged, [], 'no "+ " continuation in the clear');
      assert.match(sasl.tagged, /^x2 NO \[PRIVACYREQUIRED\] /);
      assert.match((await c.command(`x3 AUTHENTICATE PLAIN ${plainResponse('', 'alice', 'Alice-pw-1')}`)).tagged, /^x3 NO \[PRIVACYREQUIRED\] /);
      assert.match((await c.command('x4 SELECT INBOX')).tagged, /^x4 BAD /, 'not logged in');

      assert.match((await c.command('x5 STARTTLS')).tagged, /^x5 OK /);
      await c.startTls();
      const after = await c.command('x6 CAPABILITY');
      assert.match(after.untagged[0]!, /\bAUTH=PLAIN\b/);
      assert.doesNotMatch(after.untagged[0]!, /STARTTLS|LOGINDISABLED/);
      assert.match((await c.command('x7 STARTTLS')).tagged, /^x7 BAD /, 'no second STARTTLS');
      // AUTHENTICATE PLAIN with the "+ " continuation.
      c.write('x8 AUTHENTICATE PLAIN\r\n');
      assert.equal(await c.response(), '+ ');
      c.write(`${plainResponse('', 'alice', 'Alice-pw-1')}\r\n`);
      const login = await c.until('x8');
      assert.match(login.tagged, /^x8 OK \[CAPABILITY [^\]]*\bUIDPLUS\b[^\]]*\] /);
      assert.match((await c.command('x9 SELECT INBOX')).tagged, /^x9 OK /);
    } finally {
      c.close();
    }
    // SASL-IR over IMAPS; "*" cancels; an authzid other than the login, bad base64 and other mechanisms are refused.
    const ir = await ImapRaw.open(imaps, { tls: true });
    try {
      const greeting = await ir.response();
      assert.match(greeting, /\bAUTH=PLAIN\b/);
      assert.doesNotMatch(greeting, /STARTTLS|LOGINDISABLED/, 'implicit TLS: nothing to upgrade');
      ir.write('y1 AUTHENTICATE PLAIN\r\n');
      assert.equal(await ir.response(), '+ ');
      ir.write('*\r\n');
      assert.match((await ir.until('y1')).tagged, /^y1 BAD /, 'cancelled');
      assert.match((await ir.command(`y2 AUTHENTICATE PLAIN ${plainResponse('bob', 'alice', 'Alice-pw-1')}`)).tagged, /^y2 (BAD|NO) /, 'authzid other than authcid');
      assert.match((await ir.command('y3 AUTHENTICATE PLAIN !!notbase64!!')).tagged, /^y3 BAD /);
      assert.match((await ir.command('y4 AUTHENTICATE CRAM-MD5')).tagged, /^y4 NO /);
      assert.match((await ir.command('y5 SELECT INBOX')).tagged, /^y5 BAD /, 'still not logged in');
      assert.match((await ir.command(`y6 AUTHENTICATE PLAIN ${plainResponse('alice', 'alice', 'Alice-pw-1')}`)).tagged, /^y6 OK /);
      assert.match((await ir.command('y7 SELECT INBOX')).tagged, /^y7 OK /);
    } finally {
      ir.close();
    }
    // LOGIN with the user name and password as synchronising literals (what clients send for unusual passwords).
    const lit = await ImapRaw.open(imaps, { tls: true });
    try {
      await lit.response();
      lit.write('z1 LOGIN {5}\r\n');
      assert.match(await lit.response(), /^\+ /);
      lit.write('alice {10}\r\n');
      assert.match(await lit.response(), /^\+ /);
      lit.write('Alice-pw-1\r\n');
      assert.match((await lit.until('z1')).tagged, /^z1 OK /);
    } finally {
      lit.close();
    }
  });

  test('malformed input and commands in the wrong state get BAD, and the session goes on in step (NOOP still OK); literals too large get BAD [TOOBIG]', async () => {
    const pre = await ImapRaw.open(imap);
    try {
      await pre.response();
      await expectBad(pre, 'b1 SELECT INBOX', /^b1 BAD /, 'n1');
      await expectBad(pre, 'b2 FETCH 1 FLAGS', /^b2 BAD /, 'n2');
      await expectBad(pre, 'b3 LOGOUTT', /^b3 BAD /, 'n3');
    } finally {
      pre.close();
    }
    const c = await rawLogin(imap, 'bob', 'Bob-pw-2');
    try {
      // Logged in, no folder selected yet.
      await expectBad(c, 'a1 FETCH 1 FLAGS', /^a1 BAD /, 'n1');
      await expectBad(c, 'a2 EXPUNGE', /^a2 BAD /, 'n2');
      await expectBad(c, 'a3 CLOSE', /^a3 BAD /, 'n3');
      assert.match((await c.command('s1 SELECT INBOX')).tagged, /^s1 OK /);
      const status = async () => (await c.command('st STATUS INBOX (MESSAGES)')).untagged.join('\n');
      const before = await status();

      const cases: [string | Buffer, RegExp][] = [
        ['NOOP', /^(\*|NOOP) BAD /], // no tag
        ['* NOOP', /^\* BAD /],
        ['+ NOOP', /^\* BAD /],
        ['m1 FETCH 1 (FLAGS', /^m1 BAD /], // unbalanced parentheses
        ['m2 FETCH 1 (FLAGS))', /^m2 BAD /],
        ['m3 SELECT "INBOX', /^m3 BAD /], // unterminated quoted string
        ['m4 FETCH 0:x FLAGS', /^m4 BAD /], // bad sequence sets
        ['m5 FETCH 0 FLAGS', /^m5 BAD /],
        ['m6 FETCH 1:4294967296 FLAGS', /^m6 BAD /],
        ['m7 FROBNICATE', /^m7 BAD /], // unknown commands
        ['m8 UID FROBNICATE 1', /^m8 BAD /],
        ['m9 LOGIN bob Bob-pw-2', /^m9 BAD /], // wrong state
        ['m10 STARTTLS', /^m10 BAD /],
        ['m11 AUTHENTICATE PLAIN', /^m11 BAD /],
        ['m12 FETCH 1 BODY[', /^m12 BAD /],
        ['m13 FETCH 1 (FLAGS BOGUS)', /^m13 BAD /],
        ['m14 SEARCH FROBBLE', /^m14 BAD /],
        ['m15 STORE 1 +FLAGS (\\Seen', /^m15 BAD /],
        ['m16 SELECT', /^m16 BAD /],
        ['m17 APPEND INBOX', /^m17 BAD /],
        ['m18 CREATE ../../etc', /^m18 BAD /],
        [Buffer.from('m19 FETCH 1 FLAGS \xff\x00', 'latin1'), /^m19 BAD /],
        ['m20 "quoted" NOOP', /^(\*|m20) BAD /],
        // A synchronising literal over the limit: refused at once, no "+" (the client sends nothing).
        ['m21 APPEND INBOX {999999999}', /^m21 BAD \[TOOBIG\] /],
        [`m22 APPEND INBOX {${MAX + 1}}`, /^m22 BAD \[TOOBIG\] /],
      ];
      for (const [i, [line, expected]] of cases.entries()) await expectBad(c, line, expected, `n${i}`);

      // A non-synchronising literal over the limit: the client sends the bytes anyway; they are skipped.
      const big = 'X'.repeat(MAX + 1);
      await expectBad(c, `m30 APPEND INBOX {${MAX + 1}+}\r\nSubject: too big\r\n\r\n${big.slice(20)}`, /^m30 BAD \[TOOBIG\] /, 'n30');
      // A 100 KB line without CRLF (the CRLF comes later): BAD for the whole line, then in step again.
      c.write(`m31 NOOP ${'x'.repeat(100 * 1024)}`);
      await sleep(200);
      assert.equal(c.isClosed, false, 'still connected after 100 KB without a line end');
      c.write('\r\nn31 NOOP\r\n');
      const long = await c.until('n31');
      assert.equal(long.untagged.length, 1, JSON.stringify(long.untagged));
      assert.match(long.untagged[0]!, /^(m31|\*) BAD /);
      assert.match(long.tagged, /^n31 OK /);

      assert.equal(await status(), before, 'nothing was appended');
      const fine = await c.command('z1 NOOP');
      assert.match(fine.tagged, /^z1 OK /);
      assert.match((await c.command('z2 LIST "" "*"')).tagged, /^z2 OK /);
    } finally {
      c.close();
    }
    // Other clients are served.
    const other = await flow(imap, 'alice', 'Alice-pw-1');
    try {
      assert.ok((await other.list()).some((f) => f.path === 'INBOX'));
    } finally {
      await other.logout();
    }
  });

  test('input that cannot be resynchronised (a non-synchronising literal far over the limit): * BYE and closed; other sessions go on', async () => {
    const bystander = await flow(imap, 'alice', 'Alice-pw-1');
    try {
      await bystander.mailboxOpen('INBOX');
      const c = await rawLogin(imap, 'bob', 'Bob-pw-2');
      try {
        c.write('z1 APPEND INBOX {999999999+}\r\nSubject: x\r\n\r\n');
        assert.match(await c.response(), /^\* BYE /);
        assert.ok(await c.waitClosed(), 'the server closed the connection');
      } finally {
        c.close();
      }
      await bystander.noop();
      assert.ok(bystander.usable, 'the other session is still up');
      const again = await rawLogin(imap, 'bob', 'Bob-pw-2');
      assert.match((await again.command('z2 SELECT INBOX')).tagged, /^z2 OK /);
      again.close();
    } finally {
      await bystander.logout().catch(() => bystander.close());
    }
  });

  test('refused logins: disabled, deleted and NoAccess accounts with their right password, a wrong or empty password, an unknown login: NO [AUTHENTICATIONFAILED] after a delay; the session can still log in', async () => {
    // Each from its own loopback address, so the per-address failure delay does not add up.
    const cases: [string, string, string][] = [
      ['127.0.0.21', 'grace', 'Grace-pw-7'], // accountStatus disabled
      ['127.0.0.22', 'heidi', 'Heidi-pw-8'], // accountStatus deleted
      ['127.0.0.23', 'ivan', 'Ivan-pw-9'], // accountStatus NoAccess
      ['127.0.0.24', 'alice', 'Alice-pw-WRONG'],
      ['127.0.0.25', 'alice', ''],
      ['127.0.0.26', 'nobody-here', 'whatever'],
    ];
    for (const [address, user, pass] of cases) {
      const c = await ImapRaw.open(imaps, { tls: true, localAddress: address });
      try {
        await c.response();
        const started = Date.now();
        const refused = await c.command(`r1 LOGIN ${user} ${JSON.stringify(pass)}`);
        assert.deepEqual(refused, { tagged: 'r1 NO [AUTHENTICATIONFAILED] authentication failed', untagged: [] }, `${user}/${JSON.stringify(pass)}`);
        assert.ok(Date.now() - started >= 200, `${user}: answered after the failure delay (${Date.now() - started} ms)`);
        assert.match((await c.command('r2 SELECT INBOX')).tagged, /^r2 BAD /, `${user}: not logged in`);
        if (user === 'alice') assert.match((await c.command('r3 LOGIN alice Alice-pw-1')).tagged, /^r3 OK /, 'the same session logs in with the right password');
      } finally {
        c.close();
      }
    }
    const sasl = await ImapRaw.open(imaps, { tls: true, localAddress: '127.0.0.27' });
    try {
      await sasl.response();
      assert.match((await sasl.command(`r4 AUTHENTICATE PLAIN ${plainResponse('', 'grace', 'Grace-pw-7')}`)).tagged, /^r4 NO \[AUTHENTICATIONFAILED\] /, 'disabled, through AUTHENTICATE');
    } finally {
      sasl.close();
    }
    // Right password, but no Maildir on this server: NO [UNAVAILABLE] (not an authentication failure).
    const nomail = await ImapRaw.open(imaps, { tls: true, localAddress: '127.0.0.28' });
    try {
      await nomail.response();
      assert.match((await nomail.command('r5 LOGIN forwarder Forwarder-pw-1')).tagged, /^r5 NO \[UNAVAILABLE\] /);
      assert.match((await nomail.command('r6 SELECT INBOX')).tagged, /^r6 BAD /);
    } finally {
      nomail.close();
    }
    // Through a client library: the failure is an authentication failure.
    await assert.rejects(flow(imap, 'ivan', 'Ivan-pw-9'), (err: { authenticationFailed?: boolean; serverResponseCode?: string }) =>
      err.authenticationFailed === true && err.serverResponseCode === 'AUTHENTICATIONFAILED');
  });

  test('failed-login lockout: with authFailuresPerLogin 2 the third attempt, even with the right password, gets NO [UNAVAILABLE]; also in a new session and through AUTHENTICATE; other logins are not locked', async () => {
    const port = tight.running.ports.imap!;
    const started = Date.now();
    const c = await rawStartTls(port);
    try {
      assert.match((await c.command('t1 LOGIN bob wrong-1')).tagged, /^t1 NO \[AUTHENTICATIONFAILED\] /);
      assert.match((await c.command('t2 LOGIN bob wrong-2')).tagged, /^t2 NO \[AUTHENTICATIONFAILED\] /);
      assert.match((await c.command('t3 LOGIN bob Bob-pw-2')).tagged, /^t3 NO \[UNAVAILABLE\] /, 'locked out with the right password');
      assert.match((await c.command('t4 SELECT INBOX')).tagged, /^t4 BAD /);
    } finally {
      c.close();
    }
    const d = await rawStartTls(port);
    try {
      assert.match((await d.command('t5 LOGIN BOB Bob-pw-2')).tagged, /^t5 NO \[UNAVAILABLE\] /, 'in a new session, whatever the case of the login');
      assert.match((await d.command(`t6 AUTHENTICATE PLAIN ${plainResponse('', 'bob', 'Bob-pw-2')}`)).tagged, /^t6 NO \[UNAVAILABLE\] /, 'and through AUTHENTICATE');
      assert.match((await d.command('t7 LOGIN alice Alice-pw-1')).tagged, /^t7 OK /, 'another login is not locked out');
    } finally {
      d.close();
    }
    assert.ok(Date.now() - started < 5000, `answered without long delays (${Date.now() - started} ms)`);
  });

  test('APPEND with a synchronising literal gets "+ " and APPENDUID; with LITERAL+ there is no continuation; the bytes are kept exactly', async () => {
    const maildir = server.maildir('erin');
    const c = await rawLogin(imap, 'erin', 'Erin-pw-5');
    try {
      const mark = marker('lit');
      const one = Buffer.from(`Subject: ${mark} sync\r\nFrom: erin@example.org\r\n\r\nGrüße, first.\r\n`, 'utf8');
      c.write(`p1 APPEND Drafts (\\Draft) "02-Jan-2025 03:04:05 +0100" {${one.length}}\r\n`);
      assert.match(await c.response(), /^\+ /, 'a continuation request before the literal');
      await sleep(100);
      assert.equal(c.unread, '', 'nothing else before the literal is sent');
      c.write(Buffer.concat([one, Buffer.from('\r\n')]));
      const first = await c.until('p1');
      assert.deepEqual(first.untagged, []);
      const appendUid = /^p1 OK \[APPENDUID (\d+) (\d+)\] /.exec(first.tagged);
      assert.ok(appendUid, first.tagged);
      assert.equal(appendUid[2], '1');

      const two = Buffer.from(`Subject: ${mark} plus\r\n\r\nsecond \x00\x7f bytes\r\n`, 'latin1');
      c.write(Buffer.concat([Buffer.from(`p2 APPEND Drafts {${two.length}+}\r\n`), two, Buffer.from('\r\n')]));
      const second = await c.until('p2');
      assert.deepEqual(second.untagged, [], 'no "+" for a non-synchronising literal');
      assert.equal(second.tagged, `p2 OK [APPENDUID ${appendUid[1]} 2] APPEND completed`);

      // Two literals in one command: a quoted date as a literal, then the message.
      const date = '03-Feb-2025 04:05:06 +0000';
      const three = Buffer.from(`Subject: ${mark} two literals\r\n\r\nthird\r\n`);
      c.write(Buffer.concat([Buffer.from(`p3 APPEND Drafts (\\Seen) {${date.length}+}\r\n${date} {${three.length}+}\r\n`), three, Buffer.from('\r\n')]));
      assert.equal((await c.until('p3')).tagged, `p3 OK [APPENDUID ${appendUid[1]} 3] APPEND completed`);

      const missing = await c.command('p4 APPEND NoSuchFolder {5+}\r\nhello');
      assert.match(missing.tagged, /^p4 NO \[TRYCREATE\] /);

      const files = readdirSync(join(maildir, '.Drafts', 'cur')).sort();
      assert.equal(files.length, 3, JSON.stringify(files));
      const byContent = new Map(files.map((f) => [readFileSync(join(maildir, '.Drafts', 'cur', f)).toString('latin1'), f]));
      const lf = (b: Buffer) => b.toString('latin1').replace(/\r\n/g, '\n');
      assert.match(byContent.get(lf(one)) ?? '', /:2,D$/, 'first: stored with LF, flag D');
      assert.match(byContent.get(lf(two)) ?? '', /:2,$/, 'second: stored exactly, NUL and DEL included');
      assert.match(byContent.get(lf(three)) ?? '', /:2,S$/);

      assert.match((await c.command('p5 SELECT Drafts')).tagged, /^p5 OK /);
      const fetched = await c.command('p6 UID FETCH 1:3 (BODY.PEEK[] INTERNALDATE)');
      assert.equal(fetched.untagged.length, 3, JSON.stringify(fetched.untagged));
      const expected = [[1, one, '" 2-Jan-2025 02:04:05 +0000"'], [2, two, null], [3, three, '" 3-Feb-2025 04:05:06 +0000"']] as const;
      for (const [i, [uid, bytes, internal]] of expected.entries()) {
        const line = fetched.untagged[i]!;
        assert.ok(line.startsWith(`* ${i + 1} FETCH (UID ${uid} `), line.slice(0, 80));
        assert.ok(line.includes(`BODY[] {${bytes.length}}\r\n${bytes.toString('latin1')}`), `message ${uid} read back byte for byte`);
        if (internal !== null) assert.ok(line.includes(`INTERNALDATE ${internal}`), `${uid}: ${JSON.stringify(line)}`);
      }
    } finally {
      c.close();
    }
  });
});
