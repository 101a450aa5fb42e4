// HTTP plumbing shared by the server's routes: the OpenAI error envelope, JSON replies, bounded body reads.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MediaError } from '../io/media.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Retry-After on 429/503, Allow on 405). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorEnvelope {
  status: number;
  headers: Record<string, string>;
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Any thrown value → status + OpenAI error body. Known user-input errors are 4xx; anything else is a 500. */
export function toEnvelope(e: unknown): ErrorEnvelope {
  if (e instanceof HttpError) return { status: e.status, headers: e.headers, error: { message: e.message, type: e.type, param: e.param, code: e.code } };
  const err = e as Error & { code?: string; status?: number };
  if (e instanceof MediaError || err?.name === 'MediaError') {
    const status = err.code === 'too_large' ? 413 : 400;
    return { status, headers: {}, error: { message: err.message, type: 'invalid_request_error', param: null, code: err.code ?? null } };
  }
  if (err?.name === 'EngineError' && typeof err.status === 'number') {
    // The engine's refusals: 400 (can never fit), 429 (full), 5xx (failed).
    const status = err.status;
    const type = status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error';
    return { status, headers: status === 429 ? { 'retry-after': '1' } : {}, error: { message: err.message, type, param: null, code: err.code ?? null } };
  }
  // Errors raised while validating user input inside the engine (bad image, too many tokens...) are 400s.
  if (err && (err.name === 'ValidationError' || err.name === 'PromptError')) {
    return { status: 400, headers: {}, error: { message: err.message, type: 'invalid_request_error', param: null, code: err.code ?? null } };
  }
  return { status: 500, headers: {}, error: { message: `internal error: ${err?.message ?? String(e)}`, type: 'server_error', param: null, code: null } };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body);
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(res.req?.method === 'HEAD' ? undefined : s);
}

export const badRequest = (message: string, param: string | null = null, code: string | null = 'invalid_value') =>
  new HttpError(400, 'invalid_request_error', message, param, code);

/** Media type of the request without parameters, lower-cased ('' when absent). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The body, up to `limit` bytes (413 beyond, from Content-Length before reading when declared). */
export async function readBody(req: IncomingMessage, limit: number, signal?: AbortSignal): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit, declared);
  // With a Content-Length, each chunk is copied into place as it arrives: one Buffer.concat of a 16 MB body at
  // the end blocked the event loop for 120–140 ms on a loaded machine. (Node's parser never delivers more than
  // the declared length.) A chunked body is still joined at the end.
  const into = Number.isInteger(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : null;
  const chunks: Buffer[] = [];
  let n = 0;
  // Not destroyed on an early exit: Node then drains the rest after the reply, so the client reads the 413.
  for await (const c of req.iterator({ destroyOnReturn: false })) {
    if (signal?.aborted) throw new HttpError(499, 'invalid_request_error', 'client closed the request', null, 'client_closed');
    const chunk = c as Buffer;
    if (n + chunk.length > limit) throw tooLarge(limit);
    if (into) chunk.copy(into, n);
    else chunks.push(chunk);
    n += chunk.length;
  }
  return into ? into.subarray(0, n) : Buffer.concat(chunks);
}

export function tooLarge(limit: number, declared?: number): HttpError {
  const what = declared !== undefined ? `request body of ${declared} bytes` : 'request body';
  return new HttpError(413, 'invalid_request_error', `${what} exceeds the limit of ${limit} bytes (server option maxBodyBytes)`, null, 'body_too_large');
}

export async function readJson(req: IncomingMessage, limit: number, signal?: AbortSignal): Promise<unknown> {
  return parseJson(await readBody(req, limit, signal));
}

export function parseJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'invalid_request_error', `request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
  }
}
