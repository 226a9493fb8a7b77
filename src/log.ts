// The pino root logger and the rule for what every line may carry.
// Owns redaction: passwords and bind credentials never reach a log line, whatever the caller passes.
// Also the log's shape: JSON lines, or pino-pretty's text for a person at a terminal; and levels
// per component (the `component` binding of a child logger: smtp, directory, queue …).
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { PinoPretty } from 'pino-pretty';

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
  /** Levels for some components, overriding `level` for them and the loggers they make. */
  components?: Readonly<Record<string, LevelWithSilent>>;
  /** Human-readable lines (pino-pretty) instead of JSON. */
  pretty?: boolean;
}

export function createLogger(options: LogOptions): Logger {
  const components = options.components ?? {};
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level,
      base: { service: 'ldapmta' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // A child made for a component takes that component's level; its own children inherit it.
      onChild(child) {
        const component = (child.bindings() as { component?: unknown }).component;
        const level = typeof component === 'string' ? components[component] : undefined;
        if (level !== undefined) child.level = level;
      },
    },
    options.pretty === true
      ? PinoPretty({ destination, colorize: false, translateTime: 'SYS:standard', ignore: 'service,hostname,pid', singleLine: true, sync: true })
      : destination,
  );
}

/** Pretty lines when asked, or with "auto" when standard output is a terminal. Pure. */
export function wantsPretty(format: 'auto' | 'json' | 'pretty', isTty: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTty);
}

/** A logger that drops everything, for tools that must print only their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
