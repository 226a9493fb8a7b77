// Runs every test file with Node's own test runner (TypeScript through tsx), prints the spec
// report and a closing "N passed, N failed" line. Says which Debian packages are missing first.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const needed = { slapd: 'slapd', slapadd: 'slapd', ldapsearch: 'ldap-utils', 'redis-server': 'redis-server', python3: 'python3', mutt: 'mutt', script: 'bsdutils', samba: 'samba-ad-dc samba-ad-provision', 'samba-tool': 'samba-ad-dc samba-ad-provision', openssl: 'openssl', chromium: 'chromium', 'systemd-analyze': 'systemd', clamd: 'clamav-daemon', spamd: 'spamd', rspamd: 'rspamd' };
const missing = Object.entries(needed).filter(([bin]) => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  console.error(`missing programs: ${missing.map(([bin]) => bin).join(', ')}\ninstall them with: apt-get install -y ${packages}`);
  process.exit(1);
}

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2);
const files = only.length > 0 ? only : ['unit', 'integration'].flatMap((dir) =>
  readdirSync(join(root, 'test', dir)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join(root, 'test', dir, f)));

process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import tsx`.trim();
let passed = 0;
let failed = 0;
const stream = run({ files, concurrency: 2, timeout: 300_000 });
stream.on('test:pass', (event) => { if (event.details?.type !== 'suite') passed++; });
stream.on('test:fail', (event) => { if (event.details?.type !== 'suite') failed++; });
const report = stream.compose(spec);
report.pipe(process.stdout, { end: false });
// The closing line comes after the reporter's own summary, so it is the last line printed.
report.on('end', () => {
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
});
