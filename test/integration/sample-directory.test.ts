// The reference's sample directory and expected outcomes (directory-model §9.2) as a table, run
// against a real slapd loaded from schema/ and against the embedded directory: same answers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig } from '../../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../../src/directory/index.ts';
import type { Resolution } from '../../src/directory/types.ts';
import { silentLogger } from '../../src/log.ts';
import { MailError, parseAddress } from '../../src/mail.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

const O = 'ou=people,dc=example,dc=org';

type Expect = Partial<Record<string, unknown>> & { kind: Resolution['kind'] };
const rows: [id: string, address: string, expected: Expect][] = [
  ['T1', 'Alice@EXAMPLE.org', { kind: 'mailbox', dn: `uid=alice,${O}`, address: 'alice@example.org' }],
  ['T2', 'a.smith@example.org', { kind: 'mailbox', dn: `uid=alice,${O}`, mailbox: '/var/mail/example.org/alice/', quota: { bytes: 104857600, count: 10000 } }],
  ['T3', 'alice@example.net', { kind: 'mailbox', dn: `uid=alice,${O}` }],
  ['T4', 'bob-lists@example.org', { kind: 'mailbox', dn: `uid=bob,${O}`, matched: 'bob-catchall@example.org', extension: 'lists' }],
  ['T5', 'bobby-x@example.org', { kind: 'unknown', tried: ['bobby-x@example.org', 'bobby-catchall@example.org', 'catchall@example.org'] }],
  ['T6', 'carol@example.org', { kind: 'forward', forwards: ['carol@elsewhere.test'] }],
  ['T7', 'dave@example.org', { kind: 'mailbox', forwards: ['dave@partner.test'], delivery: { local: true, forward: true, program: false, reply: false } }],
  ['T9', 'erin@example.org', { kind: 'mailbox', delivery: { local: true, forward: true, program: false, reply: true }, replyText: '%HEADER%\nSubject: Away: %SUBJECT%\n\nI am away until Monday.' }],
  ['T10', 'frank@example.org', { kind: 'mailbox', quota: { bytes: 1048576, count: 1000 }, sizeMax: 524288 }],
  ['T13', 'grace@example.org', { kind: 'reject', status: '5.2.1' }],
  ['T14', 'heidi@example.org', { kind: 'reject', status: '5.1.1' }],
  ['T15', 'ivan@example.org', { kind: 'mailbox', accountStatus: 'noaccess' }],
  ['T16', 'judy@example.org', { kind: 'mailbox', mailHost: 'mx2.example.org', local: false }],
  ['T18', 'ticket@example.org', { kind: 'mailbox', mailbox: '/var/mail/example.org/ticket/', programs: ['/usr/local/bin/ticket-intake --queue support'], delivery: { local: false, forward: true, program: true, reply: false } }],
  ['T19', 'staff@example.org', { kind: 'group', membersOnly: true, senderConfirm: false, bounceAdmin: ['postmaster@example.org'] }],
  ['T19b', 'staff-return-x@example.org', { kind: 'group', matched: 'staff-catchall@example.org', extension: 'return-x' }],
  ['T21', 'whoever@example.net', { kind: 'forward', dn: `uid=nethelp,${O}`, matched: 'catchall@example.net', forwards: ['alice@example.org'] }],
  ['T29', 'x)(mail=*@example.org', { kind: 'unknown' }],
  ['inj1', '*@example.org', { kind: 'unknown' }],
  ['inj2', 'a*@example.org', { kind: 'unknown' }],
  ['inj3', '"al)(uid=*"@example.org', { kind: 'unknown' }],
  ['inj4', '"*)(|(mail=*"@example.org', { kind: 'unknown' }],
  ['inj5', '"\\\\2a"@example.org', { kind: 'unknown' }],
  ['inj6', 'alice)(objectClass=*@example.org', { kind: 'unknown' }],
  ['space', '" alice"@example.org', { kind: 'unknown' }],
  ['utf8', 'jürgen@example.org', { kind: 'unknown' }],
];

const logins: [login: string, password: string, ok: boolean | string][] = [
  ['alice', 'Alice-pw-1', true], // T25 {SSHA}
  ['a.smith@example.org', 'Alice-pw-1', true],
  ['bob', 'Bob-pw-2', true], // {SHA}
  ['dave', 'Dave-pw-4', true], // {CRYPT}$6$
  ['erin', 'Erin-pw-5', true], // {SSHA512}
  ['frank', 'Frank-pw-6', true], // T26 bare crypt
  ['judy', 'Judy-pw-11', true], // {ARGON2}
  ['alice', 'alice-pw-1', 'bad-password'],
  ['alice', '', 'empty-password'], // T28
  ['ivan', 'Ivan-pw-9', 'account-disabled'], // T15
  ['nobody', 'x', 'unknown-user'],
  ['*', 'Alice-pw-1', 'unknown-user'],
  ['al*', 'Alice-pw-1', 'unknown-user'],
  ['alice)(uid=*', 'Alice-pw-1', 'unknown-user'],
  [' alice', 'Alice-pw-1', 'unknown-user'],
  ['alice\u0000', 'Alice-pw-1', 'unknown-user'],
  ['\u0430lice', 'Alice-pw-1', 'unknown-user'],
  ['x'.repeat(1000), 'Alice-pw-1', 'unknown-user'],
];

function config(urls: string[], extra: Record<string, unknown> = {}) {
  return validateConfig({
    hostname: 'mx1.example.org',
    mailboxes: '/var/mail',
    directory: {
      urls, bindDN: urls.length > 0 ? 'cn=admin,dc=example,dc=org' : '', bindPassword: urls.length > 0 ? 'secret' : '',
      baseDN: 'dc=example,dc=org', timeoutMs: 2000, ...extra,
    },
    cache: { maxEntries: 0 },
    log: { level: 'silent' },
  });
}

function matrix(name: string, open: () => Promise<DirectoryHandle>) {
  describe(name, () => {
    let directory: DirectoryHandle;
    before(async () => { directory = await open(); });
    after(async () => { await directory.close(); });

    for (const [id, address, expected] of rows) {
      test(`${id} ${address} → ${expected.kind}`, async () => {
        const r = await directory.resolveRecipient(parseAddress(address));
        const shown = Object.fromEntries(Object.keys(expected).map((k) => [k, (r as unknown as Record<string, unknown>)[k]]));
        assert.deepEqual(shown, expected);
      });
    }

    test('T8 shared@example.org is claimed twice: temporary 4.3.5, never a guess', async () => {
      await assert.rejects(directory.resolveRecipient(parseAddress('shared@example.org')),
        (err: unknown) => err instanceof MailError && err.kind === 'temporary' && err.status === '4.3.5');
    });

    test('NUL, over-long and non-ASCII keys never reach a filter as wildcards', async () => {
      for (const local of ['al\u0000ice', 'x'.repeat(1000), 'a\\2a', '\u00e9*']) {
        const r = await directory.resolveRecipient({ local, domain: 'example.org' });
        assert.equal(r.kind, 'unknown', JSON.stringify(local));
      }
    });

    for (const [login, password, expected] of logins) {
      test(`login ${JSON.stringify(login.slice(0, 20))} → ${expected === true ? 'ok' : expected}`, async () => {
        const r = await directory.authenticate(login, password);
        assert.equal(r.ok ? true : r.reason, expected);
      });
    }

    test('a successful login carries the entry, its addresses and mailbox', async () => {
      const r = await directory.authenticate('alice', 'Alice-pw-1');
      assert.ok(r.ok);
      assert.equal(r.dn, `uid=alice,${O}`);
      assert.deepEqual([...r.addresses].sort(), ['a.smith@example.org', 'alice@example.net', 'alice@example.org']);
      assert.equal(r.mailbox, '/var/mail/example.org/alice/');
    });
  });
}

let slapd: Slapd;
before(async () => { slapd = await startSlapd(); });
after(async () => { await slapd.stop(); });

matrix('real slapd, qmail mode', () => createDirectory(config([slapd.url]), { log: silentLogger() }));
matrix('embedded directory', () => createDirectory(config([]), { log: silentLogger() }));

describe('postfix mode for example.net (T21 via @example.net)', () => {
  let directory: DirectoryHandle;
  before(async () => {
    directory = await createDirectory(config([slapd.url], { resolution: { domains: { 'example.net': { mode: 'postfix' } } } }), { log: silentLogger() });
  });
  after(async () => { await directory.close(); });
  test('whoever@example.net matches @example.net', async () => {
    const r = await directory.resolveRecipient(parseAddress('whoever@example.net'));
    assert.equal(r.kind, 'forward');
    assert.equal(r.kind === 'forward' && r.matched, '@example.net');
  });
  test('alice+tag@example.net falls back to alice@example.net', async () => {
    const r = await directory.resolveRecipient(parseAddress('alice+tag@example.net'));
    assert.equal(r.kind === 'mailbox' && r.dn, `uid=alice,${O}`);
    assert.equal(r.kind === 'mailbox' && r.extension, 'tag');
  });
});

describe('bind-as-user authentication', () => {
  let directory: DirectoryHandle;
  before(async () => {
    directory = await createDirectory(config([slapd.url], { auth: { method: 'bind' } }), { log: silentLogger() });
  });
  after(async () => { await directory.close(); });
  test('alice binds with her password; a wrong or empty one is refused', async () => {
    assert.equal((await directory.authenticate('alice', 'Alice-pw-1')).ok, true);
    assert.equal((await directory.authenticate('bob', 'Bob-pw-2')).ok, true);
    const wrong = await directory.authenticate('alice', 'nope');
    assert.equal(wrong.ok ? 'ok' : wrong.reason, 'bad-password');
    const empty = await directory.authenticate('alice', '');
    assert.equal(empty.ok ? 'ok' : empty.reason, 'empty-password');
  });
});
