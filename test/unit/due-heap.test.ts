// The queue's due heap: earliest first, arrival order among equal times, nothing before its time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DueHeap } from '../../src/queue/due-heap.ts';

test('due heap: items come out earliest first, in arrival order among equals, never before their time', () => {
  const heap = new DueHeap();
  assert.equal(heap.popDue(Number.MAX_SAFE_INTEGER), null, 'empty');
  heap.push(30, 'c');
  heap.push(10, 'a1');
  heap.push(20, 'b');
  heap.push(10, 'a2');
  assert.equal(heap.popDue(9), null, 'nothing is due at 9');
  assert.equal(heap.size, 4, 'and nothing was taken');
  assert.deepEqual(heap.popDue(10), { at: 10, id: 'a1' });
  assert.deepEqual(heap.popDue(10), { at: 10, id: 'a2' });
  assert.equal(heap.popDue(10), null);
  assert.deepEqual(heap.popDue(100), { at: 20, id: 'b' });
  assert.deepEqual(heap.popDue(100), { at: 30, id: 'c' });
  assert.equal(heap.size, 0);
});

test('due heap: pushes and pops in any order agree with a sorted list (5,000 random operations)', () => {
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const heap = new DueHeap();
  const reference: { at: number; seq: number; id: string }[] = [];
  let seq = 0;
  for (let i = 0; i < 5000; i++) {
    if (random() < 0.6) {
      const at = Math.floor(random() * 1000);
      heap.push(at, `m${seq}`);
      reference.push({ at, seq, id: `m${seq}` });
      seq++;
    } else {
      const now = Math.floor(random() * 1000);
      reference.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const expected = reference[0] !== undefined && reference[0].at <= now ? reference.shift()! : null;
      assert.deepEqual(heap.popDue(now), expected === null ? null : { at: expected.at, id: expected.id }, `operation ${i}`);
    }
    assert.equal(heap.size, reference.length);
  }
  heap.clear();
  assert.equal(heap.popDue(Infinity), null, 'cleared');
});
