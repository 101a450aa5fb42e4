// GET /metrics in the Prometheus text format (prom-client), one registry per server. Counters and histograms
// are fed by the route handlers; the gauges read live figures at scrape time from `stats` — the server's queue
// and in-flight set, merged with whatever the engine's `stats()` reports (KV blocks once the engine has them).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineStats } from '../api/types.js';

const LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const TTFT_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Known route paths are labels as they are; anything else is 'other' (unbounded label values would leak memory). */
const ROUTE_LABELS = new Set(['/health', '/metrics', '/v1/models', '/v1/chat/completions', '/v1/completions', '/v1/audio/transcriptions', '/v1/audio/translations', '/v1/responses']);

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly ttft: Histogram<'route'>;
  private readonly promptTokens: Counter<'route'>;
  private readonly generatedTokens: Counter<'route'>;

  constructor(stats: () => EngineStats | Promise<EngineStats>) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'phi4mm_http_requests_total', help: 'HTTP requests by route, method and status code', labelNames: ['route', 'method', 'status'], registers });
    this.latency = new Histogram({ name: 'phi4mm_request_duration_seconds', help: 'Time from request to the end of the response', labelNames: ['route'], buckets: LATENCY_BUCKETS_S, registers });
    this.ttft = new Histogram({ name: 'phi4mm_time_to_first_token_seconds', help: 'Time from request to the first generated token', labelNames: ['route'], buckets: TTFT_BUCKETS_S, registers });
    this.promptTokens = new Counter({ name: 'phi4mm_prompt_tokens_total', help: 'Prompt tokens processed', labelNames: ['route'], registers });
    this.generatedTokens = new Counter({ name: 'phi4mm_generated_tokens_total', help: 'Tokens generated', labelNames: ['route'], registers });
    const gauge = (name: string, help: string, pick: (s: EngineStats) => number | undefined) =>
      new Gauge({ name, help, registers, async collect() { const v = pick(await stats()); this.set(v ?? Number.NaN); } });
    gauge('phi4mm_queue_depth', 'Requests waiting for the model', (s) => s.queueDepth);
    gauge('phi4mm_running_sequences', 'Requests (sequences) being generated now', (s) => s.runningSequences);
    gauge('phi4mm_kv_blocks_in_use', 'Paged KV-cache blocks in use (NaN until the engine reports them)', (s) => s.kvBlocksInUse);
    gauge('phi4mm_kv_blocks_total', 'Paged KV-cache blocks in all (NaN until the engine reports them)', (s) => s.kvBlocksTotal);
    collectDefaultMetrics({ register: this.registry, prefix: 'phi4mm_process_' });
  }

  static route(path: string): string {
    if (ROUTE_LABELS.has(path)) return path;
    return path.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
  }

  /** Counts the request by status and times it when its response ends. */
  trackRequest(req: IncomingMessage, res: ServerResponse, path: string): void {
    const route = ServerMetrics.route(path), t0 = performance.now();
    res.once('close', () => {
      const status = res.headersSent ? String(res.statusCode) : 'aborted';
      this.requests.inc({ route, method: req.method ?? 'GET', status });
      this.latency.observe({ route }, (performance.now() - t0) / 1000);
    });
  }

  /** Starts a TTFT clock for one generation: call the returned function at the first token (later calls are ignored). */
  firstTokenTimer(path: string): () => void {
    const t0 = performance.now();
    let done = false;
    return () => { if (!done) { done = true; this.ttft.observe({ route: ServerMetrics.route(path) }, (performance.now() - t0) / 1000); } };
  }

  countTokens(path: string, prompt: number, generated: number): void {
    const route = ServerMetrics.route(path);
    this.promptTokens.inc({ route }, prompt);
    this.generatedTokens.inc({ route }, generated);
  }

  async serve(res: ServerResponse): Promise<void> {
    const body = await this.registry.metrics();
    res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}
