// Login checks (directory-model §5): find exactly one entry by the login filter, verify the
// password by hash comparison or by binding as the user (AD: as the entry's userPrincipalName, so
// a bare sAMAccountName works too), then apply the account state. An empty password is refused
// before any LDAP work; every state failure looks like a bad password to the client.
import type { Logger } from '../log.ts';
import { temporary, MailError } from '../mail.ts';
import { loginAllowed, toResolution, type EntryContext } from './entry.ts';
import { expandFilterTemplate } from './escape.ts';
import { passwordScheme, verifyPassword } from './password.ts';
import { describe, type LdapEntry, type LdapPool } from './pool.ts';
import { entryAddresses, recipientAttributes, type Profile } from './profiles.ts';
import type { LoginResult } from './types.ts';

export interface AuthOptions {
  readonly baseDN: string;
  readonly profile: Profile;
  readonly method: 'hash' | 'bind';
  readonly allowCleartext: boolean;
  /** Template with %s/%u/%d; empty: the profile's default for the shape of the login. */
  readonly loginFilter: string;
  /** Attribute with more addresses the user may send as; '' for none. */
  readonly sendAsAttribute?: string;
  readonly entry: EntryContext;
}

export function createAuthenticator(options: AuthOptions, deps: { pool: LdapPool; log: Logger }) {
  const { profile } = options;
  const attributes = [...new Set([
    ...recipientAttributes(profile), ...(options.method === 'hash' ? [profile.password] : []), profile.bindName, profile.accountExpires,
    ...(options.sendAsAttribute ? [options.sendAsAttribute] : []),
  ].filter((n): n is string => n !== null))];

  return async function authenticate(login: string, password: string): Promise<LoginResult> {
    if (password === '') return { ok: false, reason: 'empty-password' };
    // LDAP string matching ignores leading and trailing spaces: " alice" would find alice.
    if (login === '' || login.length > 256 || /[\u0000-\u001f\u007f]/.test(login) || login.trim() !== login) {
      return { ok: false, reason: 'unknown-user' };
    }
    const template = options.loginFilter || (login.includes('@') ? profile.loginFilterWithAt : profile.loginFilter);
    const filter = template === '' ? null : expandFilterTemplate(template, login);
    if (filter === null) return { ok: false, reason: 'unknown-user' };

    let entries: LdapEntry[];
    try {
      entries = await deps.pool.search(options.baseDN, filter, attributes, { scope: 'sub', sizeLimit: 2 });
    } catch (err) {
      if (err instanceof MailError) throw err;
      deps.log.warn({ err: describe(err) }, 'login search failed');
      throw temporary('4.4.3', 'directory lookup failed, try again later', err);
    }
    if (entries.length === 0) return { ok: false, reason: 'unknown-user' };
    if (entries.length > 1) {
      deps.log.warn({ login, dns: entries.map((e) => e.dn) }, 'login matches more than one directory entry');
      return { ok: false, reason: 'ambiguous' };
    }
    const entry = entries[0]!;
    const passwordOk = await checkPassword(entry, password);
    if (!passwordOk) return { ok: false, reason: 'bad-password' };
    if (!loginAllowed(entry, profile, Date.now())) return { ok: false, reason: 'account-disabled' };

    const address = entryAddresses(profile, entry.attrs).primary ?? login;
    const resolution = toResolution(entry, { key: address, extension: null }, options.entry);
    return {
      ok: true,
      dn: entry.dn,
      login,
      addresses: 'addresses' in resolution ? resolution.addresses : [address],
      mailHost: 'mailHost' in resolution ? resolution.mailHost : null,
      mailbox: resolution.kind === 'mailbox' ? resolution.mailbox : null,
      ...(resolution.kind === 'mailbox' ? { quota: resolution.quota } : {}),
      sendAs: options.sendAsAttribute ? (entry.attrs.get(options.sendAsAttribute.toLowerCase()) ?? []).map((a) => a.trim().toLowerCase()) : [],
    };
  };

  async function checkPassword(entry: LdapEntry, password: string): Promise<boolean> {
    if (options.method === 'bind') {
      const name = profile.bindName === null ? undefined : entry.attrs.get(profile.bindName.toLowerCase())?.[0];
      return deps.pool.verifyBind(name ?? entry.dn, password);
    }
    const stored = entry.attrs.get(profile.password.toLowerCase()) ?? [];
    if (stored.length !== 1) {
      deps.log.warn({ dn: entry.dn, values: stored.length }, 'login entry must hold exactly one password value (is it readable by the service account?)');
      return false;
    }
    const ok = await verifyPassword(stored[0]!, password, { allowCleartext: options.allowCleartext });
    if (!ok) deps.log.debug({ dn: entry.dn, scheme: passwordScheme(stored[0]!) }, 'password mismatch');
    return ok;
  }
}
