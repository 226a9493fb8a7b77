// A pino logger that writes its JSON lines into memory, for tests that assert on what was logged.
// Never writes to a file or the terminal.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.ts';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export const WARN = 40;
export const ERROR = 50;

/** `lines()` parses what was written so far; `text()` is the raw output. */
export function memoryLog(): { log: Logger; lines: () => LogLine[]; text: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  const text = () => chunks.join('');
  const lines = () => text().split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as LogLine);
  return { log, lines, text };
}
