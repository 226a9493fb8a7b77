// The local delivery agent (DeliverToMaildir): path safety, then Maildir++ quota, then one file in new/.
// Must never write outside delivery.base, nor bounce on its own: over quota is temporary 4.2.2, and the delivery runner decides (delivery.quotaDeferSeconds).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeliverToMaildir } from './types.ts';
import { leadsOutsideBase, prepareMaildir } from './maildir-path.ts';
import { ioFailure, writeMessage } from './maildir-file.ts';
export { sweepTmp } from './maildir-file.ts';
import { checkQuota, hasQuota, quotaVerdict, type Recalculations, recordDelivery } from './quota.ts';
import { permanent, temporary } from '../mail.ts';
import type { Quota } from '../directory/types.ts';

/**
 * The agent. The header may end its lines in CRLF or LF: header and body alike are stored with LF.
 * On failure the body stream is destroyed and no file is left in tmp/ or new/. `recalculations`
 * lets concurrent deliveries to one Maildir share a quota recalculation.
 */
export function createDeliverToMaildir(options: { recalculations?: Recalculations } = {}): DeliverToMaildir {
  const verdictOptions = { write: true, ...(options.recalculations === undefined ? {} : { recalculations: options.recalculations }) };
  return async (delivery, body) => {
    // An error emitted before the copy starts reading must not crash the process; the copy still sees it.
    body.on('error', ignore);
    try {
      const maildir = await prepareMaildir(delivery.maildir, delivery.base);
      const limited = hasQuota(delivery.quota);
      if (limited && (await quotaVerdict(maildir, delivery.quota, delivery.size, verdictOptions)) === 'over') {
        throw temporary('4.2.2', 'mailbox full', undefined, 452);
      }
      // A folder is a Maildir++ sub-Maildir of the same mailbox: the same quota, one maildirsize.
      const target = delivery.folder === undefined ? maildir : await prepareFolder(maildir, delivery.folder, delivery.base);
      const result = await writeMessage(target, delivery.header, body);
      if (limited) await recordDelivery(maildir, result.bytes);
      return result;
    } catch (err) {
      body.destroy();
      throw ioFailure(err);
    } finally {
      body.off('error', ignore);
    }
  };
}

/** An agent that shares nothing between deliveries (tests, tools). */
export const deliverToMaildir: DeliverToMaildir = createDeliverToMaildir();

function ignore(): void {}

/** `.<folder>/` below the Maildir, with its tmp/new/cur and the maildirfolder marker (Maildir++). */
async function prepareFolder(maildir: string, folder: string, base: string): Promise<string> {
  if (!/^[A-Za-z0-9_-]+$/.test(folder)) throw new Error(`not a folder name: ${folder}`);
  const dir = await prepareMaildir(join(maildir, `.${folder}`) + '/', base);
  await writeFile(join(dir, 'maildirfolder'), '', { flag: 'a' });
  return dir;
}

/**
 * The RCPT-time quota check for Maildirs below `base`: reads maildirsize (never writes), and
 * refuses with 5.3.5 a Maildir whose real path leads outside the base, as delivery would.
 */
export function quotaCheckBelow(base: string, recalculations?: Recalculations): (maildir: string, quota: Quota, size: number) => Promise<'ok' | 'over'> {
  return async (maildir, quota, size) => {
    if (await leadsOutsideBase(maildir, base)) throw permanent('5.3.5', 'illegal mailbox: mailbox path leads outside the mail base');
    return checkQuota(maildir, quota, size, recalculations);
  };
}
