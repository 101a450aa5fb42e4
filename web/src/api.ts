// The page's client for /v1/chat/completions: a POST with stream: true, the SSE body read as it arrives, and
// every failure (HTTP status with the server's error envelope, an error sent mid-stream, a dropped connection)
// turned into an ApiError with a readable message. Paths are relative, so a reverse proxy may mount the page
// under a prefix.

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string } }
  | { type: 'input_audio'; input_audio: { data: string; format: string } };

export interface ApiMessage { role: 'system' | 'user' | 'assistant'; content: string | ContentPart[] }

export interface ChatBody {
  model: string;
  messages: ApiMessage[];
  temperature?: number;
  max_tokens?: number;
  seed?: number;
}

export type StreamEvent = { type: 'delta'; text: string } | { type: 'finish'; reason: string } | { type: 'usage'; usage: Usage };

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly code: string | null = null) {
    super(message);
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'The server rejected the request',
  401: 'The server needs a valid API key',
  404: 'Not found',
  405: 'Method not allowed',
  413: 'The request is too large',
  429: 'The server is busy',
  500: 'Server error',
  503: 'The server is unavailable',
};

/** The server's error envelope ({error: {message, code}}) or, failing that, the body's text. */
async function errorFrom(res: Response): Promise<ApiError> {
  const head = STATUS_TEXT[res.status] ?? `HTTP ${res.status}`;
  const raw = await res.text().catch(() => '');
  let message = raw.trim().slice(0, 500), code: string | null = null;
  try {
    const env = JSON.parse(raw) as { error?: { message?: string; code?: string | null } };
    if (env.error?.message) { message = env.error.message; code = env.error.code ?? null; }
  } catch { /* not JSON: keep the text */ }
  return new ApiError(res.status, message ? `${head} (${res.status}): ${message}` : `${head} (${res.status})`, code);
}

function headers(key: string | null): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  if (key) h['authorization'] = `Bearer ${key}`;
  return h;
}

export async function* streamChat(body: ChatBody, key: string | null, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  let res: Response;
  try {
    res = await fetch('v1/chat/completions', {
      method: 'POST',
      headers: headers(key),
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
      signal,
    });
  } catch (e) {
    if (signal.aborted) return;
    throw new ApiError(0, `Could not reach the server: ${(e as Error).message}`);
  }
  if (!res.ok) throw await errorFrom(res);
  if (!res.body) throw new ApiError(res.status, 'The server sent no body');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal.aborted) return;
        throw new ApiError(0, `The connection broke mid-reply: ${(e as Error).message}`);
      }
      if (chunk.done) break;
      buf += chunk.value;
      let cut: number;
      while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
        const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        yield* decodeChunk(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
  if (!signal.aborted) throw new ApiError(0, 'The connection closed before the reply finished');
}

function* decodeChunk(data: string): Generator<StreamEvent> {
  let o: { error?: { message?: string; code?: string }; usage?: Usage; choices?: Array<{ delta?: { content?: string | null }; finish_reason?: string | null }> };
  try {
    o = JSON.parse(data);
  } catch {
    throw new ApiError(0, `The server sent an unreadable event: ${data.slice(0, 200)}`);
  }
  if (o.error) throw new ApiError(500, `The generation failed: ${o.error.message ?? 'unknown error'}`, o.error.code ?? null);
  const c = o.choices?.[0];
  if (c?.delta?.content) yield { type: 'delta', text: c.delta.content };
  if (c?.finish_reason) yield { type: 'finish', reason: c.finish_reason };
  if (o.usage) yield { type: 'usage', usage: o.usage };
}

export type Health = { state: 'ready'; model: string } | { state: 'loading'; progress: number; stage: string };

/** GET /health (open without a key): the model name to send, or the load progress while the server loads it. */
export async function fetchHealth(): Promise<Health> {
  const res = await fetch('health');
  const body = (await res.clone().json().catch(() => ({}))) as { status?: string; model?: string; progress?: number; stage?: string };
  if (res.status === 503 && body.status === 'loading') return { state: 'loading', progress: body.progress ?? 0, stage: body.stage ?? 'load' };
  if (!res.ok) throw await errorFrom(res);
  return { state: 'ready', model: body.model ?? 'phi4mm' };
}
