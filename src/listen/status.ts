// Owns: what the status page shows, as one JSON snapshot (GET /status.json): the queue now and over
// the last hour (a sample a minute of the cumulative counters, kept in memory, 61 at most),
// delivery outcomes, the cache's hit rate, the directory's health and the oldest waiting messages
// with their last error. Reads the metrics and the queue; decides nothing; no I/O of its own.
import type { Metrics } from '../metrics.ts';
import type { QueueEntryView } from '../queue/types.ts';

export interface StatusSample {
  /** ISO time of the sample. */
  readonly at: string;
  readonly queued: number;
  /** Cumulative counts since start; a chart uses the differences. */
  readonly accepted: number;
  readonly delivered: number;
  readonly deferred: number;
  readonly failed: number;
}

export interface StatusSnapshot {
  readonly hostname: string;
  readonly now: string;
  readonly uptimeSeconds: number;
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, string>>;
  readonly queue: { readonly total: number; readonly active: number; readonly held: number; readonly deferred: number };
  /** Over the last hour (since the oldest sample kept). */
  readonly lastHour: { readonly accepted: number; readonly delivered: number; readonly deferred: number; readonly failed: number; readonly since: string };
  readonly cache: { readonly lookups: number; readonly hits: number; readonly hitRate: number | null };
  readonly history: readonly StatusSample[];
  readonly oldest: readonly {
    readonly id: string; readonly queuedAt: string; readonly sender: string; readonly held: boolean;
    readonly pending: readonly string[]; readonly attempts: number; readonly lastError: string | null;
  }[];
}

export interface StatusDeps {
  readonly hostname: string;
  readonly metrics: Metrics;
  readonly queue: () => QueueEntryView[];
  readonly ready: () => Promise<{ ready: boolean; checks: Readonly<Record<string, string>> }>;
  readonly now?: () => number;
  /** Between samples; a minute unless a test says otherwise. */
  readonly sampleMs?: number;
}

const KEEP = 61;

export interface StatusBoard {
  snapshot(): Promise<StatusSnapshot>;
  close(): void;
}

/** Sum of a counter's values whose labels match. */
async function total(counter: { get(): Promise<{ values: { value: number; labels: Record<string, string | number> }[] }> }, match: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values.filter((v) => Object.entries(match).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

export function createStatusBoard(deps: StatusDeps): StatusBoard {
  const now = deps.now ?? Date.now;
  const started = now();
  const samples: StatusSample[] = [];

  async function sample(): Promise<StatusSample> {
    const m = deps.metrics;
    return {
      at: new Date(now()).toISOString(),
      queued: deps.queue().length,
      accepted: await total(m.accepted),
      delivered: await total(m.deliveries, { outcome: 'delivered' }),
      deferred: await total(m.deliveries, { outcome: 'deferred' }),
      failed: await total(m.deliveries, { outcome: 'failed' }),
    };
  }

  const keep = (s: StatusSample) => {
    samples.push(s);
    if (samples.length > KEEP) samples.shift();
  };
  void sample().then(keep);
  const timer = setInterval(() => void sample().then(keep), deps.sampleMs ?? 60_000);
  timer.unref();

  return {
    async snapshot() {
      const current = await sample();
      const first = samples[0] ?? current;
      const messages = deps.queue();
      const active = messages.filter((m) => m.active).length;
      const held = messages.filter((m) => m.held && !m.active).length;
      const lookups = await total(deps.metrics.lookups);
      const hits = lookups - await total(deps.metrics.lookups, { tier: 'ldap' });
      const readiness = await deps.ready();
      const oldest = [...messages].sort((a, b) => a.queuedAt.localeCompare(b.queuedAt)).slice(0, 10).map((m) => {
        const pending = m.recipients.filter((r) => r.state === 'pending');
        const last = pending.find((r) => r.lastError !== null)?.lastError ?? null;
        return {
          id: m.id, queuedAt: m.queuedAt, sender: m.sender === '' ? '<>' : m.sender, held: m.held,
          pending: pending.map((r) => r.address), attempts: Math.max(0, ...pending.map((r) => r.attempts)),
          lastError: last === null ? null : `${last.status} ${last.text}`,
        };
      });
      return {
        hostname: deps.hostname,
        now: current.at,
        uptimeSeconds: Math.round((now() - started) / 1000),
        ready: readiness.ready,
        checks: readiness.checks,
        queue: { total: messages.length, active, held, deferred: messages.length - active - held },
        lastHour: {
          accepted: current.accepted - first.accepted, delivered: current.delivered - first.delivered,
          deferred: current.deferred - first.deferred, failed: current.failed - first.failed, since: first.at,
        },
        cache: { lookups, hits, hitRate: lookups === 0 ? null : hits / lookups },
        history: [...samples, current],
        oldest,
      };
    },
    close: () => clearInterval(timer),
  };
}
