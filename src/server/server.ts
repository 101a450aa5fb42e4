// OpenAI-compatible HTTP server over one loaded model. One generation runs at a time; later requests wait
// in a bounded FIFO queue (429 beyond it). A client that disconnects aborts its generation, freeing the model.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { chatRequestSchema, type ChatRequest, type ContentPartIn } from './schema.js';
import type { ChatEngine, ChatMessage, ContentPart, SamplingOptions, Usage } from '../api/types.js';
import { loadMediaBytes, MediaError, type MediaFetchOptions } from '../io/media.js';
import { serveWebUi } from './webui.js';

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

  constructor(private readonly engine: ChatEngine, private readonly opts: ServerOptions = {}) {
    this.queue = new ModelQueue(opts.maxQueue ?? 16);
    this.server = createServer((req, res) => void this.route(req, res));
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
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (this.closing) throw new HttpError(503, 'server_error', 'the server is shutting down');
      if (path === '/health' && req.method === 'GET') return json(res, 200, { status: 'ok', model: this.engine.modelId, queued: this.queue.waiting });
      if (serveWebUi(req, res, path)) return; // the chat page, open without the API key (src/server/webui.ts)
      this.checkAuth(req);
      if (path === '/v1/models' && req.method === 'GET') {
        return json(res, 200, { object: 'list', data: [{ id: this.engine.modelId, object: 'model', created: 0, owned_by: 'phi4mm' }] });
      }
      if (path === '/v1/chat/completions') {
        if (req.method !== 'POST') throw new HttpError(405, 'invalid_request_error', `use POST for ${path}`);
        return await this.chat(req, res);
      }
      throw new HttpError(404, 'invalid_request_error', `no route ${req.method} ${path}; available: GET /health, GET /v1/models, POST /v1/chat/completions`);
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

  private async chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, this.opts.maxBodyBytes ?? 64 * 1024 * 1024);
    const parsed = chatRequestSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = issue.path.join('.') || null;
      throw new HttpError(400, 'invalid_request_error', `${param ? `${param}: ` : ''}${issue.message}`, param, 'invalid_value');
    }
    const r = parsed.data;
    const ctrl = new AbortController();
    // A client that goes away (socket closed before we finished) cancels its request.
    res.on('close', () => { if (!res.writableFinished) ctrl.abort(); });
    const messages = await this.resolveMessages(r, ctrl.signal);
    const release = await this.queue.acquire(ctrl.signal);
    this.inflight.add(ctrl);
    try {
      const sampling = toSampling(r, ctrl.signal);
      if (r.stream) await this.streamResponse(r, messages, sampling, res, ctrl);
      else await this.plainResponse(messages, sampling, res);
    } finally {
      this.inflight.delete(ctrl);
      release();
    }
  }

  private async plainResponse(messages: ChatMessage[], sampling: SamplingOptions, res: ServerResponse): Promise<void> {
    let text = '', finish = 'stop', usage: Usage | null = null;
    for await (const ev of this.engine.streamEvents(messages, sampling)) {
      if (ev.type === 'delta') text += ev.text;
      else { finish = ev.finishReason; usage = ev.usage; }
    }
    if (finish === 'cancelled') return; // nobody is listening any more
    json(res, 200, {
      id: `chatcmpl-${randomUUID()}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: this.engine.modelId,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish, logprobs: null }],
      usage,
    });
  }

  private async streamResponse(r: ChatRequest, messages: ChatMessage[], sampling: SamplingOptions, res: ServerResponse, ctrl: AbortController): Promise<void> {
    const id = `chatcmpl-${randomUUID()}`, created = Math.floor(Date.now() / 1000), model = this.engine.modelId;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (o: unknown) => { if (!ctrl.signal.aborted) res.write(`data: ${JSON.stringify(o)}\n\n`); };
    const chunk = (delta: object, finish: string | null) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] });
    send(chunk({ role: 'assistant', content: '' }, null));
    try {
      for await (const ev of this.engine.streamEvents(messages, sampling)) {
        if (ev.type === 'delta') { if (ev.text) send(chunk({ content: ev.text }, null)); continue; }
        if (ev.finishReason === 'cancelled') break;
        send(chunk({}, ev.finishReason));
        if (r.stream_options?.include_usage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: ev.usage });
      }
    } catch (e) {
      // Headers are gone: report the failure in-stream, in the error envelope.
      send({ error: toEnvelope(e).error });
    }
    if (!ctrl.signal.aborted) res.end('data: [DONE]\n\n');
  }

  private async resolveMessages(r: ChatRequest, signal: AbortSignal): Promise<ChatMessage[]> {
    const mediaOpts: MediaFetchOptions = {
      timeoutMs: this.opts.mediaTimeoutMs ?? 20_000,
      maxBytes: this.opts.maxMediaBytes ?? 32 * 1024 * 1024,
      maxRedirects: this.opts.maxRedirects ?? 3,
      allowPrivateNetwork: this.opts.allowPrivateMedia ?? false,
      allowLocalFiles: this.opts.allowLocalMedia ?? false,
      signal,
    };
    const out: ChatMessage[] = [];
    for (const [i, m] of r.messages.entries()) {
      const role = m.role === 'developer' ? 'system' : m.role;
      if (m.content === null) { out.push({ role, content: '' }); continue; }
      if (typeof m.content === 'string') { out.push({ role, content: m.content }); continue; }
      const parts: ContentPart[] = [];
      for (const [j, p] of m.content.entries()) parts.push(await this.resolvePart(p, `messages.${i}.content.${j}`, mediaOpts));
      out.push({ role, content: parts });
    }
    return out;
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

function toSampling(r: ChatRequest, signal: AbortSignal): SamplingOptions {
  const s: SamplingOptions = { signal };
  const maxTokens = r.max_completion_tokens ?? r.max_tokens;
  if (maxTokens != null) s.maxTokens = maxTokens;
  if (r.temperature != null) s.temperature = r.temperature;
  if (r.top_p != null) s.topP = r.top_p;
  if (r.top_k != null) s.topK = r.top_k;
  if (r.min_p != null) s.minP = r.min_p;
  if (r.frequency_penalty != null) s.frequencyPenalty = r.frequency_penalty;
  if (r.presence_penalty != null) s.presencePenalty = r.presence_penalty;
  if (r.repetition_penalty != null) s.repetitionPenalty = r.repetition_penalty;
  if (r.stop != null) s.stop = r.stop;
  if (r.seed != null) s.seed = r.seed;
  return s;
}

export function toEnvelope(e: unknown): { status: number; error: { message: string; type: string; param: string | null; code: string | null } } {
  if (e instanceof HttpError) return { status: e.status, error: { message: e.message, type: e.type, param: e.param, code: e.code } };
  if (e instanceof MediaError) return { status: 400, error: { message: e.message, type: 'invalid_request_error', param: null, code: e.code } };
  const err = e as Error & { code?: string };
  // Errors raised while validating user input inside the engine (bad image, too many tokens...) are 400s.
  if (err && (err.name === 'ValidationError' || err.name === 'MediaError' || err.name === 'PromptError')) {
    return { status: 400, error: { message: err.message, type: 'invalid_request_error', param: null, code: err.code ?? null } };
  }
  return { status: 500, error: { message: `internal error: ${err?.message ?? String(e)}`, type: 'server_error', param: null, code: null } };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
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
