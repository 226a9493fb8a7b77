// Where a Maildir may live: lexical and real-path containment below the mail base, and creating it.
// Must never create, open or follow anything outside the base, nor accept tmp/, new/ or cur/ as a symlink.
import type { Stats } from 'node:fs';
import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { permanent, temporary, type MailError } from '../mail.ts';

/** Longest Maildir path accepted (Linux PATH_MAX less the terminating NUL). */
export const MAX_MAILDIR_PATH = 4095;

/** True when `child` is `parent` itself (only if `orSame`) or lies below it. Both must be absolute. Pure. */
export function isWithin(parent: string, child: string, orSame = false): boolean {
  const rel = path.relative(parent, child);
  if (rel === '') return orSame;
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** Why the text of a Maildir path is unacceptable below `base`, or null when it is fine. Pure. */
export function maildirPathProblem(maildir: string, base: string): string | null {
  if (!path.isAbsolute(base)) return 'mail base is not absolute';
  if (!path.isAbsolute(maildir)) return 'mailbox path is not absolute';
  if (Buffer.byteLength(maildir) > MAX_MAILDIR_PATH) return 'mailbox path is too long';
  if (/[\u0000-\u001f\u007f]/.test(maildir)) return 'control character in mailbox path';
  if (maildir.split('/').includes('..')) return 'mailbox path contains ".."';
  if (!isWithin(path.resolve(base), path.resolve(maildir))) return 'mailbox path is outside the mail base';
  return null;
}

const illegal = (why: string): MailError => permanent('5.3.5', `illegal mailbox: ${why}`);

/**
 * Checks `maildir` against `base`, creates what is missing (the path below the base, then tmp/,
 * new/, cur/; all 0700) and returns the Maildir's path: the base followed by components proven
 * not to be symlinks, or, when one was, the real path proven to lie below the base's.
 * Throws permanent 5.3.5 for a path or symlink that leads outside; raw fs errors otherwise.
 */
export async function prepareMaildir(maildir: string, base: string): Promise<string> {
  const problem = maildirPathProblem(maildir, base);
  if (problem !== null) throw illegal(problem);
  const baseInfo = await stat(base).catch(() => null);
  if (baseInfo === null || !baseInfo.isDirectory()) throw temporary('4.3.0', 'mail base directory is missing');
  // The base's real path is needed only to judge a symlink below it; it is asked for afresh each
  // time, since an admin may repoint a symlinked base at any moment.
  const baseReal = (): Promise<string> => realpath(base);
  const components = componentsBelow(base, maildir);
  let symlinked = false;
  for (const component of components) {
    if (await ensureDirectory(component, baseReal, true)) symlinked = true;
  }
  const current = components.at(-1)!;
  for (const sub of ['tmp', 'new', 'cur']) await ensureDirectory(path.join(current, sub), baseReal, false);
  // Every component below the base was lstat()ed: without a symlink among them the Maildir is
  // base + the checked components, and realpath() (a readlink per component) is not needed.
  if (!symlinked) return current;
  const real = await realpath(current);
  if (!isWithin(await baseReal(), real)) throw illegal('mailbox path leads outside the mail base');
  return real;
}

/** The paths from the first component below `base` down to `maildir` itself (which lies below it). Pure. */
function componentsBelow(base: string, maildir: string): string[] {
  let current = path.resolve(base);
  return path.relative(current, path.resolve(maildir)).split(path.sep).map((part) => (current = path.join(current, part)));
}

/**
 * One path component: create it when missing; a symlink must stay inside the base (and is refused
 * when !symlinkOk). Returns true when the component is a symlink (that was followed).
 */
async function ensureDirectory(dir: string, baseReal: () => Promise<string>, symlinkOk: boolean): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const info = await lstatOrNull(dir);
    if (info === null) {
      try {
        await mkdir(dir, { mode: 0o700 });
        return false;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // a concurrent delivery made it
        throw err;
      }
    }
    if (info.isSymbolicLink()) {
      if (!symlinkOk) throw illegal(`${path.basename(dir)}/ is a symlink`);
      const target = await realpath(dir).catch(() => null);
      if (target === null || !isWithin(await baseReal(), target, true)) throw illegal('mailbox path leads outside the mail base');
      if (!(await stat(target)).isDirectory()) throw illegal('mailbox path is not a directory');
      return true;
    }
    if (!info.isDirectory()) throw illegal('mailbox path is not a directory');
    return false;
  }
  throw temporary('4.3.0', 'mailbox directory keeps changing');
}

async function lstatOrNull(file: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * For checks that only read (the RCPT-time quota): true when `maildir` exists and its real path
 * is not below the base's (a symlink leading out). A missing Maildir is not outside: delivery
 * creates it with prepareMaildir, which checks every component.
 */
export async function leadsOutsideBase(maildir: string, base: string): Promise<boolean> {
  if (maildirPathProblem(maildir, base) !== null) return true;
  // lstat() each component below the base; only a symlink among them needs realpath().
  for (const component of componentsBelow(base, maildir)) {
    const info = await lstatOrNull(component);
    if (info === null) return false;
    if (!info.isSymbolicLink()) continue;
    const real = await realpath(maildir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    return real !== null && !isWithin(await realpath(base), real);
  }
  return false;
}
