// The pino root logger and the rule for what every line may carry.
// Owns redaction: passwords and bind credentials never reach a log line, whatever the caller passes.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

/** Field names whose values are always replaced by "[redacted]". */
export const REDACTED_PATHS = [
  'password', '*.password', 'bindPassword', '*.bindPassword', '*.*.bindPassword',
  'credentials', '*.credentials', 'userPassword', '*.userPassword',
  'smarthostPassword', '*.smarthostPassword', '*.*.smarthostPassword', 'secret', '*.secret', '*.*.secret', 'oldSecrets', '*.oldSecrets', 'token', '*.token',
];

export interface LogOptions {
  level: LevelWithSilent;
  /** Where lines go; stdout when absent. Tests pass a stream to read lines back. */
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'ldapmta' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything, for tools that must print only their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
