// What a review of the IMAP server found, kept found: a folder deleted or renamed under another
// session's feet, LIST patterns built to backtrack, UIDVALIDITY after a folder is made again within a
// second, literals before login, and too many connections from one address. Real server, raw sockets.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ImapRaw, rawLogin } from '../harness/imap.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

let slapd: Slapd;
let server: TestServer;
let port: number;

before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd, { listen: { imap: '127.0.0.1:0' }, imap: { allowPlaintextAuthOnLoopback: true, maxConnectionsPerIp: 30 } });
  port = server.running.ports.imap!;
});

after(async () => {
  await server?.stop();
  await slapd?.stop();
});

const login = () => rawLogin(port, 'alice', 'Alice-pw-1', true);
const appendCmd = (tag: string, folder: string, subject: string) => {
  const body = `Subject: ${subject}\r\n\r\nbody\r\n`;
  return `${tag} APPEND ${folder} {${Buffer.byteLength(body)}+}\r\n${body}`;
};

test('a folder deleted by another session: the selecting session keeps working, sees the messages expunged, the server stays up', async () => {
  const a = await login();
  const b = await login();
  try {
    assert.match((await b.command('b1 CREATE Doomed')).tagged, /^b1 OK/);
    for (const n of [1, 2]) assert.match((await b.command(appendCmd(`b2${n}`, 'Doomed', `doomed ${n}`))).tagged, /OK \[APPENDUID/);
    const selected = await a.command('a1 SELECT Doomed');
    assert.ok(selected.untagged.includes('* 2 EXISTS'), selected.untagged.join('\n'));
    assert.match((await b.command('b3 DELETE Doomed')).tagged, /^b3 OK/);
    // Reading the gone files: nothing for them, no crash.
    const fetched = await a.command('a2 FETCH 1:* BODY.PEEK[]');
    assert.match(fetched.tagged, /^a2 (OK|NO)/);
    const noop = await a.command('a3 NOOP');
    assert.match(noop.tagged, /^a3 OK/);
    assert.equal(noop.untagged.filter((l) => / EXPUNGE$/.test(l)).length, 2, `both messages told expunged at NOOP: ${noop.untagged.join('\n')}`);
    // Made again: a new folder with a new UIDVALIDITY, not the old object.
    assert.match((await b.command('b4 CREATE Doomed')).tagged, /^b4 OK/);
    const fresh = await b.command('b5 SELECT Doomed');
    assert.ok(fresh.untagged.includes('* 0 EXISTS'), fresh.untagged.join('\n'));
    const other = await ImapRaw.open(port);
    assert.match(await other.response(), /^\* OK/, 'the server still greets');
    other.close();
  } finally {
    a.close();
    b.close();
  }
});

test('a folder renamed away under a session in IDLE: the session is told and DONE still works', async () => {
  const a = await login();
  const b = await login();
  try {
    assert.match((await b.command('b1 CREATE Moving')).tagged, /^b1 OK/);
    assert.match((await b.command(appendCmd('b2', 'Moving', 'moving'))).tagged, /OK/);
    await a.command('a1 SELECT Moving');
    a.write('a2 IDLE\r\n');
    assert.match(await a.response(), /^\+ /);
    assert.match((await b.command('b3 RENAME Moving Moved')).tagged, /^b3 OK/);
    await new Promise((r) => setTimeout(r, 300));
    a.write('DONE\r\n');
    let line = await a.response();
    while (!line.startsWith('a2 ')) line = await a.response();
    assert.match(line, /^a2 OK/);
    assert.match((await a.command('a3 NOOP')).tagged, /^a3 OK/);
  } finally {
    a.close();
    b.close();
  }
});

test('UIDVALIDITY is never repeated for a folder deleted and made again within the same second', async () => {
  const c = await login();
  try {
    const seen = new Set<string>();
    for (let round = 0; round < 3; round++) {
      assert.match((await c.command(`c${round}a CREATE Again`)).tagged, /OK/);
      const appended = await c.command(appendCmd(`c${round}b`, 'Again', `round ${round}`));
      const validity = /APPENDUID (\d+) 1\]/.exec(appended.tagged)?.[1];
      assert.ok(validity !== undefined, appended.tagged);
      assert.ok(!seen.has(validity), `UIDVALIDITY ${validity} used twice`);
      seen.add(validity);
      assert.match((await c.command(`c${round}c DELETE Again`)).tagged, /OK/);
    }
  } finally {
    c.close();
  }
});

test('LIST with a pattern built to backtrack answers at once', async () => {
  const c = await login();
  try {
    assert.match((await c.command(`l1 CREATE ${'a'.repeat(150)}`)).tagged, /OK/);
    const started = Date.now();
    const listed = await c.command(`l2 LIST "" "${'*a'.repeat(40)}b"`);
    assert.match(listed.tagged, /^l2 OK/);
    assert.ok(Date.now() - started < 2000, `LIST took ${Date.now() - started} ms`);
    const all = await c.command('l3 LIST "" "*a*"');
    assert.ok(all.untagged.some((l) => l.endsWith(`"." ${'a'.repeat(150)}`)), 'the ordinary pattern still matches');
    assert.match((await c.command(`l4 DELETE ${'a'.repeat(150)}`)).tagged, /OK/);
  } finally {
    c.close();
  }
});

test('before login a literal may be 8 KiB at most: a larger one is refused without a continuation', async () => {
  const c = await ImapRaw.open(port);
  try {
    await c.response();
    c.write('t1 LOGIN {1000000}\r\n');
    assert.match(await c.response(), /^t1 BAD \[TOOBIG\]/);
    c.write('t2 LOGIN {5}\r\n');
    assert.match(await c.response(), /^\+ /, 'a small literal still gets its continuation');
    c.write('alice {10}\r\n');
    assert.match(await c.response(), /^\+ /);
    c.write('Alice-pw-1\r\n');
    assert.match(await c.response(), /^t2 OK/);
  } finally {
    c.close();
  }
});

test('more connections from one address than imap.maxConnectionsPerIp get * BYE [UNAVAILABLE]', async () => {
  const open: ImapRaw[] = [];
  try {
    for (let i = 0; i < 30; i++) {
      const c = await ImapRaw.open(port);
      assert.match(await c.response(), /^\* OK/);
      open.push(c);
    }
    const extra = await ImapRaw.open(port);
    assert.match(await extra.response(), /^\* BYE \[UNAVAILABLE\]/);
    extra.close();
    open.pop()!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await ImapRaw.open(port);
    assert.match(await again.response(), /^\* OK/, 'a place freed is taken again');
    again.close();
  } finally {
    for (const c of open) c.close();
    // The next test connects from the same address: let the server see these go first.
    for (const c of open) await c.waitClosed();
    await new Promise((r) => setTimeout(r, 200));
  }
});

test('CREATE with a trailing separator makes the folder; LSUB lists a subscribed folder that is gone as \\Noselect', async () => {
  const c = await login();
  try {
    assert.match((await c.command('s1 CREATE Parent.')).tagged, /^s1 OK/);
    const listed = await c.command('s2 LIST "" Parent');
    assert.ok(listed.untagged.some((l) => l.endsWith('"." Parent')), listed.untagged.join('\n'));
    assert.match((await c.command('s3 SUBSCRIBE Parent')).tagged, /OK/);
    assert.match((await c.command('s4 DELETE Parent')).tagged, /OK/);
    assert.match((await c.command('s5 SUBSCRIBE Ghost')).tagged, /OK/);
    const lsub = await c.command('s6 LSUB "" Ghost');
    assert.deepEqual(lsub.untagged, ['* LSUB (\\Noselect) "." Ghost']);
  } finally {
    c.close();
  }
});
