// DKIM signing of submitted mail (policy/dkim.ts) with both algorithms dkim.domains may name: each
// signature verified by mailauth against the public key published as RFC 6376 / RFC 8463 say.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { validateConfig } from '../../src/config.ts';
import { createDkimSigner } from '../../src/policy/dkim.ts';

const message = Buffer.from('From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: signed\r\n\r\nhello\r\n');

for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
  test(`DKIM ${algorithm}: the signature verifies with the published key; another domain is not signed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ldapmta-dkim-unit-'));
    try {
      const keys = algorithm === 'rsa-sha256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
      writeFileSync(join(dir, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
      // RFC 8463 §4.2: an Ed25519 key is published as its 32 raw bytes, not as SubjectPublicKeyInfo.
      const record = algorithm === 'rsa-sha256'
        ? `v=DKIM1; k=rsa; p=${spki.toString('base64')}`
        : `v=DKIM1; k=ed25519; p=${spki.subarray(spki.length - 32).toString('base64')}`;
      const config = validateConfig({ dkim: { domains: { 'example.org': { selector: 's1', keyFile: join(dir, 'key.pem'), algorithm } } } });
      const signer = createDkimSigner(config.dkim);
      const field = await signer.sign(message, 'Example.ORG');
      assert.match(field, new RegExp(`^DKIM-Signature: v=1; a=${algorithm}; c=relaxed/relaxed; d=example\\.org;\\r\\n[^]*\\bs=s1;`));
      assert.equal(await signer.sign(message, 'other.example'), '');
      const result = await dkimVerify(Buffer.concat([Buffer.from(field), message]), {
        resolver: async (name: string, type: string) => {
          if (name === 's1._domainkey.example.org' && type === 'TXT') return [[record]];
          throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        },
      });
      assert.equal(result.results[0]?.status.result, 'pass', JSON.stringify(result.results[0]?.status));
      // The same signature over a changed body fails: the check can fail.
      const changed = await dkimVerify(Buffer.concat([Buffer.from(field), message.subarray(0, -7), Buffer.from('HELLO\r\n')]), {
        resolver: async () => [[record]],
      });
      assert.equal(changed.results[0]?.status.result, 'neutral', JSON.stringify(changed.results[0]?.status));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
