// OpenAI-compatible HTTP server over one loaded model. One generation runs at a time; later requests wait
// in a bounded FIFO queue (429 beyond it). A client that disconnects aborts its generation, freeing the model.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { ContentPartIn } from './schema.js';
import type { ChatEngine, ContentPart } from '../api/types.js';
import { loadMediaBytes, MediaError, type MediaFetchOptions } from '../io/media.js';
import { handleRoute, ROUTE_LIST, type RouteContext, type OpenAIRouteOptions } from './routes.js';
import { ServerMetrics } from './metrics.js';

export interface ServerOptions {
  port?: number;
  host?: string;
  /** Bearer token clients must send; none = open. */
  apiKey?: string;
  /** Directory local media paths / file:// URLs must lie in; none = local paths refused. */
  allowLocalMedia?: string;
  /** Let media URLs resolve to loopback/private addresses (off by default: SSRF protection). */
  allowPrivateMedia?: boolean;
  /** Largest request body in bytes (default 64 MiB: base64 audio is big). */
  maxBodyBytes?: number;
  /** Largest decoded media item in bytes (default 32 MiB). */
  maxMediaBytes?: number;
  mediaTimeoutMs?: number;
  maxRedirects?: number;
  /** Requests allowed to wait while one runs (default 16). */
  maxQueue?: number;
  log?: (line: string) => void;
  /** Options of the OpenAI routes (routes.ts): transcription chunking and the like. */
  openai?: OpenAIRouteOptions;
}

export class HttpError extends Error {
  constructor(readonly status: number, readonly type: string, message: string, readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }
}

/** A FIFO lock with a bounded number of waiters. */
class ModelQueue {
  private busy = false;
  private readonly waiters: Array<{ go: () => void; fail: (e: Error) => void }> = [];
  constructor(private readonly maxWaiting: number) {}
  get waiting(): number { return this.waiters.length; }
  async acquire(signal: AbortSignal): Promise<() => void> {
    if (this.busy) {
      if (this.waiters.length >= this.maxWaiting) throw new HttpError(429, 'rate_limit_error', `the model is busy and ${this.waiters.length} requests are already waiting; retry later`, null, 'queue_full');
      await new Promise<void>((go, fail) => {
        const w = { go, fail };
        this.waiters.push(w);
        signal.addEventListener('abort', () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) { this.waiters.splice(i, 1); fail(new Error('client went away while queued')); }
        }, { once: true });
      });
    }
    this.busy = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next.go(); else this.busy = false;
    };
  }
}

export class ChatServer {
  readonly server: Server;
  private readonly queue: ModelQueue;
  private readonly inflight = new Set<AbortController>();
  private closing = false;
  readonly metrics: ServerMetrics;
  private readonly ctx: RouteContext;

  constructor(private readonly engine: ChatEngine, private readonly opts: ServerOptions = {}) {
    this.queue = new ModelQueue(opts.maxQueue ?? 16);
    this.server = createServer((req, res) => void this.route(req, res));
    this.metrics = new ServerMetrics(async () => {
      // An engine with its own scheduler knows its queue, running sequences and KV blocks; otherwise the server's queue.
      const e = await engine.stats?.();
      return e ? { queueDepth: e.waiting, runningSequences: e.running, kvBlocksInUse: e.blocksInUse, kvBlocksTotal: e.blocksTotal }
        : { queueDepth: this.queue.waiting, runningSequences: this.inflight.size };
    });
    // What the OpenAI route handlers (routes.ts and its files) need from the server: admission, media, bodies.
    this.ctx = {
      engine, opts: opts.openai ?? {}, metrics: this.metrics, log: (line) => opts.log?.(line),
      readJson: (req) => readJson(req, opts.maxBodyBytes ?? 64 * 1024 * 1024),
      maxBodyBytes: opts.maxBodyBytes ?? 64 * 1024 * 1024,
      resolvePart: (p, param, signal) => this.resolvePart(p, param, this.mediaOptions(signal)),
      admit: async (ctrl, fn) => {
        // An engine with its own scheduler runs requests together and refuses (429) when full; others run one at a time.
        const release = this.engine.admit ? (this.engine.admit(), () => {}) : await this.queue.acquire(ctrl.signal);
        this.inflight.add(ctrl);
        try {
          return await fn();
        } finally {
          this.inflight.delete(ctrl);
          release();
        }
      },
    };
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.opts.port ?? 1234, host, () => ok());
    });
    const a = this.server.address();
    const port = typeof a === 'object' && a ? a.port : (this.opts.port ?? 1234);
    return { host, port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
  }

  /** Stop accepting, abort running generations, and close. */
  async close(): Promise<void> {
    this.closing = true;
    for (const c of this.inflight) c.abort();
    await new Promise<void>((ok) => this.server.close(() => ok()));
    this.server.closeAllConnections?.();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    this.metrics.trackRequest(req, res, path);
    try {
      if (this.closing) throw new HttpError(503, 'server_error', 'the server is shutting down');
      if (path === '/health' && req.method === 'GET') return json(res, 200, { status: 'ok', model: this.engine.modelId, queued: this.queue.waiting });
      this.checkAuth(req);
      if (path === '/v1/models' && req.method === 'GET') {
        return json(res, 200, { object: 'list', data: [{ id: this.engine.modelId, object: 'model', created: 0, owned_by: 'phi4mm' }] });
      }
      if (await handleRoute(this.ctx, req, res, path)) return;
      throw new HttpError(404, 'invalid_request_error', `no route ${req.method} ${path}; available: GET /health, GET /v1/models, ${ROUTE_LIST}`);
    } catch (e) {
      this.fail(res, e);
    }
  }

  private checkAuth(req: IncomingMessage): void {
    const key = this.opts.apiKey;
    if (!key) return;
    const got = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(got), b = Buffer.from(key);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(401, 'authentication_error', 'missing or wrong API key (send "Authorization: Bearer <key>")', null, 'invalid_api_key');
  }

  private mediaOptions(signal: AbortSignal): MediaFetchOptions {
    return {
      timeoutMs: this.opts.mediaTimeoutMs ?? 20_000,
      maxBytes: this.opts.maxMediaBytes ?? 32 * 1024 * 1024,
      maxRedirects: this.opts.maxRedirects ?? 3,
      allowPrivateNetwork: this.opts.allowPrivateMedia ?? false,
      allowLocalFiles: this.opts.allowLocalMedia ?? false,
      signal,
    };
  }

  private async resolvePart(p: ContentPartIn, param: string, opts: MediaFetchOptions): Promise<ContentPart> {
    const fetchBytes = async (src: string, kind: 'image' | 'audio') => {
      try {
        return await loadMediaBytes(src, kind, opts);
      } catch (e) {
        if (e instanceof MediaError) throw new HttpError(e.code === 'too_large' ? 413 : 400, 'invalid_request_error', `${param}: ${e.message}`, param, e.code);
        throw e;
      }
    };
    switch (p.type) {
      case 'text': return { type: 'text', text: p.text };
      case 'image_url': return { type: 'image', image: await fetchBytes(typeof p.image_url === 'string' ? p.image_url : p.image_url.url, 'image') };
      case 'audio_url': return { type: 'audio', audio: await fetchBytes(typeof p.audio_url === 'string' ? p.audio_url : p.audio_url.url, 'audio') };
      case 'input_audio': {
        if (!/^[A-Za-z0-9+/=\s_-]+$/.test(p.input_audio.data)) throw new HttpError(400, 'invalid_request_error', `${param}.input_audio.data: not base64`, `${param}.input_audio.data`, 'bad_base64');
        return { type: 'audio', audio: new Uint8Array(Buffer.from(p.input_audio.data, 'base64')) };
      }
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    const env = toEnvelope(e);
    if (env.status >= 500) this.opts.log?.(`error: ${(e as Error).stack ?? String(e)}`);
    if (res.headersSent) { res.end(); return; }
    json(res, env.status, { error: env.error });
  }
}

export function toEnvelope(e: unknown): { status: number; error: { message: string; type: string; param: string | null; code: string | null } } {
  if (e instanceof HttpError) return { status: e.status, error: { message: e.message, type: e.type, param: e.param, code: e.code } };
  if (e instanceof MediaError) return { status: 400, error: { message: e.message, type: 'invalid_request_error', param: null, code: e.code } };
  const err = e as Error & { code?: string; status?: number };
  if (err?.name === 'EngineError' && typeof err.status === 'number') {
    const type = err.status === 429 ? 'rate_limit_error' : err.status < 500 ? 'invalid_request_error' : 'server_error';
    return { status: err.status, error: { message: err.message, type, param: null, code: err.code ?? null } };
  }
  // Errors raised while validating user input inside the engine (bad image, too many tokens...) are 400s.
  if (err && (err.name === 'ValidationError' || err.name === 'MediaError' || err.name === 'PromptError')) {
    return { status: 400, error: { message: err.message, type: 'invalid_request_error', param: null, code: err.code ?? null } };
  }
  return { status: 500, error: { message: `internal error: ${err?.message ?? String(e)}`, type: 'server_error', param: null, code: null } };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, 'invalid_request_error', `request body of ${declared} bytes exceeds the limit of ${limit}`, null, 'body_too_large');
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new HttpError(413, 'invalid_request_error', `request body exceeds the limit of ${limit} bytes`, null, 'body_too_large');
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'invalid_request_error', `request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
  }
}
