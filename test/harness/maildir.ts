// Looking at Maildirs from a test: file names, their parts and tags, the files of a folder, a message
// waited for by a marker in its bytes, and maildirsize's lines and sums. Reads only.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { marker, sendOnce, simpleMessage, waitFor } from '../fixtures/smtp-helpers.ts';
import type { TestServer } from './ldapmta.ts';

/** The unique part of a Maildir file name (before "," and ":"). */
export const uniqueOf = (name: string): string => name.split(':')[0]!.split(',')[0]!;
/** A size tag of a file name (S: bytes on disk, W: with CRLF line ends); NaN when absent. */
export const sizeTag = (name: string, tag: 'S' | 'W' = 'S'): number => Number(new RegExp(`,${tag}=(\\d+)`).exec(name.split(':')[0]!)?.[1] ?? NaN);
/** The names in a directory, dot files left out, sorted; none when it does not exist. */
export const listDir = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')).sort() : []);
/** The Maildir++ directory of a folder. */
export const folderDir = (maildir: string, folder: string): string => (folder === 'INBOX' ? maildir : join(maildir, `.${folder}`));
/** The current names in cur/ of a folder with this unique part. */
export const curNames = (maildir: string, folder: string, unique: string): string[] => listDir(join(folderDir(maildir, folder), 'cur')).filter((n) => uniqueOf(n) === unique);

/** The one current name in cur/ with this unique part (asserted). */
export function curName(maildir: string, folder: string, unique: string): string {
  const names = curNames(maildir, folder, unique);
  assert.equal(names.length, 1, `one file for ${unique} in ${folder}/cur: ${JSON.stringify(listDir(join(folderDir(maildir, folder), 'cur')))}`);
  return names[0]!;
}

/** maildirsize: its lines and the sums of the usage lines (every line after the first). */
export function maildirsize(maildir: string): { lines: string[]; bytes: number; count: number } {
  const lines = readFileSync(join(maildir, 'maildirsize'), 'utf8').split('\n').filter((l) => l !== '');
  let bytes = 0;
  let count = 0;
  for (const line of lines.slice(1)) {
    const [b, c] = line.trim().split(/\s+/).map(Number);
    bytes += b!;
    count += c!;
  }
  return { lines, bytes, count };
}

export interface Stored {
  /** new/ or cur/ when found. */
  readonly sub: string;
  readonly name: string;
  /** The unique part of the name (before "," and ":"). */
  readonly unique: string;
  /** The file's bytes as latin1 (one char per byte), LF line ends. */
  readonly text: string;
}

/** The message whose bytes contain `mark`, in new/ or cur/ of the folder; waits for the delivery. */
export async function waitForStored(maildir: string, mark: string, timeoutMs = 10_000): Promise<Stored> {
  return waitFor(`a message with ${mark} in ${maildir}`, async () => {
    for (const sub of ['new', 'cur']) {
      for (const name of listDir(join(maildir, sub))) {
        let text: string;
        try {
          text = readFileSync(join(maildir, sub, name), 'latin1');
        } catch {
          continue; // moved from new/ to cur/ meanwhile: found on the next round
        }
        if (text.includes(mark)) return { sub, name, unique: uniqueOf(name), text };
      }
    }
    return null;
  }, timeoutMs);
}

/**
 * The usage counted afresh as the Maildir++ reference counts it: every message in new/ and cur/ of the
 * Maildir and of its .Folders except .Trash, leaving out names whose info has T (\\Deleted); sizes from S=.
 */
export function recount(maildir: string): { bytes: number; count: number } {
  const folders = readdirSync(maildir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name.startsWith('.') && e.name !== '.Trash')
    .map((e) => join(maildir, e.name));
  let bytes = 0;
  let count = 0;
  for (const root of [maildir, ...folders]) {
    for (const sub of ['new', 'cur']) {
      for (const name of listDir(join(root, sub))) {
        const at = name.indexOf(':2,');
        if (at !== -1 && name.slice(at + 3).includes('T')) continue;
        const size = sizeTag(name);
        assert.ok(Number.isFinite(size), `S= in ${join(root, sub, name)}`);
        bytes += size;
        count++;
      }
    }
  }
  return { bytes, count };
}

/**
 * Delivers `data` (ending in CRLF.CRLF) to <user>@example.org over SMTP and waits for its file, and,
 * where the Maildir has a maildirsize, for the line delivery appends just after the file lands.
 */
export async function deliverTo(server: TestServer, user: string, data: string | Buffer, mark: string, maildir = server.maildir(user)): Promise<Stored> {
  const result = await sendOnce(server.smtpPort, 'sender@outside.test', [`${user}@example.org`], data);
  assert.equal(result.end?.code, 250, `SMTP delivery to ${user}: ${JSON.stringify(result.end?.raw ?? result)}`);
  const stored = await waitForStored(maildir, mark);
  if (existsSync(join(maildir, 'maildirsize'))) {
    await waitFor('the delivery counted in maildirsize', async () => (maildirsize(maildir).count >= recount(maildir).count ? true : null), 5000);
  }
  return stored;
}

/** A plain message whose subject is a fresh marker (returned as `subject`). */
export async function deliverSimple(server: TestServer, user: string, prefix: string, body = 'hello\r\n', headers = '', maildir = server.maildir(user)): Promise<Stored & { subject: string }> {
  const subject = marker(prefix);
  return { ...(await deliverTo(server, user, simpleMessage(subject, body, headers), subject, maildir)), subject };
}
