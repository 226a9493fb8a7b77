// Owns: the Prometheus metrics of one running server (one Registry per start(), never prom-client's
// global one), named and labelled in one place. Stages get the Metrics object passed in and only
// count; the admin listener renders it. Gauges that mirror state (the queue, the LDAP pool, Redis)
// are read when scraped, through the probes main.ts installs. Labels are closed sets (listener,
// stage, status, outcome, transport, tier), never addresses or other unbounded values.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Outcome } from './mail.ts';

/** What the gauges read at scrape time; each is optional (a part that is not running has none). */
export interface Probes {
  /** Queued messages by state: deferred (waiting for a retry), active (being delivered), held. */
  queue?: () => Readonly<Record<string, number>>;
  /** LDAP connections open and operations in flight. */
  ldap?: () => { readonly open: number; readonly inFlight: number };
  /** 1 when Redis answers, 0 when configured and down; absent when not configured. */
  redis?: () => number;
}

export interface Metrics {
  readonly registry: Registry;
  readonly connections: Counter<'listener'>;
  readonly sessions: Gauge<'listener'>;
  readonly accepted: Counter<'listener'>;
  /** Refusals by the stage that refused (connect, sender, recipient, message, auth) and RFC 3463 status. */
  readonly rejected: Counter<'listener' | 'stage' | 'status'>;
  readonly deliveries: Counter<'outcome' | 'transport'>;
  readonly deliveryLatency: Histogram<'transport'>;
  readonly lookups: Counter<'result' | 'tier'>;
  /** Filter verdicts after DATA: accept, tag, junk, tempfail, reject. */
  readonly filterVerdicts: Counter<'action'>;
  readonly lookupLatency: Histogram<'tier'>;
  /** Install the scrape-time readers of state. */
  probe(probes: Probes): void;
  /** The text exposition (content type in `contentType`). */
  render(): Promise<string>;
  readonly contentType: string;
}

export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'ldapmta_' });
  const probes: Probes = {};
  const registers = [registry];

  const metrics: Metrics = {
    registry,
    connections: new Counter({ name: 'ldapmta_connections_total', help: 'Connections accepted by each listener', labelNames: ['listener'], registers }),
    sessions: new Gauge({ name: 'ldapmta_sessions', help: 'Sessions open now on each listener', labelNames: ['listener'], registers }),
    accepted: new Counter({ name: 'ldapmta_messages_accepted_total', help: 'Messages answered 250 after DATA (queued and fsynced)', labelNames: ['listener'], registers }),
    rejected: new Counter({
      name: 'ldapmta_smtp_rejections_total', help: 'SMTP refusals by stage and RFC 3463 status (4.x.x temporary, 5.x.x permanent)',
      labelNames: ['listener', 'stage', 'status'], registers,
    }),
    deliveries: new Counter({
      name: 'ldapmta_deliveries_total', help: 'Delivery attempts per recipient by outcome (delivered, deferred, failed) and transport (local, smtp, none)',
      labelNames: ['outcome', 'transport'], registers,
    }),
    deliveryLatency: new Histogram({
      name: 'ldapmta_delivery_latency_seconds', help: 'Time from acceptance to successful delivery, per recipient',
      labelNames: ['transport'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14_400, 86_400], registers,
    }),
    lookups: new Counter({
      name: 'ldapmta_directory_lookups_total', help: 'Recipient lookups by result (mailbox, forward, group, reject, unknown, error) and tier that answered (memory, redis, ldap, stale)',
      labelNames: ['result', 'tier'], registers,
    }),
    filterVerdicts: new Counter({
      name: 'ldapmta_filter_verdicts_total', help: 'Content filter verdicts after DATA (accept, tag, junk, tempfail, reject)', labelNames: ['action'], registers,
    }),
    lookupLatency: new Histogram({
      name: 'ldapmta_directory_lookup_seconds', help: 'Recipient lookup time by the tier that answered',
      labelNames: ['tier'], buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers,
    }),
    probe(more) {
      Object.assign(probes, more);
      // Without Redis there is no redis_up at all (an unlabelled gauge would read 0: "down").
      if (more.redis !== undefined && registry.getSingleMetric('ldapmta_redis_up') === undefined) {
        new Gauge({
          name: 'ldapmta_redis_up', help: '1 when the cache\'s Redis answers, 0 when it is down', registers,
          collect() {
            this.set(probes.redis?.() ?? 0);
          },
        });
      }
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };

  new Gauge({
    name: 'ldapmta_queue_messages', help: 'Messages in the queue by state', labelNames: ['state'], registers,
    collect() {
      this.reset();
      for (const [state, count] of Object.entries(probes.queue?.() ?? {})) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'ldapmta_ldap_connections', help: 'LDAP connections open (state="open") and operations in flight (state="in_flight")', labelNames: ['state'], registers,
    collect() {
      const ldap = probes.ldap?.();
      if (ldap === undefined) return;
      this.set({ state: 'open' }, ldap.open);
      this.set({ state: 'in_flight' }, ldap.inFlight);
    },
  });
  return metrics;
}

/** Count one attempt's outcomes: delivered ones also give their latency since acceptance. */
export function countOutcomes(metrics: Metrics | undefined, outcomes: readonly Outcome[], transport: 'local' | 'smtp' | 'none', queuedAt: Date, now = Date.now()): void {
  if (metrics === undefined) return;
  for (const outcome of outcomes) {
    const result = outcome.ok ? 'delivered' : outcome.error.kind === 'temporary' ? 'deferred' : 'failed';
    metrics.deliveries.inc({ outcome: result, transport });
    if (outcome.ok) metrics.deliveryLatency.observe({ transport }, Math.max(0, now - queuedAt.getTime()) / 1000);
  }
}
