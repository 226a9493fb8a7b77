// The IMAP command reader: good commands (quoted strings, literals, lists, sections, partials),
// the same results whatever the chunking, pipelining, line mode, and malformed input giving
// BAD or BYE with the reader usable afterwards where the protocol allows. One rule per row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommandReader, type ReadResult, type ReaderLimits } from '../../src/mailbox/imap/parser.ts';
import type { Token } from '../../src/mailbox/imap/types.ts';

const LIMITS: ReaderLimits = { maxLineBytes: 1024, maxLiteralBytes: 4096, maxDepth: 8 };
type Mode = 'command' | 'line';

/** A compact text form: atoms as sent, "quoted", {"literal"}, (lists), ATOM[section]<start.length>. */
function render(token: Token): string {
  switch (token.type) {
    case 'list':
      return `(${token.items.map(render).join(' ')})`;
    case 'string': {
      const text = JSON.stringify(token.value.toString('latin1'));
      return token.literal ? `{${text}}` : text;
    }
    case 'atom': {
      const section = token.section === undefined ? '' : `[${token.section.map(render).join(' ')}]`;
      const p = token.partial;
      const partial = p === undefined ? '' : p.length === Infinity ? `<${p.start}>` : `<${p.start}.${p.length}>`;
      return token.value + section + partial;
    }
  }
}

/** Results as text; BAD texts are not pinned down except for [TOOBIG]. */
function show(r: ReadResult): string {
  switch (r.kind) {
    case 'command':
      return [r.command.tag, r.command.name, ...r.command.args.map(render)].join(' ');
    case 'continue':
      return '+';
    case 'bad':
      return `BAD ${r.tag ?? '*'}${r.text.startsWith('[TOOBIG]') ? ' [TOOBIG]' : ''}`;
    case 'line':
      return `LINE ${JSON.stringify(r.text)}`;
    case 'fatal':
      return 'FATAL';
  }
}

/**
 * Feeds `input` in chunks of `size` bytes, pulling everything after each chunk; `modes` gives the
 * mode of each pull in turn (then 'command'). Stops at the first fatal.
 */
function run(input: string | Buffer, size = Infinity, modes: Mode[] = [], limits = LIMITS, reader = new CommandReader(limits)): string[] {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const out: string[] = [];
  const step = Math.min(size, Math.max(bytes.length, 1));
  for (let at = 0; at < bytes.length; at += step) {
    reader.push(bytes.subarray(at, at + step));
    for (let r = reader.next(modes[out.length] ?? 'command'); r !== null; r = reader.next(modes[out.length] ?? 'command')) {
      out.push(show(r));
      if (r.kind === 'fatal') return out;
    }
  }
  return out;
}

const message = 'From: a@example.org\r\nSubject: caf\xe9\r\n\r\nline 1\r\n\x00\xff binary\r\n.\r\n';

const good: [string, string, string[]][] = [
  ['LOGIN with quoted strings and escapes', 'a1 LOGIN "alice" "s3cr\\"et\\\\"\r\n', ['a1 LOGIN "alice" "s3cr\\"et\\\\"']],
  ['LOGIN with synchronising literals', 'a2 LOGIN {5}\r\nalice {6}\r\nsecret\r\n', ['+', '+', 'a2 LOGIN {"alice"} {"secret"}']],
  ['LOGIN with an empty quoted string and a literal+', 'a3 login "" {4+}\r\n\r\n\r\n\r\n', ['a3 LOGIN "" {"\\r\\n\\r\\n"}']],
  [
    'APPEND with flags, a date and a literal+ holding CRLFs, NUL and 8-bit',
    `A4 APPEND INBOX (\\Seen \\Flagged) " 5-Jan-2024 10:00:00 +0100" {${message.length}+}\r\n${message}\r\n`,
    [`A4 APPEND INBOX (\\Seen \\Flagged) " 5-Jan-2024 10:00:00 +0100" {${JSON.stringify(message)}}`],
  ],
  [
    'FETCH with sections and partials',
    'A5 FETCH 1:3,5 (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100> BODY[] BODY[1.2.TEXT] body[1.2.MIME] RFC822.SIZE)\r\n',
    ['A5 FETCH 1:3,5 (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100> BODY[] BODY[1.2.TEXT] body[1.2.MIME] RFC822.SIZE)'],
  ],
  ['a partial without a length, BINARY', 'A6 FETCH 1 (BINARY.PEEK[1]<0> BINARY.SIZE[2] BODY[HEADER.FIELDS.NOT ({4+}\r\nDATE)])\r\n', ['A6 FETCH 1 (BINARY.PEEK[1]<0> BINARY.SIZE[2] BODY[HEADER.FIELDS.NOT ({"DATE"})])']],
  ['UID FETCH: the name is UID', 'A7 UID FETCH 1:* (FLAGS)\r\n', ['A7 UID FETCH 1:* (FLAGS)']],
  [
    'SEARCH with nested lists and a literal inside',
    'A8 SEARCH OR (FROM "bob" UNSEEN) (NOT (SUBJECT {3+}\r\nfoo)) SINCE 1-Jan-2024\r\n',
    ['A8 SEARCH OR (FROM "bob" UNSEEN) (NOT (SUBJECT {"foo"})) SINCE 1-Jan-2024'],
  ],
  ['LIST "" "*"', 'A9 LIST "" "*"\r\n', ['A9 LIST "" "*"']],
  ['LIST with a % wildcard atom', 'A10 LIST "" INBOX.%\r\n', ['A10 LIST "" INBOX.%']],
  ['STORE +FLAGS.SILENT', 'A11 STORE 1:* +FLAGS.SILENT (\\Deleted)\r\n', ['A11 STORE 1:* +FLAGS.SILENT (\\Deleted)']],
  ['] and [ in a mailbox atom; NIL is an atom', 'A12 X [Gmail]/Sent Archive[2020] NIL\r\n', ['A12 X [Gmail]/Sent Archive[2020] NIL']],
  ['bare LF line end, lower-case name upper-cased', 'a13 noop\n', ['a13 NOOP']],
  ['tag with odd but allowed characters', 'x.1]-[#! CAPABILITY\r\n', ['x.1]-[#! CAPABILITY']],
  ['extra and trailing spaces are tolerated', 'A14 LOGIN  a   ( b  c )  \r\n', ['A14 LOGIN a (b c)']],
  ['an empty synchronising literal', 'A15 X {0}\r\n\r\n', ['+', 'A15 X {""}']],
  ['literals back to back in a list', 'A16 X ({3+}\r\nabc {2+}\r\nde)\r\n', ['A16 X ({"abc"} {"de"})']],
  ['nesting up to the limit', `A17 X ${'('.repeat(8)}a${')'.repeat(8)}\r\n`, [`A17 X ${'('.repeat(8)}a${')'.repeat(8)}`]],
  ['DEL and TAB are allowed in a quoted string', 'A18 X "a\tb\x7f"\r\n', ['A18 X "a\\tb\x7f"']],
  [
    'pipelined commands',
    'P1 NOOP\r\nP2 LOGIN {3+}\r\nabc "x"\r\nP3 SELECT INBOX\r\nP4 LOGOUT\r\n',
    ['P1 NOOP', 'P2 LOGIN {"abc"} "x"', 'P3 SELECT INBOX', 'P4 LOGOUT'],
  ],
];

for (const [what, input, expected] of good) {
  test(`good: ${what}`, () => {
    assert.deepEqual(run(input), expected);
  });
  test(`good, fed a byte at a time: ${what}`, () => {
    assert.deepEqual(run(input, 1), expected);
  });
  test(`good, fed in 7-byte chunks: ${what}`, () => {
    assert.deepEqual(run(input, 7), expected);
  });
}

test('a fetch attribute is one atom with its section and partial', () => {
  const reader = new CommandReader(LIMITS);
  reader.push(Buffer.from('F1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100> BODY[]<5>)\r\n'));
  const r = reader.next('command');
  assert.equal(r?.kind, 'command');
  const list = r.command.args[1];
  assert.deepEqual(list, {
    type: 'list',
    items: [
      {
        type: 'atom',
        value: 'BODY.PEEK',
        section: [{ type: 'atom', value: 'HEADER.FIELDS' }, { type: 'list', items: [{ type: 'atom', value: 'DATE' }, { type: 'atom', value: 'FROM' }] }],
        partial: { start: 0, length: 100 },
      },
      { type: 'atom', value: 'BODY', section: [], partial: { start: 5, length: Infinity } },
    ],
  });
});

test('strings keep their bytes and say whether they were literals', () => {
  const reader = new CommandReader(LIMITS);
  reader.push(Buffer.from([...Buffer.from('S1 X "q" {3+}\r\n'), 0x00, 0xff, 0x0a, ...Buffer.from('\r\n')]));
  const r = reader.next('command');
  assert.equal(r?.kind, 'command');
  assert.deepEqual(r.command.args, [
    { type: 'string', value: Buffer.from('q'), literal: false },
    { type: 'string', value: Buffer.from([0x00, 0xff, 0x0a]), literal: true },
  ]);
});

// Line mode: the caller switches modes between items.
const lines: [string, string, Mode[], string[]][] = [
  ['IDLE, DONE, then a pipelined command', 'I1 IDLE\r\nDONE\r\nI2 NOOP\r\n', ['command', 'line', 'command'], ['I1 IDLE', 'LINE "DONE"', 'I2 NOOP']],
  ['AUTHENTICATE response line', 'I3 AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nI4 NOOP\n', ['command', 'line', 'command'], ['I3 AUTHENTICATE PLAIN', 'LINE "AGFsaWNlAHNlY3JldA=="', 'I4 NOOP']],
  ['a line is raw: empty, 8-bit, braces and quotes', '\r\n\xe9{3}"\r\n', ['line', 'line'], ['LINE ""', 'LINE "\xe9{3}\\""']],
  ['a too long line in line mode', `${'x'.repeat(2000)}\r\nDONE\r\n`, ['line', 'line'], ['BAD *', 'LINE "DONE"']],
];
for (const [what, input, modes, expected] of lines) {
  test(`line mode: ${what}`, () => {
    assert.deepEqual(run(input, Infinity, modes), expected);
    assert.deepEqual(run(input, 1, modes), expected);
  });
}

const deep = `${'('.repeat(9)}a${')'.repeat(9)}`;
const big = 'y'.repeat(5000);
// Each input is followed by a good "Z1 NOOP" that must come through unless the result is fatal.
const malformed: [string, string, string[]][] = [
  ['empty line', '\r\n', ['BAD *']],
  ['empty line, bare LF', '\n', ['BAD *']],
  ['no tag (leading space)', ' NOOP\r\n', ['BAD *']],
  ['no command name: the word is read as the tag', 'NOOP\r\n', ['BAD NOOP']],
  ['tag *', '* NOOP\r\n', ['BAD *']],
  ['tag +', '+ NOOP\r\n', ['BAD *']],
  ['tag with +', 'a+b NOOP\r\n', ['BAD *']],
  ['tag with a quote', 'A"1 NOOP\r\n', ['BAD *']],
  ['tag with NUL', 'A\x001 NOOP\r\n', ['BAD *']],
  ['tag with 8-bit', 'A\xe91 NOOP\r\n', ['BAD *']],
  ['two spaces after the tag', 'A1  NOOP\r\n', ['BAD A1']],
  ['invalid command name', 'A1 N(OOP\r\n', ['BAD A1']],
  ['command name is a sync literal', 'A1 {3}\r\n', ['BAD A1']],
  ['command name is a literal+: its bytes are skipped', 'A1 {5+}\r\nZ9 X\r\n', ['BAD A1']],
  ['unclosed parenthesis', 'A1 FETCH 1 (FLAGS\r\n', ['BAD A1']],
  ['unbalanced )', 'A1 FETCH 1 FLAGS)\r\n', ['BAD A1']],
  ['one ) too many', 'A1 FETCH 1 (FLAGS))\r\n', ['BAD A1']],
  ['unclosed section', 'A1 FETCH 1 BODY[HEADER\r\n', ['BAD A1']],
  [') inside a section', 'A1 FETCH 1 BODY[HEADER)]\r\n', ['BAD A1']],
  ['] closing a list in a section', 'A1 FETCH 1 BODY[HEADER.FIELDS (DATE])\r\n', ['BAD A1']],
  ['a section in a section', 'A1 FETCH 1 BODY[BODY[]]\r\n', ['BAD A1']],
  ['invalid partial', 'A1 FETCH 1 BODY[]<x>\r\n', ['BAD A1']],
  ['partial with an empty length', 'A1 FETCH 1 BODY[]<1.>\r\n', ['BAD A1']],
  ['partial over 32 bits', 'A1 FETCH 1 BODY[]<4294967296>\r\n', ['BAD A1']],
  ['unterminated quoted string', 'A1 LOGIN "alice\r\n', ['BAD A1']],
  ['unterminated quote, line ending in {n+}: the literal is skipped', 'A1 LOGIN "alice {3+}\r\nabc\r\n', ['BAD A1']],
  ['8-bit in a quoted string', 'A1 LOGIN "al\xe9ce" x\r\n', ['BAD A1']],
  ['NUL in a quoted string', 'A1 LOGIN "a\x00" x\r\n', ['BAD A1']],
  ['CR in a quoted string', 'A1 LOGIN "a\rb" x\r\n', ['BAD A1']],
  ['invalid escape in a quoted string', 'A1 LOGIN "a\\nb" x\r\n', ['BAD A1']],
  ['missing space between strings', 'A1 LOGIN "a""b"\r\n', ['BAD A1']],
  ['missing space between lists', 'A1 FETCH 1 (FLAGS)(UID)\r\n', ['BAD A1']],
  ['missing space after a literal', 'A1 LOGIN {1+}\r\nax\r\n', ['BAD A1']],
  ['8-bit in an atom', 'A1 SELECT caf\xe9\r\n', ['BAD A1']],
  ['NUL after the command name', 'A1 NOOP\x00\r\n', ['BAD A1']],
  ['NUL in an atom', 'A1 LOGIN a\x00b c\r\n', ['BAD A1']],
  ['bare CR in the line', 'A1 LOGIN a\rb c\r\n', ['BAD A1']],
  ['{ garbage', 'A1 LOGIN {abc}\r\n', ['BAD A1']],
  ['literal not at the end of the line', 'A1 LOGIN {5}x\r\n', ['BAD A1']],
  ['unclosed literal brace', 'A1 LOGIN {5\r\n', ['BAD A1']],
  ['literal glued to an atom', 'A1 LOGIN a{5}\r\n', ['BAD A1']],
  ['nesting over the limit', `A1 X ${deep}\r\n`, ['BAD A1']],
  ['sync literal too large: the client will not send it', 'A1 APPEND INBOX {5000}\r\n', ['BAD A1 [TOOBIG]']],
  ['huge sync literal size', 'A1 APPEND INBOX {99999999999999999999999}\r\n', ['BAD A1 [TOOBIG]']],
  ['literal+ too large: skipped with the rest of the command', `A1 APPEND INBOX {5000+}\r\n${big.slice(0, 100)}\r\n${big.slice(102)} more\r\n`, ['BAD A1 [TOOBIG]']],
  ['literal+ too large followed by another literal+ on the same command', `A1 X {5000+}\r\n${big} {3+}\r\nabc\r\n`, ['BAD A1 [TOOBIG]']],
  ['literals of one command over the limit together', `A1 X {3000+}\r\n${big.slice(0, 3000)} {3000+}\r\n${big.slice(0, 3000)}\r\n`, ['BAD A1 [TOOBIG]']],
  ['oversized line', `A1 LOGIN ${'x'.repeat(2000)} y\r\n`, ['BAD A1']],
  ['oversized line whose tag cannot be read', `${'x'.repeat(2000)}\r\n`, ['BAD *']],
  ['oversized line ending with a literal+: skipped too', `A1 LOGIN ${'x'.repeat(2000)} {8+}\r\n\r\nZ9 X\r\n\r\n`, ['BAD A1']],
  ['oversized line ending with a sync literal', `A1 LOGIN ${'x'.repeat(2000)} {10}\r\n`, ['BAD A1']],
  ['oversized text after a literal', `A1 X {3+}\r\nabc ${'x'.repeat(2000)}\r\n`, ['BAD A1']],
  ['absurd literal+', 'A1 APPEND INBOX {99999+}\r\n', ['FATAL']],
  ['absurd literal+ after an error', 'A1 LOGIN "x {99999+}\r\n', ['FATAL']],
];

for (const [what, input, expected] of malformed) {
  const fatal = expected.at(-1) === 'FATAL';
  const want = fatal ? expected : [...expected, 'Z1 NOOP'];
  for (const size of [Infinity, 1, 5]) {
    test(`malformed (chunks of ${size}): ${what}`, () => {
      assert.deepEqual(run(`${input}Z1 NOOP\r\n`, size), want);
    });
  }
}

test('after a fatal the reader stays fatal and ignores input', () => {
  const reader = new CommandReader(LIMITS);
  reader.push(Buffer.from('A1 X {99999+}\r\n'));
  assert.equal(reader.next('command')?.kind, 'fatal');
  reader.push(Buffer.from('A2 NOOP\r\n'));
  assert.equal(reader.next('command')?.kind, 'fatal');
  assert.equal(reader.buffered, 0);
});

test('a synchronising literal: continue exactly once, then null until the bytes are there', () => {
  const reader = new CommandReader(LIMITS);
  reader.push(Buffer.from('A1 LOGIN {5}\r\n'));
  assert.deepEqual(reader.next('command'), { kind: 'continue' });
  assert.equal(reader.next('command'), null);
  assert.equal(reader.next('line'), null, 'the mode does not matter inside a command');
  reader.push(Buffer.from('ali'));
  assert.equal(reader.next('command'), null);
  reader.push(Buffer.from('ce "pw"\r\n'));
  assert.equal(show(reader.next('command')!), 'A1 LOGIN {"alice"} "pw"');
  assert.equal(reader.next('command'), null);
});

test('discard drops pipelined bytes and a command in progress (STARTTLS)', () => {
  const reader = new CommandReader(LIMITS);
  reader.push(Buffer.from('A1 STARTTLS\r\nA2 LOGIN {5}\r\nal'));
  assert.equal(show(reader.next('command')!), 'A1 STARTTLS');
  assert.ok(reader.buffered > 0);
  reader.discard();
  assert.equal(reader.buffered, 0);
  assert.equal(reader.next('command'), null);
  reader.push(Buffer.from('A3 NOOP\r\n'));
  assert.equal(show(reader.next('command')!), 'A3 NOOP');
  reader.push(Buffer.from('A4 LOGIN {5}\r\nal'));
  assert.equal(reader.next('command')?.kind, 'continue');
  assert.equal(reader.next('command'), null);
  reader.discard();
  reader.push(Buffer.from('A5 NOOP\r\n'));
  assert.equal(show(reader.next('command')!), 'A5 NOOP');
});

test('a line that never ends is discarded as it comes: memory stays bounded', () => {
  const reader = new CommandReader(LIMITS);
  const chunk = Buffer.alloc(1000, 'x');
  let most = 0;
  for (let i = 0; i < 1000; i++) {
    reader.push(chunk);
    assert.equal(reader.next('command'), null);
    most = Math.max(most, reader.buffered);
  }
  assert.ok(most <= LIMITS.maxLineBytes + chunk.length, `held ${most}`);
  reader.push(Buffer.from('\r\nZ1 NOOP\r\n'));
  assert.deepEqual([show(reader.next('command')!), show(reader.next('command')!)], ['BAD *', 'Z1 NOOP']);
});

test('a too large literal+ is counted, not stored', () => {
  const limits = { ...LIMITS, maxLiteralBytes: 10_000 };
  const reader = new CommandReader(limits);
  reader.push(Buffer.from('A1 APPEND INBOX {30000+}\r\n'));
  assert.equal(reader.next('command'), null);
  for (let i = 0; i < 30; i++) {
    reader.push(Buffer.alloc(1000, '\n'));
    assert.equal(reader.buffered, 0);
    assert.equal(reader.next('command'), null);
  }
  reader.push(Buffer.from('\r\nZ1 NOOP\r\n'));
  assert.deepEqual([show(reader.next('command')!), show(reader.next('command')!)], ['BAD A1 [TOOBIG]', 'Z1 NOOP']);
});

test('input piling up unread beyond the limits is fatal', () => {
  const reader = new CommandReader(LIMITS);
  const line = Buffer.from('A1 NOOP\r\n');
  for (let held = 0; held <= 2 * LIMITS.maxLineBytes + LIMITS.maxLiteralBytes; held += line.length) reader.push(line);
  assert.equal(reader.next('command')?.kind, 'fatal');
  assert.equal(reader.buffered, 0);
});

test('a long line fed a byte at a time is scanned once (linear time)', () => {
  const limits = { ...LIMITS, maxLineBytes: 200_000 };
  const input = Buffer.from(`A1 X ${'a '.repeat(90_000)}"${'q'.repeat(10_000)}"\r\n`);
  const reader = new CommandReader(limits);
  const started = Date.now();
  let result: ReadResult | null = null;
  for (let i = 0; i < input.length; i++) {
    reader.push(input.subarray(i, i + 1));
    result = reader.next('command') ?? result;
  }
  assert.equal(result?.kind, 'command');
  assert.equal(result.command.args.length, 90_001);
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
});

test('hostile shapes stay linear: brackets in atoms, many sections, many quotes', () => {
  const limits = { ...LIMITS, maxLineBytes: 300_000 };
  const inputs = [`A1 X a${'['.repeat(100_000)}\r\n`, `A1 X ${'BODY[]<0> '.repeat(29_000)}\r\n`, `A1 X "${'\\\\'.repeat(90_000)}"\r\n`];
  const started = Date.now();
  for (const input of inputs) {
    const out = run(input, Infinity, [], limits);
    assert.equal(out.length, 1);
  }
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
});

test('random input never throws, always ends, and memory stays bounded', () => {
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % n;
  };
  const pieces = ['A1', ' ', '(', ')', '[', ']', 'BODY[', '<0.5>', '"', '\\', '{3}', '{4+}\r\n', '{3}\r\n', '{99+}\r\n', '{40+}\r\n', '\r\n', '\r\nA1 X ', '\nB2 FETCH 1 ', '\r', '\x00', '\xff', 'x', '1:*', 'NIL', '%'];
  for (let round = 0; round < 300; round++) {
    const reader = new CommandReader({ maxLineBytes: 64, maxLiteralBytes: 32, maxDepth: 3 });
    let input = '';
    for (let i = 0; i < 200; i++) input += pieces[random(pieces.length)];
    const bytes = Buffer.from(input, 'latin1');
    for (let at = 0; at < bytes.length; ) {
      const size = 1 + random(40);
      reader.push(bytes.subarray(at, at + size));
      at += size;
      for (let i = 0; i < 10_000; i++) {
        const r = reader.next(random(5) === 0 ? 'line' : 'command');
        if (r === null || r.kind === 'fatal') break;
        assert.ok(i < 9_999, 'next() keeps returning items');
      }
      assert.ok(reader.buffered <= 2 * 64 + 32 + 40, `held ${reader.buffered}`);
    }
  }
});

test('random input gives the same results whatever the chunking', () => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % n;
  };
  const pieces = ['A1 X ', ' ', '(', ')', 'BODY[', ']', '<1.2>', '"a\\"', '{3}\r\n', '{2+}\r\n', '{40+}\r\n', '\r\n', '\nB2 NOOP\r\n', '\x00', 'x'];
  const limits = { maxLineBytes: 48, maxLiteralBytes: 32, maxDepth: 3 };
  for (let round = 0; round < 200; round++) {
    let input = '';
    for (let i = 0; i < 100; i++) input += pieces[random(pieces.length)];
    assert.deepEqual(run(input, 1, [], limits), run(input, 37, [], limits), JSON.stringify(input));
  }
});
