// IMAP (RFC 3501 with IDLE, UIDPLUS, MOVE, SPECIAL-USE, QUOTA) over the Maildirs SMTP delivers into:
// imapflow and Python's imaplib as the mail clients, a raw socket where the exact lines matter.
// Folders and flags as Maildir++ directories and file names, bodies byte for byte, UIDPLUS maps,
// maildirsize, the directory's quota, IDLE wake-ups, several sessions on one mailbox, UID stability.
// Hostile input, login refusals and literals are in imap-safety.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ImapFlow, StatusObject, StatusQuery } from 'imapflow';
import { done, flow, type ImapRaw, imaplib, rawLogin } from '../harness/imap.ts';
import { curName, curNames, folderDir, listDir, maildirsize, sizeTag, type Stored, uniqueOf, waitForStored, deliverSimple, deliverTo } from '../harness/maildir.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { sleep } from '../harness/ports.ts';
import { REPO_ROOT, sshaHash, startSlapd, type Slapd } from '../harness/slapd.ts';
import { marker, waitFor } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };

// ---- test users ---------------------------------------------------------------------------------

/** One user per test, so no test depends on what another left in a mailbox. Password: "<name>-Pw-1". */
const USERS: Record<string, { quota?: [number, number] }> = {
  lister: {}, fetcher: {}, searcher: {}, flagger: {}, copier: { quota: [10_485_760, 100] }, drafter: {},
  folderer: { quota: [10_485_760, 100] }, statuser: {}, idler: {}, sharer: {}, pyplain: {}, pytls: {}, secure: {}, orderer: {},
};
const pw = (user: string) => `${user}-Pw-1`;

function usersLdif(): string {
  return Object.entries(USERS).map(([name, { quota }]) => [
    `dn: uid=${name},ou=people,dc=example,dc=org`,
    'objectClass: inetOrgPerson', 'objectClass: qmailUser',
    `cn: ${name}`, `sn: ${name}`, `uid: ${name}`, `mail: ${name}@example.org`,
    `userPassword: ${sshaHash(pw(name))}`, `mailMessageStore: example.org/${name}/`, 'accountStatus: active',
    ...(quota ? [`mailQuotaSize: ${quota[0]}`, `mailQuotaCount: ${quota[1]}`] : []),
    '',
  ].join('\n')).join('\n');
}

// ---- messages and Maildir files -----------------------------------------------------------------


/** The stored (LF) bytes as a client sees them: CRLF line ends. */
const wire = (text: string) => Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1');







/** The header of ldapmta-uidlist: uidvalidity and uidnext. */
function uidlistHeader(dir: string): { uidValidity: number; uidNext: number } {
  const m = /^ldapmta-uidlist 1 (\d+) (\d+)$/m.exec(readFileSync(join(dir, 'ldapmta-uidlist'), 'utf8'));
  assert.ok(m, `ldapmta-uidlist header in ${dir}`);
  return { uidValidity: Number(m[1]), uidNext: Number(m[2]) };
}

// ---- a multipart message ------------------------------------------------------------------------

const PDF = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x80]), Buffer.from('\nfake numbers\n%%EOF\n')]);
/** The text part's body: 8-bit UTF-8, two lines, as a client gets it (CRLF). */
const TEXT_PART = Buffer.from('Grüße aus München: die Zahlen für März sind angehängt.\r\nZweite Zeile.\r\n', 'utf8');

/** multipart/mixed with an 8-bit text part and a base64 PDF attachment; `mark` is in the Message-ID. */
function multipartMessage(mark: string): Buffer {
  const base64 = PDF.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  return Buffer.concat([
    Buffer.from([
      'From: "Sender Person" <sender@outside.test>',
      'To: Fetcher <fetcher@example.org>',
      'Cc: bob@example.org',
      'Subject: =?UTF-8?Q?Quartalszahlen_f=C3=BCr_M=C3=A4rz?=',
      'Date: Tue, 03 Mar 2026 10:00:00 +0100',
      `Message-ID: <${mark}@outside.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b0undary"',
      '',
      'This is a multi-part message in MIME format.',
      '--b0undary',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      '',
    ].join('\r\n'), 'latin1'),
    TEXT_PART,
    Buffer.from([
      '',
      '--b0undary',
      'Content-Type: application/pdf; name="numbers.pdf"',
      'Content-Disposition: attachment; filename="numbers.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      `${base64}`,
      '--b0undary--',
      '.',
      '',
    ].join('\r\n'), 'latin1'),
  ]);
}

/** Reads a stream to its end. */
async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/** STATUS, asserting it was answered. */
async function statusOf(c: ImapFlow, path: string, query: StatusQuery): Promise<StatusObject> {
  const status = await c.status(path, query);
  assert.ok(status, `STATUS ${path} answered`);
  return status;
}

describe('imap', () => {
  let slapd: Slapd;
  /** STARTTLS and IMAPS; no plaintext login anywhere, also not from loopback. */
  let server: TestServer;
  /** imap.allowPlaintextAuthOnLoopback: LOGIN in the clear from 127.0.0.1. */
  let open: TestServer;
  let imap: number;
  let imaps: number;

  before(async () => {
    slapd = await startSlapd();
    await slapd.ldapadd(usersLdif());
    server = await startServer(slapd, { smtp: { tls: TLS }, listen: { imap: '127.0.0.1:0', imaps: '127.0.0.1:0' } });
    imap = server.running.ports.imap!;
    imaps = server.running.ports.imaps!;
    open = await startServer(slapd, { smtp: { tls: TLS }, listen: { imap: '127.0.0.1:0' }, imap: { allowPlaintextAuthOnLoopback: true } });
  });
  after(async () => {
    await server?.stop();
    await open?.stop();
    await slapd?.stop();
  });

  test('imapflow over STARTTLS: TLS, capabilities, LIST with INBOX and the special-use folders created at first login, SELECT INBOX', async () => {
    const maildir = server.maildir('lister');
    const first = await deliverSimple(server, 'lister', 'l1');
    const second = await deliverSimple(server, 'lister', 'l2');
    assert.equal(listDir(join(maildir, 'new')).length, 2);
    const c = await flow(imap, 'lister', pw('lister'));
    try {
      assert.equal(c.secureConnection, true, 'upgraded with STARTTLS');
      assert.match(c.tls ? String(c.tls.version) : '', /^TLSv1\.[23]$/);
      for (const cap of ['IMAP4rev1', 'IDLE', 'UIDPLUS', 'MOVE', 'SPECIAL-USE', 'QUOTA', 'LITERAL+', 'NAMESPACE', 'UNSELECT']) {
        assert.ok(c.capabilities.has(cap), `${cap} in ${JSON.stringify([...c.capabilities.keys()])}`);
      }
      assert.ok(!c.capabilities.has('STARTTLS') && !c.capabilities.has('LOGINDISABLED'), 'neither STARTTLS nor LOGINDISABLED once logged in');

      const listed = await c.list();
      assert.deepEqual(listed.map((f) => f.path).sort(), ['Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
      const byPath = new Map(listed.map((f) => [f.path, f]));
      for (const [path, use] of [['Sent', '\\Sent'], ['Drafts', '\\Drafts'], ['Trash', '\\Trash'], ['Junk', '\\Junk']] as const) {
        const f = byPath.get(path)!;
        assert.equal(f.specialUse, use, path);
        assert.equal(f.specialUseSource, 'extension', `${path}: the server marks it (SPECIAL-USE), not a guess from its name`);
        assert.ok(f.flags.has(use) && f.flags.has('\\HasNoChildren'), `${path}: ${JSON.stringify([...f.flags])}`);
      }
      for (const f of listed) {
        assert.equal(f.delimiter, '.');
        assert.equal(f.subscribed, true, `${f.path} subscribed`);
      }
      // On disk: Maildir++ folders with their own cur/new/tmp and maildirfolder, and the subscriptions file.
      for (const folder of ['Sent', 'Drafts', 'Trash', 'Junk']) {
        for (const sub of ['cur', 'new', 'tmp']) assert.ok(statSync(join(maildir, `.${folder}`, sub)).isDirectory(), `.${folder}/${sub}`);
        assert.ok(existsSync(join(maildir, `.${folder}`, 'maildirfolder')), `.${folder}/maildirfolder`);
      }
      const subscriptions = readFileSync(join(maildir, 'subscriptions'), 'utf8').split('\n').filter((l) => l !== '').sort();
      assert.deepEqual(subscriptions, ['Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);

      const box = await c.mailboxOpen('INBOX');
      assert.equal(box.exists, 2);
      assert.equal(box.readOnly, false);
      assert.equal(box.uidNext, 3);
      assert.equal(box.unseen, 1, 'UNSEEN: the first unseen message is number 1');
      for (const flag of ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft']) assert.ok(box.permanentFlags?.has(flag), flag);
      assert.ok(!box.permanentFlags?.has('\\*'), 'no keywords kept: no \\* in PERMANENTFLAGS');
      const index = uidlistHeader(maildir);
      assert.equal(box.uidValidity, BigInt(index.uidValidity), 'UIDVALIDITY is the one in ldapmta-uidlist');
      // The messages moved from new/ to cur/ with an empty info, and got UIDs 1 and 2.
      assert.deepEqual(listDir(join(maildir, 'new')), []);
      assert.deepEqual(listDir(join(maildir, 'cur')), [`${first.name}:2,`, `${second.name}:2,`].sort());
      const messages = await c.fetchAll('1:*', { uid: true, envelope: true, flags: true });
      assert.deepEqual(messages.map((m) => [m.seq, m.uid]), [[1, 1], [2, 2]]);
      // (Their order within one second is the subject of its own test below.)
      assert.deepEqual(messages.map((m) => m.envelope?.subject).sort(), [first.subject, second.subject].sort());
      for (const m of messages) assert.ok(m.flags?.has('\\Recent') && !m.flags.has('\\Seen'), `${m.uid}: ${JSON.stringify([...(m.flags ?? [])])}`);
    } finally {
      await done(c);
    }
  });

  test('UIDs follow arrival order: Maildir names of one second are ordered by their microseconds as numbers (M5 < M89000 < M412000)', async () => {
    const maildir = server.maildir('orderer');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
    // "<seconds>.M<microseconds>P<pid>…", microseconds not zero-padded: how ldapmta's own deliveries
    // (deliver/maildir-file.ts uniqueName), qmail and Dovecot name messages.
    const t = 1_780_000_000;
    const arrivals = [`${t - 1}.M999999P4242Q1.other.host`, `${t}.M5P4242Q2.other.host`, `${t}.M89000P4242Q3.other.host`, `${t}.M412000P4242Q4.other.host`];
    for (const [i, name] of [...arrivals.entries()].reverse()) writeFileSync(join(maildir, 'new', name), `Subject: arrival ${i + 1}\n\nbody\n`);
    const c = await flow(imap, 'orderer', pw('orderer'));
    try {
      await c.mailboxOpen('INBOX');
      const list = (await c.fetchAll('1:*', { uid: true, envelope: true })).map((m) => [m.uid, m.envelope?.subject]);
      assert.deepEqual(list, [[1, 'arrival 1'], [2, 'arrival 2'], [3, 'arrival 3'], [4, 'arrival 4']], 'the oldest message gets the lowest UID');
    } finally {
      await done(c);
    }
  });

  test('FETCH: source is the delivered file byte for byte (LF → CRLF); ENVELOPE and BODYSTRUCTURE of a multipart message; one body part', async () => {
    const maildir = server.maildir('fetcher');
    const mark = marker('mp');
    const stored = await deliverTo(server, 'fetcher', multipartMessage(mark), mark);
    const c = await flow(imap, 'fetcher', pw('fetcher'));
    try {
      await c.mailboxOpen('INBOX');
      const m = await c.fetchOne('*', { uid: true, source: true, envelope: true, bodyStructure: true, size: true, flags: true, internalDate: true });
      assert.ok(m, 'the message is there');
      const expected = wire(stored.text);
      assert.ok(m.source?.equals(expected), `source differs from the stored file with CRLF (lengths ${m.source?.length} vs ${expected.length})`);
      assert.equal(m.size, expected.length, 'RFC822.SIZE is the size with CRLF');
      assert.equal(m.size, sizeTag(stored.name, 'W'));
      assert.ok(!m.flags?.has('\\Seen'), 'fetching the source (BODY.PEEK[]) does not set \\Seen');
      const mtime = statSync(join(maildir, 'cur', curName(maildir, 'INBOX', stored.unique))).mtimeMs;
      assert.equal(new Date(m.internalDate!).getTime(), Math.floor(mtime / 1000) * 1000, 'INTERNALDATE is the file time');

      const env = m.envelope!;
      assert.equal(env.subject, 'Quartalszahlen für März', 'the encoded subject, decoded by the client');
      assert.deepEqual(env.from, [{ name: 'Sender Person', address: 'sender@outside.test' }]);
      assert.deepEqual(env.sender, env.from, 'no Sender: the From');
      assert.deepEqual(env.replyTo, env.from, 'no Reply-To: the From');
      assert.deepEqual(env.to, [{ name: 'Fetcher', address: 'fetcher@example.org' }]);
      assert.deepEqual(env.cc, [{ name: '', address: 'bob@example.org' }]);
      assert.equal(env.messageId, `<${mark}@outside.test>`);
      assert.equal(new Date(env.date!).toISOString(), '2026-03-03T09:00:00.000Z');

      const bs = m.bodyStructure!;
      assert.equal(bs.type, 'multipart/mixed');
      assert.equal(bs.parameters?.boundary, 'b0undary');
      assert.equal(bs.childNodes?.length, 2);
      const [text, pdf] = bs.childNodes!;
      assert.equal(text!.part, '1');
      assert.equal(text!.type, 'text/plain');
      assert.equal(text!.parameters?.charset, 'utf-8');
      assert.equal(text!.encoding, '8bit');
      assert.equal(text!.size, TEXT_PART.length, 'octets of the part body');
      assert.equal(text!.lineCount, 2);
      assert.equal(pdf!.part, '2');
      assert.equal(pdf!.type, 'application/pdf');
      assert.equal(pdf!.parameters?.name, 'numbers.pdf');
      assert.equal(pdf!.encoding, 'base64');
      assert.equal(pdf!.disposition, 'attachment');
      assert.equal(pdf!.dispositionParameters?.filename, 'numbers.pdf');

      // BODY.PEEK[1] and BODY.PEEK[2]: the raw part bodies.
      const parts = await c.fetchOne(String(m.uid), { bodyParts: ['1', '2'] }, { uid: true });
      assert.ok(parts && parts.bodyParts, 'body parts fetched');
      assert.ok(parts.bodyParts.get('1')?.equals(TEXT_PART), `part 1: ${JSON.stringify(parts.bodyParts.get('1')?.toString('utf8'))}`);
      assert.equal(parts.bodyParts.get('2')?.toString('latin1'), PDF.toString('base64').replace(/.{1,76}/g, '$&\r\n'));
      assert.equal(pdf!.size, parts.bodyParts.get('2')!.length);
      // The attachment as a user saves it: decoded.
      const download = await c.download(String(m.uid), '2', { uid: true });
      assert.equal(download.meta?.filename, 'numbers.pdf');
      assert.equal(download.meta?.contentType, 'application/pdf');
      assert.ok((await readAll(download.content!)).equals(PDF), 'the attachment decodes to the original bytes');

      // Reading is not writing: the file is unchanged, and still not \Seen.
      const name = curName(maildir, 'INBOX', stored.unique);
      assert.equal(readFileSync(join(maildir, 'cur', name), 'latin1'), stored.text);
      assert.match(name, /:2,$/);
    } finally {
      await done(c);
    }
  });

  test('SEARCH: from, subject, seen/unseen, body text (decoded, header excluded), OR and NOT', async () => {
    const user = 'searcher';
    const invoice = await deliverSimple(server, user, 'Invoice-March', 'please pay soon\r\n', '');
    const b64 = Buffer.from('the secret word is pineapple\r\n').toString('base64');
    const meeting = await deliverSimple(server, user, 'Meeting-notes', `${b64}\r\n`, 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n');
    const reply = await deliverSimple(server, user, 'Re-invoice-march', 'see you soon\r\n');
    // Another sender, with a display name.
    await deliverTo(server, user, `From: "Carol Client" <carol@client.test>\r\nTo: searcher@example.org\r\nSubject: carol-${invoice.subject}\r\n\r\nhi\r\n.\r\n`, `carol-${invoice.subject}`);
    // Encoded words in the header, a quoted-printable UTF-8 body.
    const zoe = marker('zoe');
    await deliverTo(server, user, [
      'From: =?UTF-8?Q?Zo=C3=AB_=C3=9Cnal?= <zoe@umlaut.test>', 'To: searcher@example.org', `Message-ID: <${zoe}@umlaut.test>`,
      'Subject: =?UTF-8?Q?Bericht_f=C3=BCr_M=C3=A4rz?=', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable', '', 'Caf=C3=A9 au lait f=C3=BCr alle, gez. Zo=C3=AB', '.', '',
    ].join('\r\n'), zoe);
    const c = await flow(imap, user, pw(user));
    try {
      await c.mailboxOpen('INBOX');
      const all = await c.fetchAll('1:*', { uid: true, envelope: true });
      const uidOf = (subject: string) => all.find((m) => m.envelope?.subject === subject)!.uid;
      const [u1, u2, u3, u4, u5] = [uidOf(invoice.subject), uidOf(meeting.subject), uidOf(reply.subject), uidOf(`carol-${invoice.subject}`), uidOf('Bericht für März')];
      assert.deepEqual([u1, u2, u3, u4, u5].sort(), [1, 2, 3, 4, 5]);
      const ids = (...uids: number[]) => uids.sort((x, y) => x - y);
      const search = async (q: Parameters<ImapFlow['search']>[0]) => ((await c.search(q, { uid: true })) || []).sort((a, b) => a - b);

      assert.deepEqual(await search({ from: 'carol@client.test' }), [u4]);
      assert.deepEqual(await search({ from: 'carol client' }), [u4], 'display name, case-insensitive');
      assert.deepEqual(await search({ from: 'sender@outside.test' }), ids(u1, u2, u3));
      assert.deepEqual(await search({ subject: 'invoice-march' }), ids(u1, u3, u4), 'subject substring, case-insensitive');
      assert.deepEqual(await search({ body: 'pineapple' }), [u2], 'a base64 text part is searched decoded');
      assert.deepEqual(await search({ body: 'Meeting-notes' }), [], 'BODY does not look at the header');
      assert.deepEqual(await search({ text: 'Meeting-notes' }), [u2], 'TEXT does');
      assert.deepEqual(await search({ body: 'no-such-words-anywhere' }), []);
      assert.deepEqual(await search({ seen: false }), [1, 2, 3, 4, 5]);
      // Decoded header fields and text, compared in UTF-8.
      assert.deepEqual(await search({ subject: 'für März' }), [u5], 'an encoded-word subject, decoded');
      assert.deepEqual(await search({ from: 'Zoë Ünal' }), [u5], 'an encoded-word display name, decoded');
      assert.deepEqual(await search({ body: 'café au lait' }), [u5], 'a quoted-printable UTF-8 body, decoded');
      assert.deepEqual(await search({ body: 'Caf=C3=A9' }), [], 'not the encoded form');

      await c.messageFlagsAdd(`${u1},${u3}`, ['\\Seen'], { uid: true });
      assert.deepEqual(await search({ seen: true }), ids(u1, u3));
      assert.deepEqual(await search({ seen: false }), ids(u2, u4, u5));
      assert.deepEqual(await search({ subject: 'invoice', seen: false }), [u4], 'keys together are an AND');
      assert.deepEqual(await search({ or: [{ body: 'pineapple' }, { from: 'carol' }] }), ids(u2, u4));
      assert.deepEqual(await search({ not: { from: 'sender@outside.test' } }), ids(u4, u5));
      assert.deepEqual(await search({ all: true }), [1, 2, 3, 4, 5]);
      // Sequence numbers (no UID): the same messages by position (UID n is message n here).
      assert.deepEqual(((await c.search({ seen: true })) || []).sort((x, y) => x - y), ids(u1, u3));
    } finally {
      await done(c);
    }
  });

  test('STORE: flags added and removed are kept in the Maildir file name (:2,S → :2,FS → :2,F) and seen by a new session', async () => {
    const maildir = server.maildir('flagger');
    const msg = await deliverSimple(server, 'flagger', 'flags');
    const c = await flow(imap, 'flagger', pw('flagger'));
    try {
      await c.mailboxOpen('INBOX');
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,`);
      assert.equal(await c.messageFlagsAdd('1', ['\\Seen']), true);
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,S`);
      await c.messageFlagsAdd('1', ['\\Flagged']);
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,FS`);
      await c.messageFlagsRemove('1', ['\\Seen']);
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,F`);
      await c.messageFlagsAdd('1', ['\\Answered', '\\Draft']);
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,DFR`, 'info letters in ASCII order');
      await c.messageFlagsSet('1', ['\\Answered']);
      assert.equal(curName(maildir, 'INBOX', msg.unique), `${msg.name}:2,R`, 'FLAGS replaces');
      const m = await c.fetchOne('1', { flags: true });
      assert.ok(m && m.flags?.has('\\Answered') && !m.flags.has('\\Flagged') && !m.flags.has('\\Seen'), JSON.stringify([...(m ? m.flags ?? [] : [])]));
    } finally {
      await done(c);
    }
    const again = await flow(imap, 'flagger', pw('flagger'));
    try {
      await again.mailboxOpen('INBOX');
      const m = await again.fetchOne('1', { flags: true, uid: true });
      assert.ok(m, 'still there');
      assert.deepEqual([...(m.flags ?? [])], ['\\Answered'], 'a new session reads the flags from the file name');
      assert.equal(m.uid, 1);
    } finally {
      await done(again);
    }
  });

  test('COPY and MOVE answer UIDPLUS maps; .Trash and \\Deleted messages are outside the quota; EXPUNGE and CLOSE remove the files', async () => {
    const maildir = server.maildir('copier');
    const delivered = [await deliverSimple(server, 'copier', 'c1'), await deliverSimple(server, 'copier', 'c2'), await deliverSimple(server, 'copier', 'c3')];
    const start = maildirsize(maildir);
    assert.equal(start.lines[0], '10485760S,100C', 'copier has a quota: maildirsize exists');
    assert.equal(start.count, 3);
    const c = await flow(imap, 'copier', pw('copier'));
    try {
      await c.mailboxOpen('INBOX');
      const listed = await c.fetchAll('1:*', { uid: true, envelope: true });
      assert.deepEqual(listed.map((m) => m.uid), [1, 2, 3]);
      // The messages with UIDs 1, 2, 3 (their order within one second is another test's subject).
      const [m1, m2, m3] = [1, 2, 3].map((uid) => delivered.find((d) => d.subject === listed.find((m) => m.uid === uid)?.envelope?.subject)!) as [typeof delivered[0], typeof delivered[0], typeof delivered[0]];
      assert.ok(m1 && m2 && m3, 'every UID is one of the delivered messages');

      const copied = await c.messageCopy('1:2', 'Trash', { uid: true });
      assert.ok(copied, 'COPY answered');
      const trashIndex = uidlistHeader(join(maildir, '.Trash'));
      assert.equal(copied.uidValidity, BigInt(trashIndex.uidValidity), 'COPYUID names the target UIDVALIDITY');
      assert.deepEqual([...(copied.uidMap ?? [])], [[1, 1], [2, 2]]);
      const trashFiles = listDir(join(maildir, '.Trash', 'cur'));
      assert.equal(trashFiles.length, 2);
      assert.deepEqual(trashFiles.map((n) => readFileSync(join(maildir, '.Trash', 'cur', n), 'latin1')).sort(), [m1.text, m2.text].sort(), 'the copies have the same bytes');
      const afterCopy = maildirsize(maildir);
      assert.deepEqual(afterCopy.lines, start.lines, 'copies in .Trash are outside the Maildir++ quota');

      const moved = await c.messageMove('3', 'Junk', { uid: true });
      assert.ok(moved, 'MOVE answered');
      assert.deepEqual([...(moved.uidMap ?? [])], [[3, 1]]);
      assert.equal(moved.uidValidity, BigInt(uidlistHeader(join(maildir, '.Junk')).uidValidity));
      assert.equal(c.mailbox && c.mailbox.exists, 2, 'moved out of INBOX');
      assert.deepEqual(curNames(maildir, 'INBOX', m3.unique), []);
      assert.equal(readFileSync(join(maildir, '.Junk', 'cur', curName(maildir, 'Junk', m3.unique)), 'latin1'), m3.text, 'the same file, now in .Junk');
      assert.deepEqual(maildirsize(maildir).lines, afterCopy.lines, 'MOVE within the mailbox changes no usage');

      // STORE \Deleted alone keeps the file but takes it out of the quota (T messages do not count); UID EXPUNGE removes it.
      await c.messageFlagsAdd('1', ['\\Deleted'], { uid: true });
      assert.match(curName(maildir, 'INBOX', m1.unique), /:2,T$/);
      const afterFlag = maildirsize(maildir);
      assert.equal(afterFlag.lines.at(-1), `-${sizeTag(m1.name, 'S')} -1`);
      assert.equal(afterFlag.count, afterCopy.count - 1);
      assert.equal(await c.messageDelete('1', { uid: true }), true);
      assert.deepEqual(curNames(maildir, 'INBOX', m1.unique), [], 'expunged: the file is gone');
      assert.deepEqual(maildirsize(maildir).lines, afterFlag.lines, 'the expunge itself changes no usage');
      assert.deepEqual((await c.fetchAll('1:*', { uid: true })).map((m) => m.uid), [2]);

      // CLOSE expunges what is \Deleted.
      await c.messageFlagsAdd('2', ['\\Deleted'], { uid: true });
      assert.ok(curNames(maildir, 'INBOX', m2.unique).length === 1, 'still there before CLOSE');
      assert.equal(maildirsize(maildir).lines.at(-1), `-${sizeTag(m2.name, 'S')} -1`);
      await c.mailboxClose();
      assert.deepEqual(curNames(maildir, 'INBOX', m2.unique), [], 'CLOSE removed it');

      // The copies in Trash are untouched, with the UIDs COPYUID gave.
      await c.mailboxOpen('Trash');
      const trash = await c.fetchAll('1:*', { uid: true, envelope: true, source: true });
      assert.deepEqual(trash.map((m) => [m.uid, m.envelope?.subject]), [[1, m1.subject], [2, m2.subject]]);
      assert.ok(trash[0]!.source?.equals(wire(m1.text)));
      const junk = await statusOf(c, 'Junk', { messages: true, uidNext: true });
      assert.equal(junk.messages, 1);
      assert.equal(junk.uidNext, 2);
    } finally {
      await done(c);
    }
  });

  test('APPEND to Drafts with flags and a date: APPENDUID, the file in .Drafts/cur with :2,DS, LF on disk, the date as INTERNALDATE', async () => {
    const maildir = server.maildir('drafter');
    const c = await flow(imap, 'drafter', pw('drafter'));
    try {
      const mark = marker('draft');
      const content = Buffer.from(`From: drafter@example.org\r\nTo: bob@example.org\r\nSubject: ${mark}\r\n\r\nNot sent yet.\r\nSecond line é.\r\n`, 'utf8');
      const date = new Date('2025-01-02T03:04:05Z');
      const appended = await c.append('Drafts', content, ['\\Draft', '\\Seen'], date);
      assert.ok(appended, 'APPEND answered');
      assert.equal(appended.uid, 1);
      assert.equal(appended.uidValidity, BigInt(uidlistHeader(join(maildir, '.Drafts')).uidValidity));

      const files = listDir(join(maildir, '.Drafts', 'cur'));
      assert.equal(files.length, 1, JSON.stringify(files));
      const name = files[0]!;
      assert.match(name, /:2,DS$/);
      const onDisk = readFileSync(join(maildir, '.Drafts', 'cur', name));
      assert.ok(onDisk.equals(Buffer.from(content.toString('latin1').replace(/\r\n/g, '\n'), 'latin1')), 'stored with LF line ends');
      assert.equal(sizeTag(name, 'S'), onDisk.length);
      assert.equal(sizeTag(name, 'W'), content.length);
      assert.equal(statSync(join(maildir, '.Drafts', 'cur', name)).mtimeMs, date.getTime(), 'the file time is the date given');
      assert.deepEqual(listDir(join(maildir, 'cur')), [], 'nothing in INBOX');

      await c.mailboxOpen('Drafts');
      const m = await c.fetchOne('1', { uid: true, source: true, flags: true, internalDate: true, size: true });
      assert.ok(m, 'fetched');
      assert.ok(m.source?.equals(content), 'read back as appended');
      assert.equal(m.size, content.length);
      assert.deepEqual([...(m.flags ?? [])].sort(), ['\\Draft', '\\Seen']);
      assert.equal(new Date(m.internalDate!).getTime(), date.getTime());

      // A missing folder: NO [TRYCREATE], nothing written.
      await assert.rejects(c.append('NoSuchFolder', content), (err: { serverResponseCode?: string }) => err.serverResponseCode === 'TRYCREATE');
      assert.ok(!existsSync(join(maildir, '.NoSuchFolder')));
    } finally {
      await done(c);
    }
  });

  test('CREATE, RENAME, DELETE: .Name directories appear, move with their children and vanish; LIST, subscriptions and quota follow', async () => {
    const maildir = server.maildir('folderer');
    await deliverSimple(server, 'folderer', 'f0'); // the delivery makes maildirsize (folderer has a quota)
    const c = await flow(imap, 'folderer', pw('folderer'));
    try {
      const created = await c.mailboxCreate('Projects.2026');
      assert.equal(created.created, true);
      for (const dir of ['.Projects', '.Projects.2026']) {
        for (const sub of ['cur', 'new', 'tmp']) assert.ok(statSync(join(maildir, dir, sub)).isDirectory(), `${dir}/${sub}`);
        assert.ok(existsSync(join(maildir, dir, 'maildirfolder')), `${dir}/maildirfolder`);
      }
      let listed = new Map((await c.list()).map((f) => [f.path, f]));
      assert.ok(listed.get('Projects')?.flags.has('\\HasChildren'), 'parent created with it');
      assert.ok(listed.get('Projects.2026')?.flags.has('\\HasNoChildren'));
      assert.equal((await c.mailboxCreate('Projects.2026')).created, false, 'exists already');

      await c.mailboxSubscribe('Projects.2026');
      assert.ok(readFileSync(join(maildir, 'subscriptions'), 'utf8').split('\n').includes('Projects.2026'));
      const mark = marker('kept');
      const appended = await c.append('Projects.2026', `Subject: ${mark}\r\n\r\nkeep me\r\n`);
      assert.ok(appended && appended.uid === 1);
      const bytes = `Subject: ${mark}\n\nkeep me\n`.length;
      const usage = maildirsize(maildir);
      assert.equal(usage.lines.at(-1), `${bytes} 1`, 'APPEND counts in maildirsize');
      assert.equal(usage.count, 2);

      await c.mailboxRename('Projects', 'Archive');
      assert.ok(!existsSync(join(maildir, '.Projects')) && !existsSync(join(maildir, '.Projects.2026')), 'old directories gone');
      assert.ok(existsSync(join(maildir, '.Archive')) && existsSync(join(maildir, '.Archive.2026')), 'renamed with the child');
      listed = new Map((await c.list()).map((f) => [f.path, f]));
      assert.ok(!listed.has('Projects') && !listed.has('Projects.2026'));
      assert.ok(listed.has('Archive') && listed.has('Archive.2026'));
      assert.equal(listed.get('Archive.2026')?.subscribed, true, 'the subscription moved along');
      const status = await statusOf(c, 'Archive.2026', { messages: true, uidNext: true });
      assert.equal(status.messages, 1, 'the message moved along');
      const kept = await waitForStored(join(maildir, '.Archive.2026'), mark);
      assert.equal(kept.sub, 'cur');

      await assert.rejects(c.mailboxDelete('Archive'), (err: { serverResponseCode?: string }) => err.serverResponseCode === 'INUSE', 'a folder with children is not deleted');
      assert.ok(existsSync(join(maildir, '.Archive')));
      await c.mailboxDelete('Archive.2026');
      assert.ok(!existsSync(join(maildir, '.Archive.2026')), '.Archive.2026 vanished');
      assert.equal(maildirsize(maildir).lines.at(-1), `-${bytes} -1`, 'its message left the quota');
      await c.mailboxDelete('Archive');
      assert.ok(!existsSync(join(maildir, '.Archive')));
      assert.deepEqual((await c.list()).map((f) => f.path).sort(), ['Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
      assert.ok(!readFileSync(join(maildir, 'subscriptions'), 'utf8').includes('Archive'), 'unsubscribed');
      assert.deepEqual(readdirSync(join(maildir, 'tmp')), [], 'nothing left behind in tmp/');

      // Non-ASCII names: modified UTF-7 on the wire and on disk, as Dovecot keeps them.
      assert.equal((await c.mailboxCreate('Entwürfe')).created, true);
      assert.ok(statSync(join(maildir, '.Entw&APw-rfe', 'cur')).isDirectory(), JSON.stringify(readdirSync(maildir)));
      const utf7 = (await c.list()).find((f) => f.path === 'Entwürfe');
      assert.equal(utf7?.pathAsListed, 'Entw&APw-rfe');
      await c.mailboxDelete('Entwürfe');
      assert.ok(!existsSync(join(maildir, '.Entw&APw-rfe')));

      // Names that would leave the Maildir are refused.
      for (const bad of ['../escape', 'a/b', '.hidden', 'x..y']) {
        await assert.rejects(c.mailboxCreate(bad), `CREATE ${bad}`);
      }
      assert.ok(!existsSync(join(maildir, '..', 'escape')) && !existsSync(join(maildir, '..', '.escape')));
      await assert.rejects(c.mailboxRename('NoSuch', 'Other'), (err: { serverResponseCode?: string }) => err.serverResponseCode === 'NONEXISTENT');
    } finally {
      await done(c);
    }
  });

  test('STATUS: MESSAGES, UNSEEN, RECENT, UIDNEXT, UIDVALIDITY of INBOX and other folders; a missing folder is refused', async () => {
    const maildir = server.maildir('statuser');
    await deliverSimple(server, 'statuser', 's1');
    await deliverSimple(server, 'statuser', 's2');
    const c = await flow(imap, 'statuser', pw('statuser'));
    try {
      const inbox = await statusOf(c, 'INBOX', { messages: true, unseen: true, recent: true, uidNext: true, uidValidity: true });
      assert.equal(inbox.messages, 2);
      assert.equal(inbox.unseen, 2);
      assert.equal(inbox.recent, 2, 'nobody has seen them yet');
      assert.equal(inbox.uidNext, 3);
      assert.equal(inbox.uidValidity, BigInt(uidlistHeader(maildir).uidValidity));
      await c.mailboxOpen('INBOX');
      await c.messageFlagsAdd('1', ['\\Seen']);
      await c.mailboxClose();
      const later = await statusOf(c, 'INBOX', { messages: true, unseen: true, uidNext: true });
      assert.equal(later.messages, 2);
      assert.equal(later.unseen, 1);
      assert.equal(later.uidNext, 3);
      const sent = await statusOf(c, 'Sent', { messages: true, unseen: true, uidNext: true, uidValidity: true });
      assert.equal(sent.messages, 0);
      assert.equal(sent.uidNext, 1);
      assert.equal(sent.uidValidity, BigInt(uidlistHeader(join(maildir, '.Sent')).uidValidity));
      await assert.rejects(c.status('NoSuchFolder', { messages: true }));
    } finally {
      await done(c);
    }
  });

  test('GETQUOTA: the directory\'s mailQuotaSize and mailQuotaCount as limits, usage from maildirsize; APPEND adds to it', async () => {
    const maildir = server.maildir('alice');
    await deliverSimple(server, 'alice', 'q1', `${'x'.repeat(1500)}\r\n`);
    await deliverSimple(server, 'alice', 'q2', `${'y'.repeat(700)}\r\n`);
    const size = maildirsize(maildir);
    assert.equal(size.lines[0], '104857600S,10000C', "alice's quota from the sample directory");
    const c = await flow(imap, 'alice', 'Alice-pw-1');
    try {
      const quota = await c.getQuota('INBOX');
      assert.ok(quota, 'QUOTA answered');
      assert.equal(quota.storage?.limit, 104_857_600, 'STORAGE limit: 102400 KiB');
      assert.equal(quota.storage?.usage, Math.ceil(size.bytes / 1024) * 1024);
      assert.equal(quota.message?.limit, 10_000);
      assert.equal(quota.message?.usage, size.count);
      await c.append('Drafts', 'Subject: quota\r\n\r\nsmall\r\n');
      const more = await c.getQuota('Drafts');
      assert.ok(more, 'QUOTA answered for Drafts (one quota root for every folder)');
      assert.equal(more.message?.usage, size.count + 1);
    } finally {
      await done(c);
    }
    const raw = await rawLogin(imap, 'alice', 'Alice-pw-1');
    try {
      const now = maildirsize(maildir);
      const reply = await raw.command('q1 GETQUOTAROOT INBOX');
      assert.match(reply.tagged, /^q1 OK/);
      assert.deepEqual(reply.untagged, ['* QUOTAROOT INBOX ""', `* QUOTA "" (STORAGE ${Math.ceil(now.bytes / 1024)} 102400 MESSAGE ${now.count} 10000)`]);
      assert.match((await raw.command('q2 SETQUOTA "" (STORAGE 1)')).tagged, /^q2 NO /, 'quotas come from the directory');
    } finally {
      raw.close();
    }
  });

  test('over the quota: APPEND and COPY get NO [OVERQUOTA] and write nothing (frank: 1 MiB)', async () => {
    const maildir = server.maildir('frank');
    const big = await deliverSimple(server, 'frank', 'big', `${'z'.repeat(998)}\r\n`.repeat(400));
    const start = maildirsize(maildir);
    assert.equal(start.lines[0], '1048576S,1000C');
    assert.ok(start.bytes > 350_000 && start.bytes < 524_288, `one message of about 400 KB: ${start.bytes}`);
    const c = await flow(imap, 'frank', 'Frank-pw-6');
    let raw: ImapRaw | undefined;
    try {
      const tooBig = `Subject: too big\r\n\r\n${`${'y'.repeat(998)}\r\n`.repeat(700)}`;
      await assert.rejects(c.append('Drafts', tooBig), (err: { serverResponseCode?: string }) => err.serverResponseCode === 'OVERQUOTA');
      assert.deepEqual(listDir(join(maildir, '.Drafts', 'cur')), []);
      assert.deepEqual(listDir(join(maildir, '.Drafts', 'tmp')), [], 'no file left in tmp/');
      assert.deepEqual(maildirsize(maildir).lines, start.lines);

      raw = await rawLogin(imap, 'frank', 'Frank-pw-6');
      assert.match((await raw.command('o1 SELECT INBOX')).tagged, /^o1 OK /);
      assert.match((await raw.command('o2 COPY 1 Junk')).tagged, /^o2 OK \[COPYUID \d+ 1 1\] /, 'the first copy fits (about 800 KB)');
      const afterCopy = maildirsize(maildir);
      assert.equal(afterCopy.lines.at(-1), `${sizeTag(big.name, 'S')} 1`);
      assert.equal((await raw.command('o3 COPY 1 Junk')).tagged, 'o3 NO [OVERQUOTA] the mailbox is full', 'the second would make about 1.2 MB');
      assert.equal(listDir(join(maildir, '.Junk', 'cur')).length, 1);
      assert.deepEqual(maildirsize(maildir).lines, afterCopy.lines);
      const quota = await c.getQuota();
      assert.ok(quota, 'QUOTA answered');
      assert.equal(quota.storage?.limit, 1_048_576);
      assert.equal(quota.storage?.usage, Math.ceil(afterCopy.bytes / 1024) * 1024);
      assert.equal(quota.message?.usage, 2);
    } finally {
      raw?.close();
      await done(c);
    }
  });

  test('IDLE: a client idling in INBOX is told of a new SMTP delivery at once (EXISTS), of a second one, and of flags and expunges by another session', async () => {
    const c = await flow(imap, 'idler', pw('idler'));
    const raw = await rawLogin(imap, 'idler', pw('idler'));
    let other: ImapFlow | undefined;
    try {
      const before = await deliverSimple(server, 'idler', 'before');
      const box = await c.mailboxOpen('INBOX');
      assert.equal(box.exists, 1);
      const events: { count: number; at: number }[] = [];
      c.on('exists', (e: { path: string; count: number }) => events.push({ count: e.count, at: Date.now() }));
      const idling = c.idle();
      await sleep(100);
      // A raw client idling too: the exact lines.
      assert.match((await raw.command('r1 SELECT INBOX')).tagged, /^r1 OK/);
      raw.write('r2 IDLE\r\n');
      assert.match(await raw.response(), /^\+ /);

      const sentAt = Date.now();
      const first = await deliverSimple(server, 'idler', 'woke');
      await waitFor('the EXISTS event', async () => events.length >= 1, 5000);
      assert.equal(events[0]!.count, 2);
      assert.ok(events[0]!.at - sentAt < 5000, `told ${events[0]!.at - sentAt} ms after the delivery started`);
      assert.equal(await raw.response(), '* 2 EXISTS');
      assert.match(await raw.response(), /^\* \d RECENT$/);

      const second = await deliverSimple(server, 'idler', 'again');
      await waitFor('the second EXISTS event', async () => events.length >= 2, 5000);
      assert.equal(events[1]!.count, 3);
      assert.equal(await raw.response(), '* 3 EXISTS');
      assert.match(await raw.response(), /^\* \d RECENT$/);

      // Flag changes and expunges by another session are pushed at once too.
      const expunged: number[] = [];
      c.on('expunge', (e: { seq: number }) => expunged.push(e.seq));
      other = await flow(imap, 'idler', pw('idler'));
      await other.mailboxOpen('INBOX');
      const two = await other.fetchOne('2', { uid: true, envelope: true });
      assert.ok(two && two.uid === 2 && two.envelope?.subject === first.subject, 'UID 2 is the first message delivered during IDLE');
      await other.messageFlagsAdd('1', ['\\Seen']);
      await other.messageDelete('2');
      const pushed: string[] = [];
      while (!pushed.includes('* 2 EXPUNGE')) pushed.push(await raw.response());
      assert.ok(pushed.includes('* 1 FETCH (FLAGS (\\Seen))'), `pushed in IDLE: ${JSON.stringify(pushed)}`);
      await waitFor('the EXPUNGE event', async () => expunged.length >= 1, 5000);
      assert.deepEqual(expunged, [2]);
      raw.write('DONE\r\n');
      assert.equal(await raw.response(), 'r2 OK IDLE terminated');

      // Any command ends imapflow's IDLE; the mailbox is as the other session left it.
      const fetched = await c.fetchAll('1:*', { envelope: true, uid: true, flags: true });
      await idling;
      assert.deepEqual(fetched.map((m) => [m.seq, m.uid, m.envelope?.subject, m.flags?.has('\\Seen')]), [[1, 1, before.subject, true], [2, 3, second.subject, false]]);
    } finally {
      raw.close();
      await done(c, other);
    }
  });

  test('two sessions on one mailbox: the same UIDs; a flag set and an expunge in one are told to the other; UIDs and UIDVALIDITY stable across logins', async () => {
    const maildir = server.maildir('sharer');
    const msgs = [await deliverSimple(server, 'sharer', 'sh1'), await deliverSimple(server, 'sharer', 'sh2'), await deliverSimple(server, 'sharer', 'sh3')];
    const a = await flow(imap, 'sharer', pw('sharer'));
    const b = await flow(imap, 'sharer', pw('sharer'));
    let raw: ImapRaw | undefined;
    /** UID → subject, as the first sessions saw them. */
    const subjectOf = new Map<number, string>();
    const byUid = (uid: number) => msgs.find((m) => m.subject === subjectOf.get(uid))!;
    try {
      const boxA = await a.mailboxOpen('INBOX');
      const boxB = await b.mailboxOpen('INBOX');
      assert.equal(boxA.uidValidity, boxB.uidValidity);
      assert.equal(boxA.exists, 3);
      assert.equal(boxB.exists, 3);
      const listA = (await a.fetchAll('1:*', { uid: true, envelope: true })).map((m) => [m.seq, m.uid, m.envelope?.subject]);
      const listB = (await b.fetchAll('1:*', { uid: true, envelope: true })).map((m) => [m.seq, m.uid, m.envelope?.subject]);
      assert.deepEqual(listA.map(([seq, uid]) => [seq, uid]), [[1, 1], [2, 2], [3, 3]]);
      assert.deepEqual(listA.map(([, , subject]) => subject).sort(), msgs.map((m) => m.subject).sort());
      assert.deepEqual(listB, listA, 'both sessions see the same UIDs for the same messages');
      for (const [, uid, subject] of listA) subjectOf.set(uid as number, subject as string);
      // A raw third session for the exact untagged lines.
      raw = await rawLogin(imap, 'sharer', pw('sharer'));
      assert.match((await raw.command('x1 SELECT INBOX')).tagged, /^x1 OK/);

      const flagEvents: { seq: number; flags: Set<string> }[] = [];
      b.on('flags', (e: { seq: number; flags: Set<string> }) => flagEvents.push(e));
      const expungeEvents: number[] = [];
      b.on('expunge', (e: { seq: number }) => expungeEvents.push(e.seq));

      await a.messageFlagsAdd('1', ['\\Flagged']);
      await b.noop();
      assert.ok(flagEvents.some((e) => e.seq === 1 && e.flags.has('\\Flagged')), `B was told of the flag: ${JSON.stringify(flagEvents.map((e) => [e.seq, [...e.flags]]))}`);
      const seenByB = await b.fetchOne('1', { flags: true });
      assert.ok(seenByB && seenByB.flags?.has('\\Flagged'));
      const noop = await raw.command('x2 NOOP');
      assert.deepEqual(noop.untagged, ['* 1 FETCH (FLAGS (\\Flagged))']);

      await a.messageDelete('2');
      assert.deepEqual(curNames(maildir, 'INBOX', byUid(2).unique), [], 'expunged by A');
      assert.equal(curNames(maildir, 'INBOX', byUid(1).unique).length, 1);
      // Not during FETCH (RFC 3501 §7.4.1): the raw session's FETCH still lists what it knows, without EXPUNGE.
      const during = await raw.command('x3 FETCH 1:* (UID)');
      assert.ok(!during.untagged.some((l) => /EXPUNGE/.test(l)), `no EXPUNGE during FETCH: ${JSON.stringify(during.untagged)}`);
      assert.match(during.tagged, /^x3 OK/);
      const told = await raw.command('x4 NOOP');
      assert.deepEqual(told.untagged, ['* 2 EXPUNGE']);
      await b.noop();
      assert.deepEqual(expungeEvents, [2], 'B got EXPUNGE for message 2');
      assert.equal(b.mailbox && b.mailbox.exists, 2);
      const afterB = (await b.fetchAll('1:*', { uid: true, flags: true })).map((m) => [m.seq, m.uid, m.flags?.has('\\Flagged')]);
      assert.deepEqual(afterB, [[1, 1, true], [2, 3, false]]);
      const afterA = (await a.fetchAll('1:*', { uid: true })).map((m) => [m.seq, m.uid]);
      assert.deepEqual(afterA, [[1, 1], [2, 3]]);
      assert.deepEqual((await raw.command('x5 FETCH 1:* (UID)')).untagged, ['* 1 FETCH (UID 1)', '* 2 FETCH (UID 3)']);
    } finally {
      raw?.close();
      await done(a, b);
    }
    // A new login (and a new delivery): the same UIDs and UIDVALIDITY, the new message above them.
    const uidValidity = uidlistHeader(maildir).uidValidity;
    const fourth = await deliverSimple(server, 'sharer', 'sh4');
    const again = await flow(imap, 'sharer', pw('sharer'));
    try {
      const box = await again.mailboxOpen('INBOX');
      assert.equal(box.uidValidity, BigInt(uidValidity), 'UIDVALIDITY unchanged');
      assert.equal(box.uidNext, 5, 'UID 2 is never given again');
      const list = (await again.fetchAll('1:*', { uid: true, envelope: true })).map((m) => [m.uid, m.envelope?.subject]);
      assert.deepEqual(list, [[1, subjectOf.get(1)], [3, subjectOf.get(3)], [4, fourth.subject]]);
    } finally {
      await done(again);
    }
    // imaplib in a third session agrees.
    const r = await imaplib(`
m = starttls()
m.login('sharer', os.environ['P'])
out['select'] = r(m.select('INBOX'))
out['uids'] = r(m.uid('SEARCH', 'ALL'))
out['validity'] = r(m.response('UIDVALIDITY'))
m.logout()
`, { IMAP_PORT: imap, P: pw('sharer') });
    assert.deepEqual(r.select.data, ['3']);
    assert.deepEqual(r.uids.data, ['1 3 4']);
    assert.deepEqual(r.validity.data, [String(uidValidity)]);
  });

  test('imaplib, plaintext LOGIN on loopback (imap.allowPlaintextAuthOnLoopback): select, FETCH BODY[] byte for byte, search, store, copy, expunge, append, logout', async () => {
    const port = open.running.ports.imap!;
    const maildir = open.maildir('pyplain');
    const one = await deliverSimple(open, 'pyplain', 'py1', 'first body\r\n.leading dot\r\n');
    const two = await deliverSimple(open, 'pyplain', 'py2', 'second body with kiwi\r\n');
    const r = await imaplib(`
m = plain()
out['caps'] = [s(c) for c in m.capabilities]
out['login'] = r(m.login('pyplain', os.environ['P']))
out['select'] = r(m.select('INBOX'))
# The message numbers of the two, by subject.
n1 = s(m.search(None, 'SUBJECT', os.environ['S1'])[1][0])
n2 = s(m.search(None, 'SUBJECT', os.environ['S2'])[1][0])
out['n'] = [n1, n2]
out['fetch'] = r(m.fetch(n1, '(UID RFC822.SIZE BODY[])'))
out['flags_after_fetch'] = r(m.fetch(n1, '(FLAGS)'))
out['search_kiwi'] = r(m.search(None, 'BODY', 'kiwi'))
out['search_subject'] = r(m.uid('SEARCH', 'SUBJECT', os.environ['S1']))
out['search_unseen'] = r(m.search(None, 'UNSEEN'))
out['store'] = r(m.store(n2, '+FLAGS', '(\\\\Flagged)'))
out['copy'] = r(m.copy('1:2', 'Trash'))
out['store_deleted'] = r(m.store(n1, '+FLAGS.SILENT', '(\\\\Deleted)'))
out['expunge'] = r(m.expunge())
out['search_all'] = r(m.uid('SEARCH', 'ALL'))
out['append'] = r(m.append('Sent', '(\\\\Seen)', imaplib.Time2Internaldate(1700000000), b'Subject: sent by python\\r\\n\\r\\nbody\\r\\n'))
out['status'] = r(m.status('Trash', '(MESSAGES UIDNEXT UNSEEN)'))
out['close'] = r(m.close())
out['logout'] = r(m.logout())
`, { IMAP_PORT: port, P: pw('pyplain'), S1: one.subject, S2: two.subject });
    assert.ok(!r.caps.includes('LOGINDISABLED') && r.caps.includes('AUTH=PLAIN'), JSON.stringify(r.caps));
    assert.equal(r.login.typ, 'OK');
    assert.deepEqual(r.select, { typ: 'OK', data: ['2'] });
    const [n1, n2] = r.n as [string, string];
    assert.deepEqual([n1, n2].sort(), ['1', '2']);
    // [[ 'n (UID n RFC822.SIZE s BODY[] {s}', bytes ], ')', …]
    const [[head, body]] = r.fetch.data;
    assert.equal(body, wire(one.text).toString('latin1'), 'BODY[] is the stored file with CRLF');
    assert.equal(head, `${n1} (UID ${n1} RFC822.SIZE ${sizeTag(one.name, 'W')} BODY[] {${sizeTag(one.name, 'W')}}`);
    assert.match(r.flags_after_fetch.data[0], /\\Seen/, 'BODY[] (not PEEK) sets \\Seen');
    assert.deepEqual(r.search_kiwi.data, [n2]);
    assert.deepEqual(r.search_subject.data, [n1], 'UID n is message n here');
    assert.deepEqual(r.search_unseen.data, [n2]);
    assert.match(r.store.data[0], new RegExp(`^${n2} \\(FLAGS \\(\\\\Flagged( \\\\Recent)?\\)\\)$`));
    assert.equal(r.copy.typ, 'OK');
    assert.match(r.copy.data[0], /^\[COPYUID \d+ 1:2 1:2\]/);
    assert.deepEqual(r.store_deleted.data, [null], '.SILENT: no FETCH');
    assert.deepEqual(r.expunge, { typ: 'OK', data: [n1] });
    assert.deepEqual(r.search_all.data, [n2]);
    assert.equal(r.append.typ, 'OK');
    assert.match(r.append.data[0], /^\[APPENDUID \d+ 1\]/);
    assert.match(r.status.data[0], /^Trash \(MESSAGES 2 UIDNEXT 3 UNSEEN 1\)$/);
    assert.equal(r.close.typ, 'OK');
    assert.equal(r.logout.typ, 'BYE');

    // On disk: the first message expunged from INBOX, its copy in Trash with \Seen, the second flagged, the append in Sent.
    assert.deepEqual(curNames(maildir, 'INBOX', one.unique), []);
    assert.equal(curName(maildir, 'INBOX', two.unique), `${two.name}:2,F`);
    const trash = listDir(join(maildir, '.Trash', 'cur'));
    assert.equal(trash.length, 2);
    assert.deepEqual(trash.map((n) => n.slice(n.indexOf(':2,'))).sort(), [':2,F', ':2,S'], 'copied with the flags they had');
    const sent = listDir(join(maildir, '.Sent', 'cur'));
    assert.equal(sent.length, 1);
    assert.match(sent[0]!, /:2,S$/);
    assert.equal(readFileSync(join(maildir, '.Sent', 'cur', sent[0]!), 'latin1'), 'Subject: sent by python\n\nbody\n');
    assert.equal(statSync(join(maildir, '.Sent', 'cur', sent[0]!)).mtimeMs, 1_700_000_000_000);
  });

  test('imaplib over STARTTLS on a server without loopback plaintext: LOGIN before STARTTLS is refused, after it works', async () => {
    const msg = await deliverSimple(server, 'pytls', 'pt');
    const r = await imaplib(`
m = plain()
out['caps_before'] = [s(c) for c in m.capabilities]
out['login_clear'] = attempt(lambda: m.login('pytls', os.environ['P']))
m.starttls(ctx())
out['tls'] = m.sock.version()
out['caps_after'] = [s(c) for c in m.capabilities]
out['login'] = attempt(lambda: m.login('pytls', os.environ['P']))
out['select'] = r(m.select('INBOX', readonly=True))
out['fetch'] = r(m.fetch('1', '(BODY[])'))
out['flags'] = r(m.fetch('1', '(FLAGS)'))
out['store'] = r(m.store('1', '+FLAGS', '(\\\\Seen)'))
out['logout'] = r(m.logout())
`, { IMAP_PORT: imap, P: pw('pytls') });
    assert.ok(r.caps_before.includes('STARTTLS') && r.caps_before.includes('LOGINDISABLED'), JSON.stringify(r.caps_before));
    assert.ok(!r.caps_before.includes('AUTH=PLAIN'));
    assert.match(r.login_clear.err ?? '', /PRIVACYREQUIRED/, JSON.stringify(r.login_clear));
    assert.match(r.tls, /^TLSv1\.[23]$/);
    assert.ok(!r.caps_after.includes('STARTTLS') && !r.caps_after.includes('LOGINDISABLED') && r.caps_after.includes('AUTH=PLAIN'), JSON.stringify(r.caps_after));
    assert.equal(r.login.typ, 'OK');
    assert.equal(r.fetch.data[0][1], wire(msg.text).toString('latin1'));
    assert.doesNotMatch(r.flags.data[0], /\\Seen/, 'EXAMINE: reading does not set \\Seen');
    assert.equal(r.store.typ, 'NO');
    assert.match(r.store.data[0], /^\[READ-ONLY\]/);
    assert.match(curName(server.maildir('pytls'), 'INBOX', msg.unique), /:2,$/);
  });

  test('IMAPS (TLS from the first byte): imapflow and imaplib.IMAP4_SSL log in and read; no STARTTLS offered there', async () => {
    const msg = await deliverSimple(server, 'secure', 'tls');
    const c = await flow(imaps, 'secure', pw('secure'), { secure: true });
    try {
      assert.equal(c.secureConnection, true);
      await c.mailboxOpen('INBOX');
      const m = await c.fetchOne('1', { source: true });
      assert.ok(m && m.source?.equals(wire(msg.text)));
    } finally {
      await done(c);
    }
    const r = await imaplib(`
m = imaplib.IMAP4_SSL('127.0.0.1', PORT, ssl_context=ctx(), timeout=10)
out['caps'] = [s(c) for c in m.capabilities]
out['login'] = attempt(lambda: m.login('secure', os.environ['P']))
out['select'] = r(m.select('INBOX'))
m.logout()
`, { IMAP_PORT: imaps, P: pw('secure') });
    assert.ok(!r.caps.includes('STARTTLS') && !r.caps.includes('LOGINDISABLED') && r.caps.includes('AUTH=PLAIN'), JSON.stringify(r.caps));
    assert.equal(r.login.typ, 'OK');
    assert.deepEqual(r.select.data, ['1']);
  });
});
