// Program delivery (deliveryProgramPath with qmailDotMode ldapwithprog): allowlisted programs run
// without a shell as an unprivileged user with the message on stdin, qmail's exit codes decide, a
// time limit applies, and with programs off the line is ignored. Real slapd, real SMTP, real processes.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { addressOf, assertReply, marker, messagesWith, simpleMessage, todoFiles, transaction, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

const SCRIPT = `#!/bin/sh
out="$1"; code="$2"
[ "$code" = sleep ] && { sleep 30; code=0; }
cat > "$out/$LOCAL.msg"
id -u > "$out/$LOCAL.uid"
printf '%s|%s|%s' "$SENDER" "$RECIPIENT" "$DTLINE" > "$out/$LOCAL.env"
echo "exiting $code" >&2
exit "$code"
`;

function user(name: string, line: string): string {
  return `dn: uid=${name},ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: qmailUser
cn: ${name}
sn: ${name}
uid: ${name}
mail: ${name}@example.org
mailMessageStore: example.org/${name}/
qmailDotMode: ldapwithprog
deliveryProgramPath: ${line}
`;
}

async function send(port: number, from: string, to: string, subject: string): Promise<void> {
  const t = await Transcript.open(port);
  try {
    await t.hello();
    const result = await transaction(t, from, [to], simpleMessage(subject, 'to a program\r\n'));
    assertReply(result.end!, 250, '2.6.0', `end of data for ${to}`);
    await t.command('QUIT').catch(() => undefined);
  } finally {
    t.close();
  }
}

describe('program delivery', () => {
  let slapd: Slapd;
  let server: TestServer;
  let off: TestServer;
  let serial: TestServer;
  let dir: string;
  let out: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ldapmta-programs-'));
    chmodSync(dir, 0o755);
    out = join(dir, 'out');
    mkdirSync(out);
    chmodSync(out, 0o777);
    const script = join(dir, 'deliver.sh');
    writeFileSync(script, SCRIPT, { mode: 0o755 });
    // Appends "<LOCAL> start|end <ns>" around half a second of work, to see whether two runs overlap.
    const timed = join(dir, 'timed.sh');
    writeFileSync(timed, `#!/bin/sh\ncat > /dev/null\necho "$LOCAL start $(date +%s%N)" >> "$1/timed.log"\nsleep 0.5\necho "$LOCAL end $(date +%s%N)" >> "$1/timed.log"\n`, { mode: 0o755 });
    slapd = await startSlapd();
    await slapd.ldapadd([
      user('prog0', `${script} ${out} 0`),
      user('prog99', `${script} ${out} 99`),
      user('prog100', `${script} ${out} 100`),
      user('prog75', `${script} ${out} 75`),
      user('progslow', `${script} ${out} sleep`),
      user('progshell', '/bin/sh -c id'),
      user('progmeta', `${script} ${out} 0; rm -rf /`),
      user('timed1', `${timed} ${out}`),
      user('timed2', `${timed} ${out}`),
    ].join('\n'));
    const queue = { retryMinSeconds: 60 };
    server = await startServer(slapd, { queue, programs: { enabled: true, allow: [script], user: 'nobody', timeoutSeconds: 2 } });
    off = await startServer(slapd, { queue });
    serial = await startServer(slapd, { queue, delivery: { concurrencyLocal: 1 }, programs: { enabled: true, allow: [timed], user: 'nobody', timeoutSeconds: 5 } });
  });
  after(async () => {
    await server?.stop();
    await off?.stop();
    await serial?.stop();
    await slapd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const pendingStatus = async (s: TestServer, address: string) => waitFor(`a deferral for ${address}`, async () => {
    const r = (await todoFiles(s.config.spool)).flatMap((t) => t.recipients).find((x) => addressOf(x.address) === address && x.attempts > 0);
    return r ?? null;
  }, 10_000);

  test('programs count against delivery.concurrencyLocal: with 1, two programs due at once run one after the other', async () => {
    await Promise.all([send(serial.smtpPort, 'bob@example.org', 'timed1@example.org', marker('timed1')),
      send(serial.smtpPort, 'bob@example.org', 'timed2@example.org', marker('timed2'))]);
    const log = join(out, 'timed.log');
    const lines = await waitFor('both programs to finish', async () => {
      const text = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
      return text.filter((l) => / end /.test(l)).length === 2 ? text : null;
    }, 15_000);
    const at = (who: string, what: string) => Number(lines.find((l) => l.startsWith(`${who} ${what} `))!.split(' ')[2]);
    const [first, second] = at('timed1', 'start') < at('timed2', 'start') ? ['timed1', 'timed2'] : ['timed2', 'timed1'];
    assert.ok(at(second, 'start') >= at(first, 'end'), `overlapping runs: ${lines.join(' | ')}`);
  });

  test('exit 0: the program got the message on stdin, ran as nobody with qmail\'s variables, and the mailbox got its copy too', async () => {
    const subject = marker('prog0');
    await send(server.smtpPort, 'bob@example.org', 'prog0@example.org', subject);
    await waitForMessages(server.maildir('prog0'), subject);
    const stdin = readFileSync(join(out, 'prog0.msg'), 'utf8');
    assert.match(stdin, new RegExp(`Subject: ${subject}\\n\\nto a program\\n$`), 'LF line ends, as qmail gives programs');
    assert.doesNotMatch(stdin, /\r/);
    assert.equal(readFileSync(join(out, 'prog0.uid'), 'utf8').trim(), '65534');
    assert.equal(readFileSync(join(out, 'prog0.env'), 'utf8'), 'bob@example.org|prog0@example.org|Delivered-To: prog0@example.org\n');
  });

  test('exit 99: success, and the mailbox delivery after it is skipped', async () => {
    const subject = marker('prog99');
    await send(server.smtpPort, 'bob@example.org', 'prog99@example.org', subject);
    await waitFor('the program to run', async () => existsSync(join(out, 'prog99.msg')) && readFileSync(join(out, 'prog99.msg'), 'utf8').includes(subject), 10_000);
    await waitFor('the queue to drain', async () => (await todoFiles(server.config.spool)).every((t) => !t.recipients.some((r) => addressOf(r.address) === 'prog99@example.org')), 10_000);
    assert.deepEqual(await messagesWith(server.maildir('prog99'), subject), []);
  });

  test('exit 100: permanent, one DSN to the sender with the program\'s stderr', async () => {
    const subject = marker('prog100');
    await send(server.smtpPort, 'bob@example.org', 'prog100@example.org', subject);
    const [dsn] = await waitForMessages(server.maildir('bob'), subject, 1, 10_000);
    assert.match(dsn!.body, /Status: 5\.3\.0/);
    assert.match(dsn!.body, /exit 100\): exiting 100/);
  });

  test('exit 75 and a program over its time limit are temporary: the message stays queued', async () => {
    await send(server.smtpPort, 'bob@example.org', 'prog75@example.org', marker('prog75'));
    assert.equal((await pendingStatus(server, 'prog75@example.org')).lastError?.status, '4.3.0');
    await send(server.smtpPort, 'bob@example.org', 'progslow@example.org', marker('progslow'));
    const slow = await pendingStatus(server, 'progslow@example.org');
    assert.match(slow.lastError?.text ?? '', /timed out after 2 s/);
  });

  test('a program not on the allowlist, or a line with shell syntax, fails permanently with 5.3.5', async () => {
    for (const name of ['progshell', 'progmeta']) {
      const subject = marker(name);
      await send(server.smtpPort, 'bob@example.org', `${name}@example.org`, subject);
      const [dsn] = await waitForMessages(server.maildir('bob'), subject, 1, 10_000);
      assert.match(dsn!.body, /Status: 5\.3\.5/, name);
    }
    assert.ok(!existsSync(join(out, 'progmeta.msg')), 'nothing ran');
  });

  test('with programs off (the default) the line is ignored and the mailbox still gets the message', async () => {
    const subject = marker('off');
    rmSync(join(out, 'prog0.msg'), { force: true });
    await send(off.smtpPort, 'bob@example.org', 'prog0@example.org', subject);
    await waitForMessages(off.maildir('prog0'), subject);
    assert.ok(!existsSync(join(out, 'prog0.msg')), 'the program did not run');
  });
});
