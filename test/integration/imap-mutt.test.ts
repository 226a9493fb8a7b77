// One run of Debian's mutt against ldapmta's IMAP, as a terminal user would drive it: mutt logs in
// over STARTTLS, lists INBOX, saves the first message to Trash, flags the next, purges and quits.
// mutt needs a terminal, so it runs under script(1) with its keys pushed from the muttrc. The
// result is checked where it lands: the Maildir files and their flags.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { marker, sendOnce, simpleMessage, waitFor } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };
let slapd: Slapd;
let server: TestServer;
let home: string;

before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd, { smtp: { tls: TLS }, listen: { imap: '127.0.0.1:0' } });
  home = mkdtempSync(join(tmpdir(), 'ldapmta-mutt-'));
});

after(async () => {
  await server?.stop();
  await slapd?.stop();
  if (home !== undefined) rmSync(home, { recursive: true, force: true });
});

/** Runs mutt with `rc` in a pseudo-terminal; resolves with its exit code and what it drew. */
function runMutt(rc: string): Promise<{ code: number | null; screen: string }> {
  const rcFile = join(home, 'muttrc');
  writeFileSync(rcFile, rc);
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', `mutt -n -F ${rcFile}`, '/dev/null'], {
      cwd: home, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TERM: 'xterm', LANG: 'C.UTF-8' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (screen += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, screen: screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '') });
    });
  });
}

const files = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith('.')).sort();

test('mutt over STARTTLS: logs in, sees INBOX, saves one message to Trash, flags another, purges and quits', async () => {
  const maildir = server.maildir('alice');
  const marks = [marker('mutt-first'), marker('mutt-second')];
  for (const mark of marks) {
    const sent = await sendOnce(server.smtpPort, 'sender@outside.test', ['alice@example.org'], simpleMessage(mark, `body of ${mark}\r\n`));
    assert.equal(sent.end?.code, 250);
  }
  await waitFor('both messages delivered', async () => (files(join(maildir, 'new')).length === 2 ? true : null), 10_000);
  const port = server.running.ports.imap!;
  const { code, screen } = await runMutt([
    `set folder="imap://alice@127.0.0.1:${port}/"`,
    'set imap_pass="Alice-pw-1"',
    'set spoolfile="+INBOX"',
    'set ssl_starttls=yes',
    'set ssl_force_tls=yes',
    'set ssl_verify_host=no',
    // The test certificate is self-signed: trusted by putting it in mutt's certificate file.
    `set certificate_file=${TLS.cert}`,
    'set move=no',
    'set delete=yes',
    'set confirmappend=no',
    'set confirmcreate=no',
    'set header_cache=""',
    'set message_cachedir=""',
    'set sort=date-sent',
    // Save message 1 to =Trash (mutt copies, marks it deleted, moves to the next), flag that one, sync, quit.
    'push "<save-message>=Trash<enter><flag-message><sync-mailbox><quit>"',
    '',
  ].join('\n'));
  assert.equal(code, 0, `mutt exited ${code}:\n${screen.slice(-2000)}`);
  assert.match(screen, /SSL\/TLS connection using TLS1\.[23]/, 'mutt used STARTTLS');
  assert.match(screen, new RegExp(`${marks[1]!}[\\s\\S]*Flag:1`), 'mutt listed the message left, flagged');

  const trash = files(join(maildir, '.Trash', 'cur'));
  assert.equal(trash.length, 1, `one message in Trash: ${JSON.stringify(trash)}`);
  assert.match(readFileSync(join(maildir, '.Trash', 'cur', trash[0]!), 'latin1'), new RegExp(marks[0]!));
  const inbox = files(join(maildir, 'cur'));
  assert.equal(inbox.length, 1, `the saved one was purged from INBOX: ${JSON.stringify(inbox)}`);
  assert.match(readFileSync(join(maildir, 'cur', inbox[0]!), 'latin1'), new RegExp(marks[1]!));
  assert.match(inbox[0]!, /:2,[A-Z]*F/, 'the second message carries the F (flagged) letter');
});
