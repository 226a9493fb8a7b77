// Unit tests for src/directory/password.ts and the crypt(3) implementations under src/directory/crypt/.
// Vectors were generated once with independent tools and are hard-coded; never run those tools here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { passwordScheme, verifyPassword } from '../../src/directory/password.ts';
import { desCrypt } from '../../src/directory/crypt/descrypt.ts';
import { md5Crypt } from '../../src/directory/crypt/md5crypt.ts';
import { shaCrypt } from '../../src/directory/crypt/shacrypt.ts';

type Vector = readonly [label: string, password: string, stored: string];

const STRICT = { allowCleartext: false };
const LENIENT = { allowCleartext: true };

/** A different password: prefixing changes the first byte, so even DES and bcrypt truncation see it. */
const wrong = (password: string): string => `!${password}`;

// The vectors the project requires.
const REQUIRED: readonly Vector[] = [
  ['SSHA', 'Alice-pw-1', '{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=='],
  ['SHA', 'Bob-pw-2', '{SHA}ts21aLnuUCFWXnboLAYgOfLofFE='],
  ['CRYPT $6$', 'Dave-pw-4', '{CRYPT}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE.c2Szx2A7X8G4bwwsStgpP4YqsyFBXh/AVzDCog4VAB1'],
  ['SSHA512', 'Erin-pw-5', '{SSHA512}KaREoalqXX+LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZILl6yj8ZdBuHHrMtlRfpnE6Q2+5GCT3NhbHRzYWx0'],
  ['bare $1$', 'Frank-pw-6', '$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
  ['ARGON2 argon2i', 'Judy-pw-11', '{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
];

// slappasswd (OpenLDAP 2.5) with -s 'Olivia-pw-13'.
const SLAPPASSWD: readonly Vector[] = [
  ['slappasswd SSHA', 'Olivia-pw-13', '{SSHA}Y15z2WuqKjWIB7/I9LLvgRTXwQLW7X1k'],
  ['slappasswd SHA', 'Olivia-pw-13', '{SHA}87kktPgNMwPVM6uuf7bINQu7FMU='],
  ['slappasswd MD5', 'Olivia-pw-13', '{MD5}sfSUVXHzhHViHNgKIR9TYg=='],
  ['slappasswd SMD5', 'Olivia-pw-13', '{SMD5}R0RlLpdzmkMNhIKk2Tix7HKExNw='],
  ['slappasswd CRYPT $6$', 'Olivia-pw-13', '{CRYPT}$6$YZdROIk8rYzkY8Wc$mcNsiRUFIxG.Rd2y35k5yOkrHRujx9Joe2VE3H5Rj0CXbkA1ZjmJ0fANne7BUI6dmlIxyvq.dQYDkLrGgxl0a/'],
  ['slappasswd CRYPT $1$', 'Olivia-pw-13', '{CRYPT}$1$eBLyvnFl$ZhsMas9pLNkJkvwKJSW1E1'],
  ['slappasswd CRYPT DES', 'Olivia-pw-13', '{CRYPT}EfnJAGscay6Q2'],
];

// Python hashlib: base64(H(pw)) and base64(H(pw‖salt)‖salt), salt 01 02 03 04 fe ff 00 80.
const SHA2_DIGESTS: readonly Vector[] = [
  ['SHA256', 'Mallory-pw-15', '{SHA256}WQ5WcLlMImaaClUwRgz35Kv7qsqPvk7QMi2B9Mgx/7Y='],
  ['SSHA256', 'Mallory-pw-15', '{SSHA256}9SDKeVtUEdHZlYbJiRnaaNzo2goUJBZQP7XaRr7vVSABAgME/v8AgA=='],
  ['SHA384', 'Mallory-pw-15', '{SHA384}x47zmP09/5VTqmzndg6GESFFzXPaNlXknr/d0LaY6E1Z7iftee+4+uaD9+yYTN05'],
  ['SSHA384', 'Mallory-pw-15', '{SSHA384}OkgyXSZKfbleOpz4tonzmEpfwibrB8fvStRmDFYHg9DHk2a+1NzBNJJQyxW/rZ70AQIDBP7/AIA='],
  ['SHA512', 'Mallory-pw-15', '{SHA512}9Oxs9Ao1oktNH4jtkb4IbXvrak4/E0x4hww3wZxlJbB+x4DMK9katroXQ4O970h9pXdqTHE+dNuKIRk87nnQYw=='],
  ['SSHA512', 'Mallory-pw-15', '{SSHA512}/9NCYWDfs7BG5RzaJzcLGjMdbqlib4XgVft0fErMOu6RlALexZX5IBJeff34PN8s2aNy4roC0geL6PKQA4sqsAECAwT+/wCA'],
  ['SSHA UTF-8 password', 'pässwörd-ü', '{SSHA}q8R2vU2hKEvja+05NOK/0yxiDTtzYWx0'],
];

// openssl passwd -1 -salt S PW (OpenSSL 3.0).
const MD5_CRYPT: readonly Vector[] = [
  ['md5crypt short salt', 'pw', '$1$X$cVCRz773kZlpIlgDZ.0PV.'],
  ['md5crypt qmail-ldap', 'Frank-pw-6', '$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
  ['md5crypt long password', 'a much longer password exceeding sixteen bytes', '$1$saltsalt$3Vpgic8h863u0VCXJ1NKo0'],
  ['md5crypt one-char password', 'x', '$1$ab$e2KlfqG5YBMTjSz7XF.Eu1'],
];

// Drepper's published SHA-crypt vectors (confirmed with openssl passwd / libxcrypt), then
// openssl passwd -5/-6 and python3 crypt (libxcrypt) vectors.
const SHA_CRYPT: readonly Vector[] = [
  ['Drepper $5$ default rounds', 'Hello world!', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'],
  ['Drepper $5$ rounds=10000', 'Hello world!', '$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA'],
  ['Drepper $5$ salt cut to 16', 'This is just a test', '$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5'],
  ['Drepper $5$ rounds=77777', 'we have a short salt string but not a short password', '$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/'],
  ['Drepper $5$ rounds clamped to 1000', 'the minimum number is still observed', '$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC'],
  ['Drepper $6$ default rounds', 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['Drepper $6$ rounds=10000', 'Hello world!', '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['openssl $5$ rounds=1000', 'Ivan-pw-9', '$5$rounds=1000$Ivan$8mPA9cw4Av1GqiGXgVmPF1qYdAA1R9rSnZgx0F16.K/'],
  ['openssl $5$', 'Heidi-pw-8', '$5$kS4.GL1k$yrGELk60NcvYPgcV04CJH5UTdHxIg42qgmf64UhZwP2'],
  ['openssl $6$ one-char salt', 'Quentin-pw', '$6$q$U1sKKf2DBUS6znJbVN3tTwN6UVOlwD4X.BTL0TcYGrH7kFr1IffNL56I3VU2cyRsGc6O1196dPZAo8ZzW3Lod0'],
  ['openssl $6$ UTF-8 password', 'pässwörd-ü', '$6$rounds=2000$longsaltlongsalt$QTgTIzVqbNBNUKsIaSSYWGXZUfGV75WAWr4qXMO36WA73j6.EYFYz8MCqg3WD/noD/oHp73ksZhNugbh4lyin1'],
  ['libxcrypt $5$ rounds=1000', 'Ivan-pw-9', '$5$rounds=1000$abcdefgh$ou9jnPl0hfusm8xpWtD6E49NxNxdkZ.4uGTP5Hp6E.7'],
  ['libxcrypt $6$ rounds=1400', 'a short string', '$6$rounds=1400$anotherlongsalts$SAu0xGXppllhPD9yNR32OgiJVhVXUbqF.y4UgOGG7d/nFYCFpaB43f5cW0d.q2OdGqPxRgXYYRc0Cg4uiz4PD/'],
];

// python3 crypt (libxcrypt) traditional DES.
const DES_CRYPT: readonly Vector[] = [
  ['DES', 'Grace-pw-7', 'abPS7tw188M.6'],
  ['DES salt ..', 'Grace-pw', '..E8c2zR2JPVQ'],
  ['DES salt zz', 'password', 'zzXUHfURnGg8I'],
  ['DES salt Q/', '12345678extra', 'Q/S3TZTcnzFRQ'],
  ['DES salt ./', 'test', './H7.I.sVn7zo'],
];

// python3 crypt (libxcrypt) bcrypt, cost 4.
const BCRYPT: readonly Vector[] = [
  ['bcrypt $2b$', 'Kate-pw-10', '$2b$04$abcdefghijklmnopqrstuu7hnaSw9DBEpKSR16mZHApz3zPQIYOye'],
  ['bcrypt $2a$', 'Kate-pw-10', '$2a$04$abcdefghijklmnopqrstuu7hnaSw9DBEpKSR16mZHApz3zPQIYOye'],
  ['bcrypt $2y$', 'Kate-pw-10', '$2y$04$abcdefghijklmnopqrstuu7hnaSw9DBEpKSR16mZHApz3zPQIYOye'],
  ['bcrypt 80-byte password', 'x'.repeat(80), '$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i'],
];

// The reference argon2 CLI (phc-winner-argon2 20171227), salt "saltsaltsalt".
const ARGON2: readonly Vector[] = [
  ['argon2id', 'Peggy-pw-14', '{ARGON2}$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$An+34VbQgbE/843LvromBEXRKH8bIbxjxTkhI0eF2pQ'],
  ['argon2d p=2', 'Peggy-pw-14', '{ARGON2}$argon2d$v=19$m=1024,t=2,p=2$c2FsdHNhbHRzYWx0$Im+ffbp6aOUMOOn3q40kouYO8KnmPBj3AmxHDV6upMo'],
  ['argon2i', 'Peggy-pw-14', '{ARGON2}$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$iG+t2iNJsNpvMkIvZBqx3OQ8xyqhpdaRdPGMohljrPQ'],
];

const YESCRYPT = '$y$j9T$abcdefghijklmnop$npdcvX9oOS/KgvwNJXqKqe1WKgKN6p4PspMcoHdIaxA'; // python3 crypt, 'Yves-pw-12'

function vectorSuite(title: string, vectors: readonly Vector[], prefix = ''): void {
  describe(title, () => {
    for (const [label, password, stored] of vectors) {
      it(`${label}: accepts the right password`, async () => {
        assert.equal(await verifyPassword(prefix + stored, password, STRICT), true);
      });
      it(`${label}: rejects a wrong password`, async () => {
        assert.equal(await verifyPassword(prefix + stored, wrong(password), STRICT), false);
      });
      it(`${label}: rejects the empty password`, async () => {
        assert.equal(await verifyPassword(prefix + stored, '', LENIENT), false);
      });
    }
  });
}

vectorSuite('required vectors', REQUIRED);
vectorSuite('slappasswd vectors', SLAPPASSWD);
vectorSuite('SHA-2 digest schemes', SHA2_DIGESTS);
vectorSuite('MD5-crypt, bare', MD5_CRYPT);
vectorSuite('MD5-crypt under {CRYPT}', MD5_CRYPT, '{CRYPT}');
vectorSuite('MD5-crypt under {MD5-CRYPT}', MD5_CRYPT, '{MD5-CRYPT}');
vectorSuite('SHA-crypt under {CRYPT}', SHA_CRYPT, '{CRYPT}');
vectorSuite('DES crypt, bare', DES_CRYPT);
vectorSuite('DES crypt under {crypt}', DES_CRYPT, '{crypt}');
vectorSuite('bcrypt under {CRYPT}', BCRYPT, '{CRYPT}');
vectorSuite('bcrypt under {BLF-CRYPT}', BCRYPT, '{BLF-CRYPT}');
vectorSuite('Argon2', ARGON2);

describe('crypt implementations match the independent generators', () => {
  const compute = async (stored: string, password: string): Promise<string | null> => {
    const pw = Buffer.from(password);
    if (stored.startsWith('$1$')) return md5Crypt(pw, stored);
    if (stored.startsWith('$5$') || stored.startsWith('$6$')) return shaCrypt(pw, stored);
    return desCrypt(pw, stored);
  };
  for (const [label, password, stored] of [...MD5_CRYPT, ...SHA_CRYPT, ...DES_CRYPT]) {
    it(label, async () => assert.equal(await compute(stored, password), stored));
  }
  it('SHA-crypt cuts the salt to 16 characters and keeps an explicit rounds=5000', async () => {
    assert.equal(await shaCrypt(Buffer.from('This is just a test'), '$5$rounds=5000$toolongsaltstring'), SHA_CRYPT[2]?.[2]);
  });
  it('SHA-crypt refuses a rounds field crypt(3) would rewrite', async () => {
    for (const rounds of ['10', '01000', '1000000000', '99999999999999999999']) {
      assert.equal(await shaCrypt(Buffer.from('pw'), `$5$rounds=${rounds}$salt`), null, rounds);
    }
  });
  it('each crypt function refuses a setting of another family', async () => {
    assert.equal(md5Crypt(Buffer.from('pw'), '$5$salt'), null);
    assert.equal(await shaCrypt(Buffer.from('pw'), '$1$salt'), null);
    assert.equal(desCrypt(Buffer.from('pw'), '!!abcdefghijk'), null);
    assert.equal(desCrypt(Buffer.from('pw'), 'a'), null);
  });
  it('SHA-crypt with many rounds lets the event loop run meanwhile', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const stored = await shaCrypt(Buffer.from('pw'), '$6$rounds=200000$saltsalt');
      assert.match(stored ?? '', /^\$6\$rounds=200000\$saltsalt\$[./0-9A-Za-z]{86}$/);
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 20, `only ${ticks} timer ticks ran during 200,000 rounds`);
  });
});

describe('documented truncation of the legacy schemes', () => {
  it('DES crypt uses only the first eight characters', async () => {
    assert.equal(await verifyPassword('Q/S3TZTcnzFRQ', '12345678', STRICT), true);
    assert.equal(await verifyPassword('Q/S3TZTcnzFRQ', '12345678anything', STRICT), true);
  });
  it('bcrypt uses only the first 72 bytes', async () => {
    assert.equal(await verifyPassword(`{CRYPT}${BCRYPT[3]?.[2]}`, `${'x'.repeat(72)}yy`, STRICT), true);
    assert.equal(await verifyPassword(`{CRYPT}${BCRYPT[3]?.[2]}`, 'x'.repeat(71), STRICT), false);
  });
});

describe('cleartext', () => {
  for (const scheme of ['CLEARTEXT', 'PLAIN', 'cleartext', 'Plain']) {
    it(`{${scheme}} is refused unless allowCleartext`, async () => {
      assert.equal(await verifyPassword(`{${scheme}}Sybil-pw-16`, 'Sybil-pw-16', STRICT), false);
    });
    it(`{${scheme}} matches exactly when allowCleartext`, async () => {
      assert.equal(await verifyPassword(`{${scheme}}Sybil-pw-16`, 'Sybil-pw-16', LENIENT), true);
      assert.equal(await verifyPassword(`{${scheme}}Sybil-pw-16`, 'Sybil-pw-1', LENIENT), false);
      assert.equal(await verifyPassword(`{${scheme}}Sybil-pw-16`, 'sybil-pw-16', LENIENT), false);
      assert.equal(await verifyPassword(`{${scheme}}`, '', LENIENT), false);
    });
  }
  it('a value without a prefix is never compared as plaintext', async () => {
    assert.equal(await verifyPassword('Sybil-pw-16', 'Sybil-pw-16', LENIENT), false);
    assert.equal(await verifyPassword('abcdefghijklm', 'abcdefghijklm', LENIENT), false); // 13 chars: taken as DES
    assert.equal(await verifyPassword('{Sybil-pw-16', '{Sybil-pw-16', LENIENT), false);
  });
});

describe('prefix case-insensitivity', () => {
  const cases: readonly Vector[] = [
    ['{ssha}', 'Alice-pw-1', '{ssha}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=='],
    ['{Sha}', 'Bob-pw-2', '{Sha}ts21aLnuUCFWXnboLAYgOfLofFE='],
    ['{sSHA512}', 'Erin-pw-5', '{sSHA512}KaREoalqXX+LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZILl6yj8ZdBuHHrMtlRfpnE6Q2+5GCT3NhbHRzYWx0'],
    ['{argon2}', 'Judy-pw-11', '{argon2}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
    ['{sha512-crypt}', 'Dave-pw-4', '{sha512-crypt}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE.c2Szx2A7X8G4bwwsStgpP4YqsyFBXh/AVzDCog4VAB1'],
    ['{Sha256-Crypt}', 'Heidi-pw-8', '{Sha256-Crypt}$5$kS4.GL1k$yrGELk60NcvYPgcV04CJH5UTdHxIg42qgmf64UhZwP2'],
  ];
  for (const [label, password, stored] of cases) {
    it(label, async () => assert.equal(await verifyPassword(stored, password, STRICT), true));
  }
});

describe('malformed and truncated stored values', () => {
  const refused: readonly Vector[] = [
    ['base64 with a stray character', 'Alice-pw-1', '{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=!'],
    ['base64 with a space', 'Bob-pw-2', '{SHA}ts21aLnu UCFWXnboLAYgOfLofFE='],
    ['base64 over-padded', 'Bob-pw-2', '{SHA}ts21aLnuUCFWXnboLAYgOfLofFE=='],
    ['base64 URL alphabet', 'Erin-pw-5', '{SSHA512}KaREoalqXX-LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZILl6yj8ZdBuHHrMtlRfpnE6Q2-5GCT3NhbHRzYWx0'],
    ['base64 non-zero trailing bits', 'Bob-pw-2', '{SHA}ts21aLnuUCFWXnboLAYgOfLofFF='],
    ['empty {SHA}', 'Bob-pw-2', '{SHA}'],
    ['{SHA} cut to 19 bytes', 'Bob-pw-2', `{SHA}${Buffer.from('ts21aLnuUCFWXnboLAYgOfLofFE=', 'base64').subarray(0, 19).toString('base64')}`],
    ['{SHA} with an extra byte', 'Bob-pw-2', `{SHA}${Buffer.concat([Buffer.from('ts21aLnuUCFWXnboLAYgOfLofFE=', 'base64'), Buffer.of(0)]).toString('base64')}`],
    ['{SSHA} without a salt', 'Mallory-pw-15', '{SSHA}e4KUYbw0gjlZ/ih3sK7dNrlSLm4='],
    ['{SSHA512} cut to 40 bytes', 'Erin-pw-5', '{SSHA512}KaREoalqXX+LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZI'],
    ['{SSHA512} digest as {SSHA256}', 'Erin-pw-5', '{SSHA256}KaREoalqXX+LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZILl6yj8ZdBuHHrMtlRfpnE6Q2+5GCT3NhbHRzYWx0'],
    ['$6$ hash cut short', 'Dave-pw-4', '{CRYPT}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE'],
    ['$6$ without a hash', 'Dave-pw-4', '{CRYPT}$6$ldapmtaSalt0001$'],
    ['$6$ alone', 'Dave-pw-4', '$6$'],
    ['$1$ without a hash', 'Frank-pw-6', '$1$qmailldp'],
    ['$1$ with a trailing newline', 'Frank-pw-6', '$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1\n'],
    ['DES cut to 12 characters', 'Grace-pw-7', 'abPS7tw188M.'],
    ['DES with a salt outside the alphabet', 'Grace-pw-7', '!bPS7tw188M.6'],
    ['empty {CRYPT}', 'Grace-pw-7', '{CRYPT}'],
    ['bcrypt cut short', 'Kate-pw-10', '{CRYPT}$2b$04$abcdefghijklmnopqrstuu7hnaSw9DBEpKSR16mZHApz3zPQIYOy'],
    ['bcrypt $2x$', 'Kate-pw-10', '{CRYPT}$2x$04$abcdefghijklmnopqrstuu7hnaSw9DBEpKSR16mZHApz3zPQIYOye'],
    ['argon2 hash cut short', 'Judy-pw-11', '{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5Uz'],
    ['argon2 without a hash', 'Judy-pw-11', '{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw'],
    ['argon2 version 16', 'Judy-pw-11', '{ARGON2}$argon2i$v=16$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
    ['argon2 garbage', 'Judy-pw-11', '{ARGON2}$argon2id$garbage'],
    ['{ARGON2} holding a crypt string', 'Dave-pw-4', '{ARGON2}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE.c2Szx2A7X8G4bwwsStgpP4YqsyFBXh/AVzDCog4VAB1'],
    ['argon2 without a prefix', 'Judy-pw-11', '$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
    ['argon2 under {CRYPT}', 'Judy-pw-11', '{CRYPT}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
    ['$6$ string under {SHA256-CRYPT}', 'Dave-pw-4', '{SHA256-CRYPT}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE.c2Szx2A7X8G4bwwsStgpP4YqsyFBXh/AVzDCog4VAB1'],
    ['$1$ string under {BLF-CRYPT}', 'Frank-pw-6', '{BLF-CRYPT}$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
    ['DES string under {MD5-CRYPT}', 'Grace-pw-7', '{MD5-CRYPT}abPS7tw188M.6'],
    ['SHA-crypt rounds=10 (crypt(3) would write 1000)', 'the minimum number is still observed', '$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC'],
    ['SHA-crypt rounds with a leading zero', 'Ivan-pw-9', '$5$rounds=01000$Ivan$8mPA9cw4Av1GqiGXgVmPF1qYdAA1R9rSnZgx0F16.K/'],
    ['SHA-crypt rounds beyond the maximum', 'Ivan-pw-9', '$5$rounds=99999999999$Ivan$8mPA9cw4Av1GqiGXgVmPF1qYdAA1R9rSnZgx0F16.K/'],
    ['SHA-crypt over-long salt kept in the stored value', 'This is just a test', '$5$rounds=5000$toolongsaltstring$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5'],
    ['unknown scheme', 'x', '{FOO}x'],
    ['unknown scheme holding a valid crypt string', 'Frank-pw-6', '{FOO}$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
    ['Dovecot {MD5} (not the LDAP digest)', 'Frank-pw-6', '{MD5}$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
    ['{SSHA} with a space after the brace', 'Alice-pw-1', '{SSHA} hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=='],
    ['a space before the brace', 'Alice-pw-1', ' {SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=='],
    ['empty stored value', 'x', ''],
  ];
  for (const [label, password, stored] of refused) {
    it(label, async () => assert.equal(await verifyPassword(stored, password, LENIENT), false));
  }
});

describe('yescrypt through the system crypt(3)', () => {
  it('accepts the right password, bare or under {CRYPT}', async () => {
    assert.equal(await verifyPassword(YESCRYPT, 'Yves-pw-12', STRICT), true);
    assert.equal(await verifyPassword(`{CRYPT}${YESCRYPT}`, 'Yves-pw-12', STRICT), true);
  });
  it('refuses a wrong, empty or NUL-carrying password and a damaged setting', async () => {
    assert.equal(await verifyPassword(YESCRYPT, 'Yves-pw-13', STRICT), false);
    assert.equal(await verifyPassword(YESCRYPT, '', STRICT), false);
    assert.equal(await verifyPassword(YESCRYPT, 'Yves-pw-12\0x', STRICT), false);
    assert.equal(await verifyPassword('$y$j9T$abc$', 'Yves-pw-12', STRICT), false);
    assert.equal(await verifyPassword('$y$zzz', 'Yves-pw-12', STRICT), false);
  });
});

describe('bad input never throws', () => {
  it('refuses a password containing NUL', async () => {
    assert.equal(await verifyPassword('{CLEARTEXT}a\0b', 'a\0b', LENIENT), false);
    assert.equal(await verifyPassword('{SHA}ts21aLnuUCFWXnboLAYgOfLofFE=', 'Bob-pw-2\0', STRICT), false);
  });
  it('refuses non-string arguments', async () => {
    const notString = undefined as unknown as string;
    assert.equal(await verifyPassword(notString, 'x', LENIENT), false);
    assert.equal(await verifyPassword('{CLEARTEXT}x', notString, LENIENT), false);
    assert.equal(passwordScheme(notString), 'UNKNOWN');
  });
  it('refuses a non-ASCII crypt string', async () => {
    assert.equal(await verifyPassword('{CRYPT}$1$sält$KZyihZMBM7dG5LC2XPcLn1', 'Frank-pw-6', STRICT), false);
  });
});

describe('passwordScheme', () => {
  const cases: readonly (readonly [string, string])[] = [
    ['{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA==', 'SSHA'],
    ['{ssha}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA==', 'SSHA'],
    ['{SHA}ts21aLnuUCFWXnboLAYgOfLofFE=', 'SHA'],
    ['{SSHA512}x', 'SSHA512'],
    ['{smd5}x', 'SMD5'],
    ['{CRYPT}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE', 'CRYPT'],
    ['{blf-crypt}$2b$04$abc', 'BLF-CRYPT'],
    ['{ARGON2}$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$An', 'ARGON2'],
    ['{CLEARTEXT}secret', 'CLEARTEXT'],
    ['{plain}secret', 'PLAIN'],
    ['$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1', 'NONE'],
    ['abPS7tw188M.6', 'NONE'],
    [YESCRYPT, 'NONE'],
    ['{FOO}x', 'UNKNOWN'],
    ['{FOO}secret-hash', 'UNKNOWN'],
    ['secret', 'UNKNOWN'],
    ['', 'UNKNOWN'],
  ];
  for (const [stored, expected] of cases) {
    it(`${expected} for ${stored.slice(0, 12)}…`, () => {
      const scheme = passwordScheme(stored);
      assert.equal(scheme, expected);
      const value = stored.replace(/^\{[^}]*\}/, '');
      if (value.length > 0) assert.ok(!scheme.includes(value), 'never reveals the stored value');
    });
  }
});
