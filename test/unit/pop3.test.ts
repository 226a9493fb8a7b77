// The pure parts of the POP3 server and the Maildir reader: the wire form of a stored message,
// TOP's cut, UIDLs and sizes from file names, delivery order. One rule per line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliveryOrder, sizesOf, uidOf, uniquePart } from '../../src/mailbox/maildir.ts';
import { topLength, wireLines } from '../../src/mailbox/pop3.ts';

const wire: [string, boolean, string, boolean][] = [
  ['a\nb\n', true, 'a\r\nb\r\n', true],
  ['.x\n..y\nz', true, '..x\r\n...y\r\nz', false],
  ['x.y\n', true, 'x.y\r\n', true],
  ['.cont', false, '.cont', false],
  ['.start', true, '..start', false],
  ['a\r\nb\n', true, 'a\r\nb\r\n', true],
  ['\n.\n', true, '\r\n..\r\n', true],
  ['', true, '', true],
];
for (const [input, atStart, expected, after] of wire) {
  test(`wire form of ${JSON.stringify(input)} (line start ${atStart}) → ${JSON.stringify(expected)}`, () => {
    const { out, atLineStart } = wireLines(Buffer.from(input), atStart);
    assert.equal(out.toString(), expected);
    assert.equal(atLineStart, after);
  });
}

const tops: [string, number, string][] = [
  ['H: 1\nH: 2\n\nb1\nb2\nb3\n', 0, 'H: 1\nH: 2\n\n'],
  ['H: 1\nH: 2\n\nb1\nb2\nb3\n', 2, 'H: 1\nH: 2\n\nb1\nb2\n'],
  ['H: 1\n\nb1\n', 5, 'H: 1\n\nb1\n'],
  ['H: 1\n', 3, 'H: 1\n'],
  ['\nbody\nmore\n', 1, '\nbody\n'],
];
for (const [message, lines, expected] of tops) {
  test(`TOP ${lines} of ${JSON.stringify(message)}`, () => {
    const data = Buffer.from(message);
    assert.equal(data.subarray(0, topLength(data, lines)).toString(), expected);
  });
}

test('UIDL: the unique part of the name, stable when flags or size tags change; hashed when too long or unprintable', () => {
  const name = '1796000000.M1P2Q3.mx1,S=100,W=103';
  assert.equal(uniquePart(`${name}:2,S`), '1796000000.M1P2Q3.mx1');
  assert.equal(uidOf(name), uidOf(`${name}:2,RS`));
  assert.equal(uidOf(name), '1796000000.M1P2Q3.mx1');
  assert.match(uidOf(`${'x'.repeat(71)},S=1`), /^[0-9a-f]{40}$/);
  assert.match(uidOf('17960 with space'), /^[0-9a-f]{40}$/);
});

test('sizes from ,S= and ,W= (null when absent); delivery order by leading seconds, then name', () => {
  assert.deepEqual(sizesOf('1.M1.h,S=100,W=103:2,S'), { bytes: 100, size: 103 });
  assert.deepEqual(sizesOf('1.M1.h,S=100'), { bytes: 100, size: null });
  assert.deepEqual(sizesOf('1.M1.h:2,S=9'), { bytes: null, size: null }, 'tags in the info part do not count');
  assert.deepEqual(['999.b', '1000.a', '999.a', 'z'].sort(deliveryOrder), ['999.a', '999.b', '1000.a', 'z']);
  // Microseconds are written without padding: M5 < M89000 < M412000 within one second.
  assert.deepEqual(['7.M412000P1.h', '7.M5P1.h', '7.M89000P1.h', '6.M999999P1.h'].sort(deliveryOrder), ['6.M999999P1.h', '7.M5P1.h', '7.M89000P1.h', '7.M412000P1.h']);
  assert.deepEqual(['7.M5P1Q10.h', '7.M5P1Q9.h'].sort(deliveryOrder), ['7.M5P1Q9.h', '7.M5P1Q10.h'], 'then the counter');
});
