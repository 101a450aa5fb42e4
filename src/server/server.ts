// OpenAI-compatible HTTP server over one loaded model. Routes live in a table (`addRoute`); each request gets a
// RequestContext with an id, an abort signal (client gone or shutdown) and stats for its log line. Admission
// (429 + Retry-After) is decided from the headers before any body is read; see admission.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { ChatEngine } from '../api/types.js';
import { HttpError, mediaType, sendJson, toEnvelope } from './http.js';
import { QueueAdmission, type Admission } from './admission.js';
import { resolveLimits, type RequestLimits } from './limits.js';
import { chatCompletionsRoute } from './chat.js';
import { ServerMetrics } from './metrics.js';
import { openaiRoutes } from './routes.js';
import type { OpenAIRouteOptions } from './common.js';
import { EngineAdmission } from '../engine/admission.js';
import type { Engine } from '../engine/engine.js';
import { webUiRoutes } from './webui.js';
import type { MediaNetwork } from '../io/media.js';

export { HttpError, toEnvelope, sendJson as json, readJson } from './http.js';

export interface ServerOptions extends Partial<RequestLimits> {
  port?: number;
  host?: string;
  /** Bearer token clients must send; none = open. An empty string is refused. */
  apiKey?: string;
  /** Directory local media paths / file:// URLs must lie in; none = local paths refused. */
  allowLocalMedia?: string;
  /** Let media URLs resolve to loopback/private addresses (off by default: SSRF protection). */
  allowPrivateMedia?: boolean;
  /** Resolver and address filter of media URLs, in code only (tests, custom DNS); default: system DNS, IANA lists. */
  mediaNetwork?: MediaNetwork;
  mediaTimeoutMs?: number;
  maxRedirects?: number;
  /** Requests allowed to wait while one runs (default 16); the single-runner queue only (an engine that schedules itself has its own maxWaiting). */
  maxQueue?: number;
  /** Bytes of bodies held by waiting requests (default 256 MiB). */
  maxWaitingBytes?: number;
  /** Model names clients may ask for; the first is reported. Default: ['phi4mm', hub id when the model came from the hub]. */
  servedModelNames?: string[];
  /** Origins allowed by CORS ('*' for any); none = no CORS headers. */
  corsOrigins?: string[];
  /** Accepted Host header values (host or host:port); none = any. */
  allowedHosts?: string[];
  /** How long a shutdown waits for running requests before closing their connections (default 10 000 ms). */
  shutdownGraceMs?: number;
  /**
   * The server owns its model: close() also closes it (the CLI's `serve`). Off by default, since a model handed
   * in may be shared (several servers, or the caller's own use).
   */
  closeEngine?: boolean;
  /** Per-request log line format (default 'text'). */
  logFormat?: 'text' | 'json';
  log?: (line: string) => void;
  /**
   * Replaces the built-in admission. Default: an engine that schedules itself (the library's Phi4MM) gets an
   * EngineAdmission (requests run together, 429 when the engine is full); other engines the single-runner queue.
   */
  admission?: Admission;
  /** Options of the OpenAI routes (routes.ts): transcription chunking and the like. */
  openai?: OpenAIRouteOptions;
}

/** What a route handler gets. */
export interface RequestContext {
  readonly id: string;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Captures of a RegExp route path. */
  readonly params: string[];
  /** Aborted when the client goes away or the server shuts down (see `shuttingDown`). */
  readonly signal: AbortSignal;
  readonly server: ChatServer;
  /** Filled by handlers for the request log line. */
  readonly stats: { model?: string; promptTokens?: number; completionTokens?: number; ttftMs?: number };
}

export interface Route {
  method: string;
  /** Exact path, or a RegExp over the path (captures → ctx.params). */
  path: string | RegExp;
  handler: (ctx: RequestContext) => Promise<void> | void;
  /** Requires the API key when one is set (default true). */
  auth?: boolean;
  /** Accepted request media types for methods with a body (default ['application/json']). */
  contentTypes?: string[];
}

/** The library's Phi4MM offers its scheduler (`engine`). */
type ServerEngine = ChatEngine & { engine?: Engine };

export interface LoadingState { stage: string; progress: number }

const KEEP_ALIVE_MS = 30_000;

export class ChatServer {
  readonly server: Server;
  readonly limits: RequestLimits;
  readonly metrics: ServerMetrics;
  private admissionRef: Admission;
  private admissionFromEngine = false;
  private readonly routes: Route[] = [];
  private readonly active = new Map<string, AbortController>();
  private engineRef: ServerEngine | null;
  private loading: LoadingState = { stage: 'load', progress: 0 };
  private closing = false;
  private closed: Promise<void> | null = null;

  constructor(engine: ChatEngine | null, readonly opts: ServerOptions = {}) {
    if (opts.apiKey !== undefined && opts.apiKey.trim() === '') throw new Error('apiKey is empty; give a non-empty key or leave it unset');
    this.engineRef = engine;
    this.limits = resolveLimits(opts);
    this.admissionRef = opts.admission ?? new QueueAdmission({ ...(opts.maxQueue !== undefined ? { maxQueue: opts.maxQueue } : {}), ...(opts.maxWaitingBytes !== undefined ? { maxWaitingBytes: opts.maxWaitingBytes } : {}) });
    if (engine) this.adoptEngineAdmission(engine);
    this.metrics = new ServerMetrics(async () => {
      // An engine with its own scheduler knows its queue, running sequences and KV blocks; otherwise the admission's.
      const e = await this.engineRef?.stats?.();
      return e ? { queueDepth: e.waiting, runningSequences: e.running, kvBlocksInUse: e.blocksInUse, kvBlocksTotal: e.blocksTotal }
        : { queueDepth: this.admission.waiting, runningSequences: this.admission.running };
    });
    this.server = createServer((req, res) => void this.dispatch(req, res));
    // Longer than clients' keep-alive reuse window, so a reused idle socket is not closed under a new request
    // (ECONNRESET at the client); shutdown closes idle sockets itself.
    this.server.keepAliveTimeout = KEEP_ALIVE_MS;
    this.addRoute({ method: 'GET', path: '/health', auth: false, handler: (c) => this.health(c) });
    this.addRoute({ method: 'GET', path: '/v1/models', handler: (c) => sendJson(c.res, 200, { object: 'list', data: this.modelNames().map((id) => ({ id, object: 'model', created: 0, owned_by: 'phi4mm' })) }) });
    this.addRoute(chatCompletionsRoute());
    for (const r of openaiRoutes()) this.addRoute(r);
    for (const r of webUiRoutes()) this.addRoute(r); // the chat page at / (src/server/webui.ts)
  }

  get admission(): Admission { return this.admissionRef; }

  /** An engine that schedules itself runs admitted requests together: its admission replaces the one-at-a-time queue. */
  private adoptEngineAdmission(e: ServerEngine): void {
    if (this.opts.admission || this.admissionFromEngine || !e.engine || !e.admit) return;
    if (this.admissionRef.running || this.admissionRef.waiting) return; // requests hold tickets of the current one
    const busy = (msg: string) => new HttpError(429, 'rate_limit_error', msg, null, 'queue_full', { 'retry-after': '1' });
    const closed = (msg: string) => new HttpError(503, 'server_error', msg, null, 'shutting_down');
    this.admissionRef = new EngineAdmission(e.engine, busy, closed);
    this.admissionFromEngine = true;
    if (this.closing) this.admissionRef.shutdown();
  }

  /** Add a route (later routes with the same method and path are not reached). HEAD is served by GET routes. */
  addRoute(r: Route): this {
    this.routes.push(r);
    return this;
  }

  /** The model, or 503 while it loads. */
  get engine(): ServerEngine {
    if (!this.engineRef) throw new HttpError(503, 'server_error', `the model is still loading (${Math.round(this.loading.progress * 100)} %); retry shortly`, null, 'model_loading', { 'retry-after': '5' });
    return this.engineRef;
  }

  /** Bind first, load later: `/health` reports progress until the engine arrives. */
  setLoading(s: LoadingState): void { this.loading = s; }
  setEngine(e: ChatEngine): void { this.engineRef = e; this.adoptEngineAdmission(e); }

  /** Names clients may put in `model`; the first is the one reported. */
  modelNames(): string[] {
    if (this.opts.servedModelNames?.length) return this.opts.servedModelNames;
    const id = this.engineRef?.modelId;
    return id && !id.startsWith('/') && !id.startsWith('.') && id.includes('/') ? ['phi4mm', id] : ['phi4mm'];
  }

  /** 404 in OpenAI's model_not_found shape unless `model` is served here; returns the name to report. */
  checkModel(model: string): string {
    if (this.modelNames().includes(model)) return model;
    throw new HttpError(404, 'invalid_request_error', `The model \`${model}\` does not exist; this server serves ${this.modelNames().map((n) => `\`${n}\``).join(', ')}`, 'model', 'model_not_found');
  }

  get shuttingDown(): boolean { return this.closing; }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.opts.port ?? 1234, host, () => { this.server.off('error', fail); ok(); });
    });
    const a = this.server.address();
    const port = typeof a === 'object' && a ? a.port : (this.opts.port ?? 1234);
    return { host, port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
  }

  /**
   * Stop admitting (new requests and queued ones get 503), end running requests (streams with a final chunk and
   * [DONE], others with a 503 envelope), then close. Connections still open after `graceMs` are cut. With
   * `closeEngine`, the model is closed last (Phi4MM: its worker threads stop).
   */
  close(graceMs = this.opts.shutdownGraceMs ?? 10_000): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.admission.shutdown();
    for (const c of this.active.values()) c.abort(new HttpError(503, 'server_error', 'the server is shutting down', null, 'shutting_down'));
    this.closed = (async () => {
      const stopped = new Promise<void>((ok) => this.server.close(() => ok()));
      this.server.closeIdleConnections?.();
      const timer = setTimeout(() => this.server.closeAllConnections?.(), graceMs);
      const idle = setInterval(() => this.server.closeIdleConnections?.(), 50);
      try {
        await stopped;
      } finally {
        clearTimeout(timer);
        clearInterval(idle);
      }
      if (this.opts.closeEngine) await this.engineRef?.close?.();
    })();
    return this.closed;
  }

  private health(c: RequestContext): void {
    if (!this.engineRef) return sendJson(c.res, 503, { status: 'loading', stage: this.loading.stage, progress: this.loading.progress });
    sendJson(c.res, this.closing ? 503 : 200, { status: this.closing ? 'shutting_down' : 'ok', model: this.modelNames()[0], queued: this.admission.waiting, running: this.admission.running });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : `req-${randomUUID()}`;
    const url = new URL(req.url ?? '/', 'http://x');
    const ctrl = new AbortController();
    const ctx: RequestContext = { id, req, res, path: url.pathname, query: url.searchParams, params: [], signal: ctrl.signal, server: this, stats: {} };
    res.setHeader('x-request-id', id);
    this.metrics.trackRequest(req, res, ctx.path);
    // A client that goes away (socket closed before we finished) cancels its request.
    res.on('close', () => {
      this.active.delete(id + t0);
      if (!res.writableFinished) ctrl.abort(new HttpError(499, 'invalid_request_error', 'client closed the request', null, 'client_closed'));
      this.logRequest(ctx, t0);
    });
    this.active.set(id + t0, ctrl);
    try {
      this.checkHost(req);
      this.cors(req, res);
      if (this.closing) throw new HttpError(503, 'server_error', 'the server is shutting down', null, 'shutting_down');
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const onPath = this.routes.filter((r) => (typeof r.path === 'string' ? r.path === ctx.path : r.path.test(ctx.path)));
      if (req.method === 'OPTIONS' && onPath.length) return this.preflight(req, res, onPath);
      const route = onPath.find((r) => r.method === method);
      if (!route) {
        if (onPath.length) throw new HttpError(405, 'invalid_request_error', `use ${[...new Set(onPath.map((r) => r.method))].join(' or ')} for ${ctx.path}`, null, 'method_not_allowed', { allow: allowed(onPath) });
        throw new HttpError(404, 'invalid_request_error', `no route ${req.method} ${ctx.path}; available: ${this.routes.map((r) => `${r.method} ${typeof r.path === 'string' ? r.path : r.path.source}`).join(', ')}`, null, 'not_found');
      }
      if (typeof route.path !== 'string') (ctx.params as string[]).push(...(route.path.exec(ctx.path)!.slice(1)));
      if (route.auth !== false) this.checkAuth(req);
      if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
        const want = route.contentTypes ?? ['application/json'];
        const got = mediaType(req);
        if (!want.includes(got)) throw new HttpError(415, 'invalid_request_error', `Content-Type must be ${want.join(' or ')} (got ${got ? `"${got}"` : 'none'})`, null, 'unsupported_media_type');
      }
      await route.handler(ctx);
    } catch (e) {
      this.fail(ctx, e);
    }
  }

  private checkAuth(req: IncomingMessage): void {
    const key = this.opts.apiKey;
    if (!key) return;
    const got = /^bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    const a = Buffer.from(got), b = Buffer.from(key);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(401, 'authentication_error', 'missing or wrong API key (send "Authorization: Bearer <key>")', null, 'invalid_api_key');
  }

  private checkHost(req: IncomingMessage): void {
    const hosts = this.opts.allowedHosts;
    if (!hosts?.length) return;
    const h = (req.headers.host ?? '').toLowerCase();
    const bare = h.replace(/:\d+$/, '');
    if (!hosts.some((a) => a.toLowerCase() === h || a.toLowerCase() === bare)) {
      throw new HttpError(421, 'invalid_request_error', `Host "${h}" is not served here (server option allowedHosts)`, null, 'host_not_allowed');
    }
  }

  private corsOrigin(req: IncomingMessage): string | null {
    const origins = this.opts.corsOrigins, origin = req.headers.origin;
    if (!origins?.length || !origin) return null;
    return origins.includes('*') ? '*' : origins.includes(origin) ? origin : null;
  }

  private cors(req: IncomingMessage, res: ServerResponse): void {
    const o = this.corsOrigin(req);
    if (!o) return;
    res.setHeader('access-control-allow-origin', o);
    res.setHeader('access-control-expose-headers', 'x-request-id, retry-after');
    if (o !== '*') res.setHeader('vary', 'Origin');
  }

  private preflight(req: IncomingMessage, res: ServerResponse, onPath: Route[]): void {
    const headers: Record<string, string> = { allow: allowed(onPath), 'content-length': '0' };
    if (this.corsOrigin(req)) {
      headers['access-control-allow-methods'] = allowed(onPath);
      headers['access-control-allow-headers'] = String(req.headers['access-control-request-headers'] ?? 'authorization, content-type');
      headers['access-control-max-age'] = '600';
    }
    res.writeHead(204, headers);
    res.end();
  }

  private fail(ctx: RequestContext, e: unknown): void {
    const env = toEnvelope(e);
    if (env.status >= 500 && env.status !== 503) this.opts.log?.(`error ${ctx.id}: ${(e as Error).stack ?? String(e)}`);
    if (env.status === 499 || ctx.res.destroyed) { if (!ctx.res.writableEnded) ctx.res.destroy(); return; }
    if (ctx.res.headersSent) { ctx.res.end(); return; }
    sendJson(ctx.res, env.status, { error: env.error }, env.headers);
  }

  private logRequest(ctx: RequestContext, t0: number): void {
    const log = this.opts.log;
    if (!log) return;
    const status = ctx.res.writableFinished ? ctx.res.statusCode : 499;
    const s = ctx.stats;
    const rec = {
      time: new Date().toISOString(), id: ctx.id, method: ctx.req.method, path: ctx.path, status,
      ms: Math.round(performance.now() - t0), ...(s.model ? { model: s.model } : {}),
      ...(s.promptTokens !== undefined ? { prompt_tokens: s.promptTokens } : {}), ...(s.completionTokens !== undefined ? { completion_tokens: s.completionTokens } : {}),
      ...(s.ttftMs !== undefined ? { ttft_ms: Math.round(s.ttftMs) } : {}),
    };
    if (this.opts.logFormat === 'json') return log(JSON.stringify(rec));
    const tok = s.promptTokens !== undefined ? ` tokens=${s.promptTokens}+${s.completionTokens ?? 0}` : '';
    log(`${rec.time} ${rec.method} ${rec.path} ${status}${tok}${s.ttftMs !== undefined ? ` ttft=${rec.ttft_ms}ms` : ''} total=${rec.ms}ms id=${ctx.id}`);
  }
}

function allowed(routes: Route[]): string {
  const m = new Set(routes.map((r) => r.method));
  if (m.has('GET')) m.add('HEAD');
  m.add('OPTIONS');
  return [...m].join(', ');
}
