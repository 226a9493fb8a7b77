// DKIM signing of submitted mail (relaxed/relaxed) with mailauth, by the From: domain, with the
// keys named in dkim.domains (read once at start). A domain without a key is sent unsigned.
import { readFileSync } from 'node:fs';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { Config } from '../config.ts';
import { ConfigError } from '../config.ts';

export interface DkimSigner {
  /** The DKIM-Signature field(s) to put on top of `message`, or "" when `domain` has no key. */
  sign(message: Buffer, domain: string): Promise<string>;
}

export function createDkimSigner(config: Config['dkim']): DkimSigner {
  const keys = new Map<string, { selector: string; privateKey: string; algorithm: string }>();
  const problems: string[] = [];
  for (const [domain, key] of Object.entries(config.domains)) {
    try {
      keys.set(domain, { selector: key.selector, privateKey: readFileSync(key.keyFile, 'utf8'), algorithm: key.algorithm });
    } catch (err) {
      problems.push(`dkim.domains.${domain}.keyFile: cannot read ${key.keyFile}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    async sign(message, domain) {
      const key = keys.get(domain.toLowerCase());
      if (key === undefined) return '';
      const signer = { signingDomain: domain.toLowerCase(), selector: key.selector, privateKey: key.privateKey, algorithm: key.algorithm, canonicalization: 'relaxed/relaxed' };
      const result = await dkimSign(message, { ...signer, signatureData: [signer] });
      if (result.errors.length > 0) throw result.errors[0];
      return result.signatures.replace(/\r?\n/g, '\r\n');
    },
  };
}
