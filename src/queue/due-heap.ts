// Which message may be tried next: a binary min-heap of (time, message id), earliest first and in
// arrival order among equals. It is a hint, never the truth: an item may be stale (the message
// changed, was leased or removed since), and the queue checks each one against its index when it
// comes out. So scheduling a message again never needs the old item found and removed.
import type { MessageId } from '../mail.ts';

interface Item {
  readonly at: number;
  readonly seq: number;
  readonly id: MessageId;
}

export class DueHeap {
  private items: Item[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  /** The message may be tried from `at` (epoch ms). */
  push(at: number, id: MessageId): void {
    const items = this.items;
    items.push({ at, seq: this.seq++, id });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** The earliest item when it is due at `now`, taken out; otherwise null (and nothing changes). */
  popDue(now: number): { at: number; id: MessageId } | null {
    const items = this.items;
    const top = items[0];
    if (top === undefined || top.at > now) return null;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < items.length && before(items[left]!, items[least]!)) least = left;
        if (right < items.length && before(items[right]!, items[least]!)) least = right;
        if (least === i) break;
        [items[i], items[least]] = [items[least]!, items[i]!];
        i = least;
      }
    }
    return { at: top.at, id: top.id };
  }

  clear(): void {
    this.items = [];
  }
}

function before(a: Item, b: Item): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
