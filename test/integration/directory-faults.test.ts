// Directory fault handling against real slapd: failover between URLs, LDAP down and recovery, a hung
// (SIGSTOPped) server, wrong baseDN, wrong bind password, and an address claimed by two entries.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfig, type Config } from '../../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../../src/directory/index.ts';
import type { Logger } from '../../src/log.ts';
import { MailError, parseAddress } from '../../src/mail.ts';
import { ERROR, memoryLog, WARN } from '../harness/log.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

// ---------------------------------------------------------------------------------------------
// Helpers


function config(urls: string[], overrides: { directory?: Record<string, unknown>; cache?: Record<string, unknown> } = {}): Config {
  return validateConfig({
    hostname: 'mx1.example.org',
    localDomains: ['example.org', 'example.net'],
    mailboxes: '/var/mail',
    directory: {
      urls,
      bindDN: 'cn=admin,dc=example,dc=org',
      bindPassword: 'secret',
      baseDN: 'dc=example,dc=org',
      timeoutMs: 1000,
      connectTimeoutMs: 500,
      ...overrides.directory,
    },
    // No cache at all: every lookup asks LDAP, so faults show up immediately.
    cache: { maxEntries: 0, redis: '', ...overrides.cache },
    log: { level: 'silent' },
  });
}

const addr = parseAddress;

/** assert.rejects validator: a temporary MailError with this status. */
function temporaryError(status: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MailError, `expected a MailError, got ${String(err)}`);
    assert.equal(err.kind, 'temporary', err.message);
    assert.equal(err.status, status, err.message);
    return true;
  };
}

async function withDirectory<T>(cfg: Config, log: Logger, fn: (d: DirectoryHandle) => Promise<T>): Promise<T> {
  const directory = await createDirectory(cfg, { log });
  try {
    return await fn(directory);
  } finally {
    await directory.close();
  }
}

async function expectMailbox(directory: DirectoryHandle, address: string): Promise<void> {
  const r = await directory.resolveRecipient(addr(address));
  assert.equal(r.kind, 'mailbox', JSON.stringify(r));
}

// ---------------------------------------------------------------------------------------------

describe('directory faults (real slapd)', () => {
  let first: Slapd;
  let second: Slapd;

  before(async () => {
    [first, second] = await Promise.all([startSlapd(), startSlapd()]);
  });

  after(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
  });

  test('failover: the second URL answers while the first server is down', async () => {
    const { log, lines } = memoryLog();
    await withDirectory(config([first.url, second.url]), log, async (directory) => {
      await expectMailbox(directory, 'alice@example.org');
      await first.stop();
      try {
        await expectMailbox(directory, 'alice@example.org');
        await expectMailbox(directory, 'bob@example.org');
      } finally {
        await first.start();
      }
      await expectMailbox(directory, 'alice@example.org');
      await expectMailbox(directory, 'frank@example.org');
    });
    // The outage of the first server was seen (and logged), so the answers above came from the second.
    assert.ok(lines().some((l) => l.level === WARN && l.url === first.url), 'no warning about the first server');
  });

  test('LDAP down: temporary 4.4.3 for lookups and logins, never "unknown"; recovers without a restart', async () => {
    const { log } = memoryLog();
    await withDirectory(config([first.url]), log, async (directory) => {
      await expectMailbox(directory, 'alice@example.org');
      const login = await directory.authenticate('alice', 'Alice-pw-1');
      assert.equal(login.ok, true, JSON.stringify(login));

      await first.stop();
      try {
        await assert.rejects(directory.resolveRecipient(addr('alice@example.org')), temporaryError('4.4.3'));
        // An address that does not exist must not turn into "unknown" either.
        await assert.rejects(directory.resolveRecipient(addr('nobody-here@example.org')), temporaryError('4.4.3'));
        await assert.rejects(directory.lookup(addr('bob@example.org')), temporaryError('4.4.3'));
        await assert.rejects(directory.authenticate('alice', 'Alice-pw-1'), (err: unknown) => {
          assert.ok(err instanceof MailError, String(err));
          assert.equal(err.kind, 'temporary');
          return true;
        });
      } finally {
        await first.start();
      }

      await expectMailbox(directory, 'alice@example.org');
      const again = await directory.authenticate('alice', 'Alice-pw-1');
      assert.equal(again.ok, true, JSON.stringify(again));
      const miss = await directory.resolveRecipient(addr('nobody-here@example.org'));
      assert.equal(miss.kind, 'unknown');
    });
  });

  test('hung server (SIGSTOP): lookups fail temporary within the timeout, then work after SIGCONT', async () => {
    const { log } = memoryLog();
    await withDirectory(config([first.url]), log, async (directory) => {
      await expectMailbox(directory, 'alice@example.org');
      await first.pause();
      let continued = false;
      try {
        const started = Date.now();
        await assert.rejects(directory.resolveRecipient(addr('alice@example.org')), temporaryError('4.4.3'));
        const elapsed = Date.now() - started;
        // A bound proving the lookup does not hang; not a performance assertion.
        assert.ok(elapsed < 5000, `lookup against a hung server took ${elapsed} ms`);

        first.resume();
        continued = true;
        // The directory may have marked the server down; it is the only URL, so it is tried anyway.
        await expectMailbox(directory, 'alice@example.org');
        await expectMailbox(directory, 'bob@example.org');
      } finally {
        if (!continued) first.resume();
      }
    });
  });

  test('a baseDN that does not exist is temporary 4.4.3 (never 5.1.1) and logged as an error naming baseDN', async () => {
    const { log, lines } = memoryLog();
    await withDirectory(config([first.url], { directory: { baseDN: 'dc=nowhere,dc=org' } }), log, async (directory) => {
      await assert.rejects(directory.resolveRecipient(addr('alice@example.org')), temporaryError('4.4.3'));
      await assert.rejects(directory.resolveRecipient(addr('nobody-here@example.org')), temporaryError('4.4.3'));
    });
    const errors = lines().filter((l) => l.level >= ERROR && /baseDN/.test(JSON.stringify(l)));
    assert.ok(errors.length > 0, `no error line mentioning baseDN in:\n${lines().map((l) => JSON.stringify(l)).join('\n')}`);
    assert.ok(errors.some((l) => l.baseDN === 'dc=nowhere,dc=org'), JSON.stringify(errors));
  });

  test('a wrong bind password is temporary 4.4.3 and logged as an error that does not contain the password', async () => {
    const { log, lines, text } = memoryLog();
    const wrong = 'Wr0ng-Bind-Passw0rd';
    await withDirectory(config([first.url], { directory: { bindPassword: wrong } }), log, async (directory) => {
      await assert.rejects(directory.resolveRecipient(addr('alice@example.org')), temporaryError('4.4.3'));
    });
    const errors = lines().filter((l) => l.level >= ERROR);
    assert.ok(errors.length > 0, `no error line in:\n${text()}`);
    assert.ok(errors.some((l) => /bind/i.test(l.msg)), JSON.stringify(errors));
    assert.ok(!text().includes(wrong), 'the bind password appears in the log');
  });

  test('an address on two entries: temporary 4.3.5 with a warning naming both DNs; "bounce" rejects 5.3.5', async () => {
    const tempfail = memoryLog();
    await withDirectory(config([first.url]), tempfail.log, async (directory) => {
      await assert.rejects(directory.resolveRecipient(addr('shared@example.org')), temporaryError('4.3.5'));
    });
    const warnings = tempfail.lines().filter((l) => l.level === WARN && /uid=dave,/i.test(JSON.stringify(l)) && /uid=erin,/i.test(JSON.stringify(l)));
    assert.equal(warnings.length, 1, `expected one warning naming both DNs in:\n${tempfail.text()}`);

    const bounce = memoryLog();
    await withDirectory(config([first.url], { directory: { resolution: { ambiguous: 'bounce' } } }), bounce.log, async (directory) => {
      const r = await directory.resolveRecipient(addr('shared@example.org'));
      assert.equal(r.kind, 'reject', JSON.stringify(r));
      if (r.kind !== 'reject') return;
      assert.equal(r.status, '5.3.5');
      assert.match(r.dn, /^uid=(dave|erin),ou=people,dc=example,dc=org$/i);
    });
  });
});
