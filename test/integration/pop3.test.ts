// POP3 (RFC 1939, CAPA, STLS, AUTH PLAIN) over the Maildirs SMTP delivers into: Python's poplib as
// the mail client, raw sockets for what a client library would not send. Retrieval byte for byte
// (dot-stuffing, CRLF), UIDL stability, DELE/RSET/QUIT and maildirsize, one session per mailbox,
// logins and their refusals, the STLS injection, hostile input, CAPA and the failed-login lockout.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listDir, maildirsize, sizeTag, uniqueOf } from '../harness/maildir.ts';
import { connectRaw, RawConnection } from '../harness/raw-connection.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { sleep } from '../harness/ports.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { marker, sendOnce, simpleMessage, type StoredMessage, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };

// ---- Python's poplib ---------------------------------------------------------------------------

/** Common to every script: imports, an SSL context that does not verify, helpers; `out` is printed as JSON. */
const PRELUDE = `
import json, os, poplib, ssl, sys
PORT = int(os.environ['POP_PORT'])
def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def s(x):
    return x.decode('latin1') if isinstance(x, bytes) else x
def plain():
    return poplib.POP3('127.0.0.1', PORT, timeout=10)
def stls():
    p = plain()
    p.stls(ctx())
    return p
def attempt(fn):
    try:
        return {'ok': s(fn())}
    except poplib.error_proto as e:
        return {'err': s(e.args[0])}
def caps(p):
    return {s(k): [s(v) for v in vals] for k, vals in p.capa().items()}
def long(r):
    return {'resp': s(r[0]), 'lines': [s(l) for l in r[1]], 'octets': r[2]}
def uidls(p):
    return {s(l).split(' ')[1]: int(s(l).split(' ')[0]) for l in p.uidl()[1]}
out = {}
`;

/** What a script printed: parsed JSON, checked field by field by the assertions. */
type Json = any;

/** Runs PRELUDE + `script` with python3; env values reach it as os.environ; returns the printed `out`. */
function py(script: string, env: Record<string, string | number>): Promise<Json> {
  const full = `${PRELUDE}\n${script}\nprint(json.dumps(out))\n`;
  const vars = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', full], { env: { ...process.env, ...vars }, timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`python3 failed: ${err.message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? ''));
      } catch {
        reject(new Error(`python3 printed no JSON:\n${stdout}\n--- stderr\n${stderr}`));
      }
    });
  });
}

// ---- a raw POP3 client -------------------------------------------------------------------------

/** Exact bytes out (latin1), lines in; STLS switches the same TCP connection to TLS. */
class Pop3Raw extends RawConnection {
  static async open(port: number, implicitTls = false): Promise<Pop3Raw> {
    return new Pop3Raw(await connectRaw(port, { tls: implicitTls }));
  }

  /** One line, without its CRLF. */
  line(timeoutMs = 5000): Promise<string> {
    return this.waitFor('line', () => {
      const at = this.buffer.indexOf('\r\n');
      if (at < 0) return null;
      const line = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      return line;
    }, timeoutMs);
  }

  async command(line: string, timeoutMs = 5000): Promise<string> {
    this.write(`${line}\r\n`);
    return this.line(timeoutMs);
  }

  /** The lines of a multi-line answer up to the "." (not included), as sent: still dot-stuffed. */
  async multiline(timeoutMs = 5000): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.line(timeoutMs);
      if (line === '.') return lines;
      lines.push(line);
    }
  }

  /** A command with a multi-line answer: the status line, then the body lines. */
  async multi(line: string): Promise<{ status: string; lines: string[] }> {
    const status = await this.command(line);
    return { status, lines: status.startsWith('+OK') ? await this.multiline() : [] };
  }
}

/** Greeting, STLS, TLS handshake: a raw session ready for USER/PASS or AUTH inside TLS. */
async function stlsSession(port: number): Promise<Pop3Raw> {
  const c = await Pop3Raw.open(port);
  assert.match(await c.line(), /^\+OK /);
  assert.match(await c.command('STLS'), /^\+OK/);
  await c.startTls();
  return c;
}

/** A raw STLS session logged in with USER/PASS. */
async function loggedIn(port: number, user: string, pass: string): Promise<Pop3Raw> {
  const c = await stlsSession(port);
  assert.match(await c.command(`USER ${user}`), /^\+OK/);
  const reply = await c.command(`PASS ${pass}`);
  assert.match(reply, /^\+OK /, `PASS for ${user}`);
  return c;
}

const plainResponse = (authz: string, user: string, pass: string) => Buffer.from(`${authz}\0${user}\0${pass}`).toString('base64');

// ---- Maildir helpers ---------------------------------------------------------------------------

/** Delivers a message to <user>@example.org over SMTP and waits for it in new/. */
async function deliver(server: TestServer, user: string, subject: string, body = 'hello\r\n'): Promise<StoredMessage> {
  const result = await sendOnce(server.smtpPort, 'sender@outside.test', [`${user}@example.org`], simpleMessage(subject, body));
  assert.equal(result.end?.code, 250, `SMTP delivery to ${user}: ${JSON.stringify(result.end?.raw ?? result)}`);
  const [stored] = await waitForMessages(server.maildir(user), subject, 1, 10_000);
  return stored!;
}

/** The stored (LF) text as a client sees it: CRLF line ends. */
const wire = (text: string) => text.replace(/\n/g, '\r\n');


describe('pop3', () => {
  let slapd: Slapd;
  /** STLS and POP3S, no plaintext login anywhere: TLS first, also on loopback. */
  let server: TestServer;
  /** pop3.allowPlaintextAuthOnLoopback: USER/PASS in the clear from 127.0.0.1. */
  let open: TestServer;
  /** limits.authFailuresPerLogin 2. */
  let tight: TestServer;
  let pop3: number;
  let pop3s: number;

  before(async () => {
    slapd = await startSlapd();
    server = await startServer(slapd, { smtp: { tls: TLS }, listen: { pop3: '127.0.0.1:0', pop3s: '127.0.0.1:0' } });
    pop3 = server.running.ports.pop3!;
    pop3s = server.running.ports.pop3s!;
    open = await startServer(slapd, { smtp: { tls: TLS }, listen: { pop3: '127.0.0.1:0' }, pop3: { allowPlaintextAuthOnLoopback: true } });
    tight = await startServer(slapd, {
      smtp: { tls: TLS }, listen: { pop3: '127.0.0.1:0' },
      limits: { authFailuresPerLogin: 2, authFailuresPerIp: 100, lockoutSeconds: 60 },
    });
  });
  after(async () => {
    await server?.stop();
    await open?.stop();
    await tight?.stop();
    await slapd?.stop();
  });

  test('poplib over STLS: login, STAT/LIST/UIDL, RETR gives the delivered bytes (CRLF, dot lines unstuffed), TOP n 2', async () => {
    const subject = marker('retr');
    // SMTP dot-stuffing: "..hidden" on the SMTP wire is ".hidden" in the message.
    const stored = await deliver(server, 'alice', subject, 'first line\r\n..hidden line\r\n...two dots\r\nthird\r\nfourth\r\n');
    assert.match(stored.text, /\n\.hidden line\n\.\.two dots\n/, 'stored with SMTP dot-stuffing undone');
    const size = sizeTag(stored.name, 'W');
    assert.equal(size, Buffer.byteLength(wire(stored.text), 'latin1'), ',W= is the size with CRLF');

    const r = await py(`
p = stls()
out['user'] = s(p.user(os.environ['U']))
out['pass'] = s(p.pass_(os.environ['P']))
out['stat'] = list(p.stat())
out['list'] = long(p.list())
out['uidl'] = long(p.uidl())
out['list1'] = s(p.list(1))
out['uidl1'] = s(p.uidl(1))
out['retr'] = long(p.retr(1))
out['top'] = long(p.top(1, 2))
out['cipher'] = p.sock.version()
out['quit'] = s(p.quit())
`, { POP_PORT: pop3, U: 'alice', P: 'Alice-pw-1' });
    assert.match(r.user, /^\+OK/);
    assert.match(r.pass, /^\+OK alice has 1 message\(s\) \(\d+ octets\)$/);
    assert.match(r.cipher, /^TLSv1\.[23]$/);
    assert.deepEqual(r.stat, [1, size]);
    assert.deepEqual(r.list.lines, [`1 ${size}`]);
    assert.equal(r.list1, `+OK 1 ${size}`);
    const uid = uniqueOf(stored.name);
    assert.deepEqual(r.uidl.lines, [`1 ${uid}`]);
    assert.equal(r.uidl1, `+OK 1 ${uid}`);

    assert.equal(r.retr.resp, `+OK ${size} octets`);
    const retrieved = r.retr.lines.map((l: string) => `${l}\r\n`).join('');
    assert.equal(retrieved, wire(stored.text), 'RETR returns the stored message with CRLF line ends');
    assert.ok(retrieved.endsWith('Subject: ' + subject + '\r\n\r\nfirst line\r\n.hidden line\r\n..two dots\r\nthird\r\nfourth\r\n'), retrieved);
    assert.equal(r.retr.octets, size, 'octets received (after unstuffing) equal the size announced');
    assert.ok(r.retr.lines.includes('.hidden line') && r.retr.lines.includes('..two dots'));

    const [header] = wire(stored.text).split('\r\n\r\n');
    assert.deepEqual(r.top.lines, [...header!.split('\r\n'), '', 'first line', '.hidden line'], 'TOP 1 2: the header, the empty line, 2 body lines');
    assert.match(r.quit, /^\+OK .*\(0 message\(s\) deleted\)/);

    // On the wire (raw socket): dot-stuffed, and the end is CRLF "." CRLF.
    const c = await loggedIn(pop3, 'alice', 'Alice-pw-1');
    try {
      c.write('RETR 1\r\n');
      assert.equal(await c.line(), `+OK ${size} octets`);
      const lines = await c.multiline();
      assert.ok(lines.includes('..hidden line'), `stuffed on the wire: ${JSON.stringify(lines)}`);
      assert.ok(lines.includes('...two dots'));
      assert.equal(lines.map((l) => `${l}\r\n`).join('').replace(/^\./gm, ''), retrieved);
      assert.match(await c.command('QUIT'), /^\+OK/);
    } finally {
      c.close();
    }
  });

  test('a message over 256 KiB (streamed) with a dot line on a 64 KiB read boundary is sent whole and exact', async () => {
    // Messages over 256 KiB are streamed from the file in 64 KiB chunks. 60 lines of 999 "a"s, then
    // lines "." (".." over SMTP) covering the bytes around 65536 whatever the length of the header the
    // server adds, then more filler; a 3-byte line first in one of two copies makes one of them
    // (usually at the first try) have a line starting with "." exactly at 65536, the first chunk's end.
    const filler = (lines: number) => `${'a'.repeat(999)}\r\n`.repeat(lines);
    let stored: StoredMessage | null = null;
    for (let round = 0; round < 3 && stored === null; round++) {
      const candidates = await Promise.all(['', 'xy\r\n'].map((prefix) =>
        deliver(server, 'bob', marker('big'), `${prefix}${filler(60)}${'..\r\n'.repeat(4000)}${filler(210)}end\r\n`)));
      stored = candidates.find((m) => m.text[65535] === '\n' && m.text[65536] === '.') ?? null;
    }
    assert.ok(stored !== null, 'no delivered message had a line start at 65536');
    assert.ok(stored.text.length > 256 * 1024 + 1000, `large enough to be streamed: ${stored.text.length}`);
    const r = await py(`
p = stls()
p.user(os.environ['U'])
p.pass_(os.environ['P'])
n = uidls(p)[os.environ['UID']]
out['retr'] = long(p.retr(n))
p.quit()
`, { POP_PORT: pop3, U: 'bob', P: 'Bob-pw-2', UID: uniqueOf(stored.name) });
    assert.equal(r.retr.resp, `+OK ${sizeTag(stored.name, 'W')} octets`);
    assert.equal(r.retr.octets, sizeTag(stored.name, 'W'));
    const retrieved: string = r.retr.lines.map((l: string) => `${l}\r\n`).join('');
    assert.ok(retrieved === wire(stored.text), `RETR differs from the stored message (lengths ${retrieved.length} vs ${wire(stored.text).length})`);
  });

  test('POP3S (implicit TLS): poplib.POP3_SSL logs in and retrieves; CAPA there offers USER and SASL PLAIN, not STLS', async () => {
    const subject = marker('pop3s');
    const stored = await deliver(server, 'bob', subject);
    const r = await py(`
p = poplib.POP3_SSL('127.0.0.1', PORT, context=ctx(), timeout=10)
out['welcome'] = s(p.getwelcome())
out['version'] = p.sock.version()
out['capa'] = caps(p)
out['pass'] = (p.user(os.environ['U']), s(p.pass_(os.environ['P'])))[1]
n = uidls(p)[os.environ['UID']]
out['retr'] = long(p.retr(n))
out['quit'] = s(p.quit())
`, { POP_PORT: pop3s, U: 'bob', P: 'Bob-pw-2', UID: uniqueOf(stored.name) });
    assert.match(r.welcome, /^\+OK mx1\.example\.org /);
    assert.match(r.version, /^TLSv1\.[23]$/);
    assert.ok('USER' in r.capa && 'SASL' in r.capa, JSON.stringify(r.capa));
    assert.deepEqual(r.capa.SASL, ['PLAIN']);
    assert.ok(!('STLS' in r.capa), 'no STLS on an implicit-TLS port');
    assert.match(r.pass, /^\+OK bob has \d+ message/);
    assert.equal(r.retr.lines.map((l: string) => `${l}\r\n`).join(''), wire(stored.text));
    assert.match(r.quit, /^\+OK/);
  });

  test('UIDLs are unique and stable across sessions; a new message gets a new one; listed messages move from new/ to cur/', async () => {
    const maildir = server.maildir('dave');
    const first = await Promise.all([deliver(server, 'dave', marker('u1')), deliver(server, 'dave', marker('u2'))]);
    assert.equal(listDir(join(maildir, 'new')).length, 2);
    const session = `
p = stls()
p.user(os.environ['U'])
p.pass_(os.environ['P'])
out['uidl'] = long(p.uidl())['lines']
out['subjects'] = {}
for line in out['uidl']:
    n, uid = line.split(' ')
    for h in p.top(int(n), 0)[1]:
        if h.lower().startswith(b'subject: '):
            out['subjects'][s(h[9:])] = uid
out['quit'] = s(p.quit())
`;
    const env = { POP_PORT: pop3, U: 'dave', P: 'Dave-pw-4' };
    const one = await py(session, env);
    assert.equal(one.uidl.length, 2, JSON.stringify(one));
    assert.deepEqual(listDir(join(maildir, 'new')), [], 'new/ emptied by the listing');
    assert.deepEqual(listDir(join(maildir, 'cur')), first.map((m) => `${m.name}:2,`).sort(), 'moved to cur/ with an empty info');
    for (const m of first) assert.equal(one.subjects[/^Subject: (.*)$/m.exec(m.header)![1]!], uniqueOf(m.name));

    const third = await deliver(server, 'dave', marker('u3'));
    const two = await py(session, env);
    const thirdSubject = /^Subject: (.*)$/m.exec(third.header)![1]!;
    assert.equal(two.uidl.length, 3);
    for (const [subject, uid] of Object.entries(one.subjects)) assert.equal(two.subjects[subject], uid, `${subject} kept its UIDL`);
    assert.equal(two.subjects[thirdSubject], uniqueOf(third.name));
    const uids = two.uidl.map((l: string) => l.split(' ')[1]);
    assert.equal(new Set(uids).size, 3, `unique: ${uids}`);
    for (const uid of uids) assert.match(uid, /^[\x21-\x7e]{1,70}$/);
    assert.ok(!Object.values(one.subjects).includes(two.subjects[thirdSubject]), 'the new message has a new UIDL');
    // A third session gives the very same list.
    assert.deepEqual((await py(session, env)).uidl, two.uidl);
  });

  test('DELE+QUIT removes the file and maildirsize gets "-<bytes> -1"; DELE+RSET+QUIT and DELE+dropped connection keep it', async () => {
    const maildir = server.maildir('frank');
    const [a, b, c] = (await Promise.all(['da', 'db', 'dc'].map((m) => deliver(server, 'frank', marker(m))))) as [StoredMessage, StoredMessage, StoredMessage];
    const start = maildirsize(maildir);
    assert.match(start.lines[0]!, /^1048576S,1000C$/, 'frank has a quota: maildirsize exists');
    assert.equal(start.count, 3);
    const cur = (m: StoredMessage) => join(maildir, 'cur', `${m.name}:2,`);
    const script = `
p = stls()
p.user(os.environ['U'])
p.pass_(os.environ['P'])
n = uidls(p)[os.environ['UID']]
out['dele'] = s(p.dele(n))
out['stat'] = list(p.stat())
if os.environ['MODE'] == 'rset':
    out['rset'] = s(p.rset())
    out['stat_after_rset'] = list(p.stat())
out['quit'] = s(p.quit())
`;
    const env = { POP_PORT: pop3, U: 'frank', P: 'Frank-pw-6' };

    const deleted = await py(script, { ...env, UID: uniqueOf(a.name), MODE: 'quit' });
    assert.match(deleted.dele, /^\+OK/);
    assert.equal(deleted.stat[0], 2, 'STAT leaves the deleted message out');
    assert.match(deleted.quit, /^\+OK .*\(1 message\(s\) deleted\)/);
    assert.ok(!existsSync(cur(a)), 'the file is gone');
    assert.ok(existsSync(cur(b)) && existsSync(cur(c)), 'the others stay');
    const afterQuit = maildirsize(maildir);
    assert.equal(afterQuit.lines.at(-1), `-${sizeTag(a.name, 'S')} -1`);
    assert.equal(sizeTag(a.name, 'S'), Buffer.byteLength(a.text, 'latin1'));
    assert.equal(afterQuit.count, start.count - 1);
    assert.equal(afterQuit.bytes, start.bytes - sizeTag(a.name, 'S'));

    const reset = await py(script, { ...env, UID: uniqueOf(b.name), MODE: 'rset' });
    assert.match(reset.rset, /^\+OK/);
    assert.equal(reset.stat_after_rset[0], 2);
    assert.match(reset.quit, /^\+OK .*\(0 message\(s\) deleted\)/);
    assert.ok(existsSync(cur(b)), 'RSET undid the DELE');
    assert.deepEqual(maildirsize(maildir).lines, afterQuit.lines);

    const dropped = await loggedIn(pop3, 'frank', 'Frank-pw-6');
    const list = await dropped.multi('UIDL');
    const n = list.lines.find((l) => l.endsWith(` ${uniqueOf(c.name)}`))!.split(' ')[0];
    assert.match(await dropped.command(`DELE ${n}`), /^\+OK/);
    dropped.close(); // no QUIT
    // The mailbox is released once the server sees the close; a new session sees both messages.
    const again = await waitFor('frank logs in again after the dropped session', async () => {
      const r = await py('p = stls()\np.user(os.environ["U"])\nout["pass"] = attempt(lambda: p.pass_(os.environ["P"]))\nif "ok" in out["pass"]:\n    out["stat"] = list(p.stat())\n    p.quit()', env);
      return 'ok' in r.pass ? r : null;
    });
    assert.equal(again.stat[0], 2);
    assert.ok(existsSync(cur(c)), 'a DELE without QUIT removes nothing');
    assert.deepEqual(maildirsize(maildir).lines, afterQuit.lines);
  });

  test('a second session on an open mailbox gets -ERR [IN-USE] (also across POP3 and POP3S); other mailboxes are not affected', async () => {
    const holder = await Pop3Raw.open(pop3s, true);
    try {
      assert.match(await holder.line(), /^\+OK /);
      assert.match(await holder.command('USER erin'), /^\+OK/);
      assert.match(await holder.command('PASS Erin-pw-5'), /^\+OK erin has/);
      const second = await py(`
p = stls()
p.user('erin')
out['erin'] = attempt(lambda: p.pass_('Erin-pw-5'))
out['stat'] = attempt(lambda: p.stat())
p.quit()
q = stls()
q.user('alice')
out['alice'] = attempt(lambda: q.pass_('Alice-pw-1'))
q.quit()
`, { POP_PORT: pop3 });
      assert.match(second.erin.err ?? '', /^-ERR \[IN-USE\] /, JSON.stringify(second));
      assert.ok('err' in second.stat, 'the refused session is not logged in');
      assert.match(second.alice.ok ?? '', /^\+OK alice has/);
      assert.match(await holder.command('QUIT'), /^\+OK/);
    } finally {
      holder.close();
    }
    const later = await py("p = stls()\np.user('erin')\nout['erin'] = attempt(lambda: p.pass_('Erin-pw-5'))\np.quit()", { POP_PORT: pop3 });
    assert.match(later.erin.ok ?? '', /^\+OK erin has/, 'free again after QUIT');
  });

  test('logins refused: wrong password (-ERR [AUTH]), empty password, NoAccess account; the session can still log in afterwards', async () => {
    const r = await py(`
p = stls()
p.user('alice')
out['wrong'] = attempt(lambda: p.pass_('Alice-pw-WRONG'))
out['stat_refused'] = attempt(lambda: p.stat())
p.user('alice')
out['right'] = attempt(lambda: p.pass_('Alice-pw-1'))
p.quit()
q = stls()
q.user('ivan')
out['ivan'] = attempt(lambda: q.pass_('Ivan-pw-9'))
out['ivan_stat'] = attempt(lambda: q.stat())
q.quit()
`, { POP_PORT: pop3 });
    assert.match(r.wrong.err ?? '', /^-ERR \[AUTH\] /, JSON.stringify(r));
    assert.match(r.stat_refused.err ?? '', /^-ERR/);
    assert.match(r.right.ok ?? '', /^\+OK alice has/);
    assert.match(r.ivan.err ?? '', /^-ERR \[AUTH\] /);
    assert.match(r.ivan_stat.err ?? '', /^-ERR/);

    const c = await stlsSession(pop3);
    try {
      assert.match(await c.command('USER alice'), /^\+OK/);
      assert.match(await c.command('PASS '), /^-ERR \[AUTH\] /, 'empty password');
      assert.match(await c.command('STAT'), /^-ERR/);
    } finally {
      c.close();
    }
    // On the other server (its own failure counters): "PASS" with no argument, and AUTH PLAIN with an empty password.
    const o = await Pop3Raw.open(open.running.ports.pop3!);
    try {
      await o.line();
      assert.match(await o.command('USER alice'), /^\+OK/);
      assert.match(await o.command('PASS'), /^-ERR \[AUTH\] /, 'PASS without a password');
      assert.match(await o.command(`AUTH PLAIN ${plainResponse('', 'alice', '')}`), /^-ERR \[AUTH\] /, 'AUTH PLAIN, empty password');
      assert.match(await o.command('STAT'), /^-ERR/);
    } finally {
      o.close();
    }
  });

  test('before STLS: USER, PASS and AUTH PLAIN are refused (use STLS); with pop3.allowPlaintextAuthOnLoopback they work from 127.0.0.1', async () => {
    const c = await Pop3Raw.open(pop3);
    try {
      assert.match(await c.line(), /^\+OK /);
      assert.match(await c.command('USER alice'), /^-ERR .*STLS/);
      assert.match(await c.command('PASS Alice-pw-1'), /^-ERR/);
      assert.match(await c.command(`AUTH PLAIN ${plainResponse('', 'alice', 'Alice-pw-1')}`), /^-ERR .*STLS/);
      assert.match(await c.command('AUTH PLAIN'), /^-ERR .*STLS/, 'no "+ " continuation in the clear');
      assert.match(await c.command('STAT'), /^-ERR/, 'not logged in');
      assert.match(await c.command('QUIT'), /^\+OK/);
    } finally {
      c.close();
    }
    const r = await py(`
p = plain()
p.user('alice')
out['pass'] = attempt(lambda: p.pass_('Alice-pw-1'))
out['stat'] = list(p.stat())
p.quit()
`, { POP_PORT: open.running.ports.pop3! });
    assert.match(r.pass.ok ?? '', /^\+OK alice has/, JSON.stringify(r));
    const a = await Pop3Raw.open(open.running.ports.pop3!);
    try {
      await a.line();
      assert.match(await a.command(`AUTH PLAIN ${plainResponse('', 'alice', 'Alice-pw-1')}`), /^\+OK alice has/);
      assert.match(await a.command('QUIT'), /^\+OK/);
    } finally {
      a.close();
    }
  });

  test('AUTH PLAIN after STLS: with an initial response, after the "+ " continuation, with authzid = authcid; "*" cancels', async () => {
    const initial = await stlsSession(pop3);
    try {
      assert.match(await initial.command(`AUTH PLAIN ${plainResponse('', 'alice', 'Alice-pw-1')}`), /^\+OK alice has/);
      assert.match(await initial.command('STAT'), /^\+OK \d+ \d+$/);
      assert.match(await initial.command('QUIT'), /^\+OK/);
    } finally {
      initial.close();
    }
    const continued = await stlsSession(pop3);
    try {
      assert.equal(await continued.command('AUTH PLAIN'), '+ ');
      assert.match(await continued.command(plainResponse('alice', 'alice', 'Alice-pw-1')), /^\+OK alice has/);
      assert.match(await continued.command('QUIT'), /^\+OK/);
    } finally {
      continued.close();
    }
    const cancelled = await stlsSession(pop3);
    try {
      assert.equal(await cancelled.command('AUTH PLAIN'), '+ ');
      assert.match(await cancelled.command('*'), /^-ERR/);
      assert.match(await cancelled.command('STAT'), /^-ERR/, 'not logged in after "*"');
      assert.match(await cancelled.command(`AUTH PLAIN ${plainResponse('bob', 'alice', 'Alice-pw-1')}`), /^-ERR/, 'authzid other than authcid');
      assert.match(await cancelled.command('AUTH PLAIN !!notbase64!!'), /^-ERR/);
      assert.match(await cancelled.command('AUTH CRAM-MD5'), /^-ERR/);
      assert.match(await cancelled.command('USER alice'), /^\+OK/);
      assert.match(await cancelled.command('PASS Alice-pw-1'), /^\+OK alice has/, 'the session still logs in');
      assert.match(await cancelled.command('QUIT'), /^\+OK/);
    } finally {
      cancelled.close();
    }
  });

  test('STLS injection: a command pipelined after STLS in the same write is discarded, never run inside TLS', async () => {
    const c = await Pop3Raw.open(pop3);
    try {
      assert.match(await c.line(), /^\+OK /);
      c.write('STLS\r\nUSER bob\r\n');
      assert.match(await c.line(), /^\+OK/);
      await sleep(100);
      assert.equal(c.unread, '', 'nothing answered the injected USER in the clear');
      await c.startTls();
      assert.equal(await c.command('PASS Bob-pw-2'), '-ERR USER first', 'the injected USER was thrown away');
      await sleep(150);
      assert.equal(c.unread, '', 'one reply only');
      assert.match(await c.command('USER bob'), /^\+OK/);
      assert.match(await c.command('PASS Bob-pw-2'), /^\+OK bob has/);
      assert.match(await c.command('QUIT'), /^\+OK/);
    } finally {
      c.close();
    }
  });

  test('malformed input: over-long lines, unknown commands, bad message numbers, commands before login get -ERR; the server keeps working', async () => {
    const port = open.running.ports.pop3!;
    await deliver(open, 'bob', marker('mal'));
    const c = await Pop3Raw.open(port);
    try {
      assert.match(await c.line(), /^\+OK /);
      for (const cmd of ['STAT', 'LIST', 'UIDL', 'RETR 1', 'DELE 1', 'TOP 1 1', 'RSET', 'NOOP', 'FOO', 'APOP bob 0123456789abcdef0123456789abcdef', '']) {
        assert.match(await c.command(cmd), /^-ERR/, `${JSON.stringify(cmd)} before login`);
      }
      // 300 octets (a CAPA that would be answered +OK) and the next command in one write: the long line
      // is refused, the next one answered (or the connection closed).
      c.write(`CAPA ${'x'.repeat(300)}\r\nCAPA\r\n`);
      assert.match(await c.line(), /^-ERR/, 'an over-long line');
      const next = await c.line().catch(() => null);
      if (next !== null) {
        assert.equal(next, '+OK capability list follows');
        assert.ok((await c.multiline()).includes('UIDL'));
        c.write('\x00\xff\x01garbage\r\n');
        assert.match(await c.line(), /^-ERR/);
        assert.match(await c.command('USER bob'), /^\+OK/);
        assert.match(await c.command('PASS Bob-pw-2'), /^\+OK bob has 1 message/);
        for (const cmd of ['RETR 0', 'RETR 2', 'RETR 999', 'RETR abc', 'RETR', 'RETR -1', 'RETR 1.0', 'RETR 99999999999', 'TOP 1', 'TOP 1 x', 'TOP 999 1', 'TOP x 1', 'DELE 0', 'DELE 2', 'LIST 9', 'UIDL 0', 'FOO', 'STLS', 'PASS x', 'USER bob']) {
          assert.match(await c.command(cmd), /^-ERR/, `${JSON.stringify(cmd)} after login`);
        }
        assert.match(await c.command('STAT'), /^\+OK 1 \d+$/, 'the session is intact');
        assert.match(await c.command('DELE 1'), /^\+OK/);
        assert.match(await c.command('RETR 1'), /^-ERR/, 'RETR of a deleted message');
        assert.match(await c.command('DELE 1'), /^-ERR/, 'DELE twice');
        assert.equal(await c.command('STAT'), '+OK 0 0');
        assert.deepEqual((await c.multi('LIST')).lines, []);
        assert.match(await c.command('RSET'), /^\+OK/);
        assert.match(await c.command('QUIT'), /^\+OK .*\(0 message\(s\) deleted\)/);
      }
    } finally {
      c.close();
    }
    // 1000 octets and no line end: -ERR, then the connection is closed (or the line refused).
    const flood = await Pop3Raw.open(port);
    try {
      await flood.line();
      flood.write('A'.repeat(1000));
      assert.match(await flood.line().catch(() => '-ERR (closed)'), /^-ERR/);
      assert.ok(await flood.waitClosed(), 'closed after an endless line');
    } finally {
      flood.close();
    }
    // Not TLS after STLS: the server closes the connection.
    const noTls = await Pop3Raw.open(port);
    try {
      await noTls.line();
      assert.match(await noTls.command('STLS'), /^\+OK/);
      noTls.write('USER bob\r\nthis is not a TLS ClientHello\r\n\r\n');
      assert.ok(await noTls.waitClosed(), 'closed after a failed handshake');
      assert.doesNotMatch(noTls.unread, /\+OK/, 'nothing after STLS was answered in the clear');
    } finally {
      noTls.close();
    }
    // Still serving, the message not deleted.
    const r = await py("p = plain()\np.user('bob')\np.pass_('Bob-pw-2')\nout['stat'] = list(p.stat())\np.quit()", { POP_PORT: port });
    assert.equal(r.stat[0], 1);
  });

  test('CAPA: TOP, UIDL, RESP-CODES, PIPELINING; STLS before TLS only; USER and SASL PLAIN only where a plaintext login is allowed', async () => {
    const r = await py(`
p = plain()
out['before'] = caps(p)
p.stls(ctx())
out['after'] = caps(p)
p.user('alice')
p.pass_('Alice-pw-1')
out['loggedin'] = caps(p)
p.quit()
`, { POP_PORT: pop3 });
    for (const cap of ['TOP', 'UIDL', 'RESP-CODES', 'PIPELINING']) {
      for (const when of ['before', 'after', 'loggedin']) assert.ok(cap in r[when], `${cap} ${when}: ${JSON.stringify(r[when])}`);
    }
    assert.ok('STLS' in r.before);
    assert.ok(!('USER' in r.before) && !('SASL' in r.before), `no plaintext login offered in the clear: ${JSON.stringify(r.before)}`);
    assert.ok(!('STLS' in r.after) && !('STLS' in r.loggedin), 'no STLS inside TLS');
    assert.ok('USER' in r.after);
    assert.deepEqual(r.after.SASL, ['PLAIN']);

    const o = await Pop3Raw.open(open.running.ports.pop3!);
    try {
      await o.line();
      const capa = await o.multi('CAPA');
      assert.equal(capa.status.slice(0, 3), '+OK');
      for (const cap of ['TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'USER', 'SASL PLAIN', 'STLS']) assert.ok(capa.lines.includes(cap), `${cap} on the loopback-plaintext server: ${JSON.stringify(capa.lines)}`);
    } finally {
      o.close();
    }
  });

  test('PIPELINING as advertised, inside TLS: batches are answered in order, also one that ends with QUIT', async () => {
    for (const [what, port, implicit] of [['STLS', pop3, false], ['POP3S', pop3s, true]] as const) {
      const c = implicit ? await Pop3Raw.open(port, true) : await stlsSession(port);
      try {
        if (implicit) assert.match(await c.line(), /^\+OK /);
        c.write('USER alice\r\nPASS Alice-pw-1\r\nSTAT\r\nUIDL\r\nNOOP\r\nRETR 999\r\n');
        assert.match(await c.line(), /^\+OK now the password/);
        const pass = await c.line();
        const count = Number(/^\+OK alice has (\d+) message/.exec(pass)?.[1] ?? NaN);
        assert.ok(count >= 1, pass);
        assert.match(await c.line(), new RegExp(`^\\+OK ${count} \\d+$`));
        assert.match(await c.line(), /^\+OK/);
        assert.equal((await c.multiline()).length, count);
        assert.equal(await c.line(), '+OK');
        assert.match(await c.line(), /^-ERR/);
        // A client that pipelines its last commands with QUIT (e.g. "DELE 1", "DELE 2", "QUIT") must get every reply.
        c.write('NOOP\r\nCAPA\r\nQUIT\r\n');
        const replies: string[] = [];
        try {
          for (;;) replies.push(await c.line(2000));
        } catch {
          // closed (or silent): what arrived is in `replies`
        }
        assert.equal(replies[0], '+OK', `${what}: ${JSON.stringify(replies)}`);
        assert.ok(replies.includes('PIPELINING') && replies.includes('.'), `${what}: the CAPA reply was cut: ${JSON.stringify(replies)}`);
        assert.match(replies.at(-1) ?? '', /^\+OK .*bye/, `${what}: the reply to QUIT is lost: ${JSON.stringify(replies)}`);
        assert.ok(await c.waitClosed(), 'closed after QUIT');
      } finally {
        c.close();
      }
    }
  });

  test('failed-login lockout: with authFailuresPerLogin 2 the third attempt, even with the right password, gets -ERR [SYS/TEMP]', async () => {
    const started = Date.now();
    const r = await py(`
p = stls()
out['tries'] = []
for pw in ['wrong-1', 'wrong-2', 'Bob-pw-2']:
    p.user('bob')
    out['tries'].append(attempt(lambda: p.pass_(pw)))
p.quit()
q = stls()
q.user('bob')
out['later'] = attempt(lambda: q.pass_('Bob-pw-2'))
out['plain'] = attempt(lambda: q._shortcmd('AUTH PLAIN ' + os.environ['BOB']))
q.user('alice')
out['alice'] = attempt(lambda: q.pass_('Alice-pw-1'))
q.quit()
`, { POP_PORT: tight.running.ports.pop3!, BOB: plainResponse('', 'bob', 'Bob-pw-2') });
    assert.match(r.tries[0].err ?? '', /^-ERR \[AUTH\] /, JSON.stringify(r));
    assert.match(r.tries[1].err ?? '', /^-ERR \[AUTH\] /);
    assert.match(r.tries[2].err ?? '', /^-ERR \[SYS\/TEMP\] /, 'locked out with the right password');
    assert.match(r.later.err ?? '', /^-ERR \[SYS\/TEMP\] /, 'in a new session too');
    assert.match(r.plain.err ?? '', /^-ERR \[SYS\/TEMP\] /, 'and through AUTH PLAIN');
    assert.match(r.alice.ok ?? '', /^\+OK alice has/, 'another login is not locked out');
    assert.ok(Date.now() - started < 5000, 'answered without long delays');
  });
});
