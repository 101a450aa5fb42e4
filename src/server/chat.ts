// POST /v1/chat/completions. Order of work: admit (from headers) → read the body → validate → budgets from
// text and media headers → wait for the model → decode media (worker) → first engine event → only then the
// 200 headers, so every input error is a 4xx, streaming or not.
import { randomUUID } from 'node:crypto';
import { chatRequestSchema, formatIssue, type ChatRequest, type ContentPartIn } from './schema.js';
import type { ChatEvent, ChatMessage, ContentPart, SamplingOptions } from '../api/types.js';
import { loadMediaBytes, MediaError, type MediaFetchOptions } from '../io/media.js';
import { HttpError, parseJson, readBody, sendJson, toEnvelope, tooLarge } from './http.js';
import { Budget, decodePool } from './limits.js';
import type { RequestContext, Route } from './server.js';

/** Bytes a request without Content-Length is assumed to hold until its body is read. */
const UNKNOWN_BODY_BYTES = 64 * 1024;
/** Bodies and base64 payloads above this are parsed/decoded in the worker: a 16 MiB JSON.parse stalls the event loop. */
const OFFLOAD_BYTES = 1024 * 1024;

export function chatCompletionsRoute(): Route {
  return { method: 'POST', path: '/v1/chat/completions', handler: chatCompletions };
}

type PendingPart = { type: 'text'; text: string } | { type: 'image'; bytes: Uint8Array; param: string } | { type: 'audio'; bytes: Uint8Array; param: string; seconds: number };

async function chatCompletions(ctx: RequestContext): Promise<void> {
  const { server, signal } = ctx;
  const engine = server.engine;
  const limits = server.limits;
  const declared = Number(ctx.req.headers['content-length'] ?? NaN);
  if (declared > limits.maxBodyBytes) throw tooLarge(limits.maxBodyBytes, declared);
  const ticket = server.admission.admit(Number.isFinite(declared) ? declared : UNKNOWN_BODY_BYTES);
  try {
    const body = await readBody(ctx.req, limits.maxBodyBytes, signal);
    const bodyBytes = body.length;
    ticket.resize(bodyBytes);
    const budget = new Budget(limits);
    let raw: unknown, blobs: Blobs = { marker: '', list: [] };
    if (bodyBytes > OFFLOAD_BYTES) {
      // Parsed in the worker, with its base64 media decoded there (the main thread never holds the big strings).
      const marker = `\u0000blob-${randomUUID()}:`;
      const prep = await decodePool().prepareBody(body, marker, limits.maxPromptChars).catch((e: Error) => {
        throw e instanceof SyntaxError ? new HttpError(400, 'invalid_request_error', `request body is not valid JSON: ${e.message}`, null, 'invalid_json') : e;
      });
      if (prep.value === null) budget.checkCounts(prep.chars, 0);
      raw = prep.value;
      blobs = { marker, list: prep.blobs };
    } else raw = parseJson(body);
    const parsed = chatRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const { param, message } = formatIssue(parsed.error.issues as never, raw);
      throw new HttpError(400, 'invalid_request_error', message, param, 'invalid_value');
    }
    const r = parsed.data;
    const model = server.checkModel(r.model);
    ctx.stats.model = model;
    const maxTokens = r.max_completion_tokens ?? r.max_tokens;
    if (maxTokens != null && maxTokens > limits.maxTokens) {
      throw new HttpError(400, 'invalid_request_error', `${r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens'} is ${maxTokens}, more than the limit of ${limits.maxTokens} (server option maxTokens)`, r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens', 'invalid_value');
    }
    let chars = 0, items = 0;
    for (const m of r.messages) {
      if (typeof m.content === 'string') chars += m.content.length;
      else for (const p of m.content ?? []) { if (p.type === 'text') chars += p.text.length; else items++; }
    }
    budget.checkCounts(chars, items);
    const pending = await fetchMedia(ctx, r, budget, blobs);
    ticket.resize(bodyBytes + pending.flat().reduce((n, p) => n + ('bytes' in p ? p.bytes.length : 0), 0));
    await ticket.turn(signal);
    const messages = await decodeMedia(r, pending, budget);
    const events = engine.streamEvents(messages, toSampling(r, signal))[Symbol.asyncIterator]();
    try {
      const t0 = performance.now();
      const first = await events.next(); // prompt building and prefill errors surface here, before any header
      ctx.stats.ttftMs = performance.now() - t0;
      if (r.stream) await streamResponse(ctx, r, model, first, events);
      else await plainResponse(ctx, model, first, events);
    } finally {
      await events.return?.(undefined); // runs the engine's own cleanup (its lock) when we stop at the 'done' event
    }
  } finally {
    ticket.release();
  }
}

/** Fetches every media part (bounded bytes) and checks its header against the budgets; nothing is decoded yet. */
interface Blobs { marker: string; list: Array<Uint8Array | { error: string }> }

async function fetchMedia(ctx: RequestContext, r: ChatRequest, budget: Budget, blobs: Blobs): Promise<PendingPart[][]> {
  const o = ctx.server.opts;
  const opts: MediaFetchOptions = {
    timeoutMs: o.mediaTimeoutMs ?? 20_000, maxBytes: budget.limits.maxMediaBytes, maxRedirects: o.maxRedirects ?? 3,
    allowPrivateNetwork: o.allowPrivateMedia ?? false, allowLocalFiles: o.allowLocalMedia ?? false, signal: ctx.signal,
  };
  const out: PendingPart[][] = [];
  for (const [i, m] of r.messages.entries()) {
    const parts: PendingPart[] = [];
    if (Array.isArray(m.content)) {
      for (const [j, p] of m.content.entries()) parts.push(await fetchPart(p, `messages.${i}.content.${j}`, opts, budget, blobs));
    }
    out.push(parts);
  }
  return out;
}

async function fetchPart(p: ContentPartIn, param: string, opts: MediaFetchOptions, budget: Budget, blobs: Blobs): Promise<PendingPart> {
  const bytes = async (src: string, kind: 'image' | 'audio') => {
    try {
      if (blobs.marker && src.startsWith(blobs.marker)) {
        const blob = blobs.list[Number(src.slice(blobs.marker.length))];
        if (!blob) throw new MediaError('bad_url', `${kind} source is not a URL or base64`);
        if (!(blob instanceof Uint8Array)) throw new MediaError('bad_base64', `${kind} ${blob.error}`);
        return await loadMediaBytes(blob, kind, opts);
      }
      return await loadMediaBytes(src, kind, opts);
    } catch (e) {
      if (e instanceof MediaError) throw new HttpError(e.code === 'too_large' ? 413 : 400, 'invalid_request_error', `${param}: ${e.message}`, param, e.code);
      throw e;
    }
  };
  switch (p.type) {
    case 'text': return { type: 'text', text: p.text };
    case 'image_url': {
      const b = await bytes(typeof p.image_url === 'string' ? p.image_url : p.image_url.url, 'image');
      budget.image(b, param);
      return { type: 'image', bytes: b, param };
    }
    case 'audio_url':
    case 'input_audio': {
      let b: Uint8Array;
      if (p.type === 'audio_url') b = await bytes(typeof p.audio_url === 'string' ? p.audio_url : p.audio_url.url, 'audio');
      else {
        const d = p.input_audio.data;
        b = await bytes(blobs.marker && d.startsWith(blobs.marker) ? d : `data:;base64,${d}`, 'audio');
      }
      const seconds = budget.audio(b, param);
      return { type: 'audio', bytes: b, param, seconds };
    }
  }
}

async function decodeMedia(r: ChatRequest, pending: PendingPart[][], budget: Budget): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  for (const [i, m] of r.messages.entries()) {
    const role = m.role === 'developer' ? 'system' : m.role;
    if (m.content === null) { out.push({ role, content: '' }); continue; }
    if (typeof m.content === 'string') { out.push({ role, content: m.content }); continue; }
    const parts: ContentPart[] = [];
    for (const p of pending[i]!) {
      if (p.type === 'text') { parts.push(p); continue; }
      try {
        if (p.type === 'image') {
          const img = await decodePool().decodeImage(p.bytes, budget.limits.maxImagePixels);
          parts.push({ type: 'image', image: { width: img.width, height: img.height, data: img.data, channels: 3 } });
        } else {
          const a = await decodePool().decodeAudio(p.bytes);
          budget.decodedAudio(a.samples.length, a.sampleRate, p.seconds, p.param);
          parts.push({ type: 'audio', audio: a });
        }
      } catch (e) {
        if (e instanceof MediaError) throw new HttpError(e.code === 'too_large' ? 413 : 400, 'invalid_request_error', `${p.param}: ${e.message}`, p.param, e.code);
        throw e;
      }
    }
    out.push({ role, content: parts });
  }
  return out;
}

async function plainResponse(ctx: RequestContext, model: string, first: IteratorResult<ChatEvent>, events: AsyncIterator<ChatEvent>): Promise<void> {
  let text = '', ev = first;
  for (; !ev.done; ev = await events.next()) {
    const e = ev.value;
    if (e.type === 'delta') { text += e.text; continue; }
    ctx.stats.promptTokens = e.usage.prompt_tokens;
    ctx.stats.completionTokens = e.usage.completion_tokens;
    if (e.finishReason === 'cancelled') {
      // The client is gone (nothing to send) or the server is shutting down (503 envelope, from the abort reason).
      throw ctx.signal.reason ?? new HttpError(499, 'invalid_request_error', 'cancelled', null, 'client_closed');
    }
    return sendJson(ctx.res, 200, {
      id: `chatcmpl-${randomUUID()}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: e.finishReason, logprobs: null }],
      usage: e.usage,
    });
  }
  throw new Error('generation ended without a result');
}

async function streamResponse(ctx: RequestContext, r: ChatRequest, model: string, first: IteratorResult<ChatEvent>, events: AsyncIterator<ChatEvent>): Promise<void> {
  const { res, signal } = ctx;
  const id = `chatcmpl-${randomUUID()}`, created = Math.floor(Date.now() / 1000);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const open = () => !res.destroyed && !res.writableEnded;
  const send = (o: unknown) => { if (open()) res.write(`data: ${JSON.stringify(o)}\n\n`); };
  const chunk = (delta: object, finish: string | null) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] });
  send(chunk({ role: 'assistant', content: '' }, null));
  let finished = false;
  try {
    for (let ev = first; !ev.done; ev = await events.next()) {
      const e = ev.value;
      if (e.type === 'delta') { if (e.text) send(chunk({ content: e.text }, null)); continue; }
      ctx.stats.promptTokens = e.usage.prompt_tokens;
      ctx.stats.completionTokens = e.usage.completion_tokens;
      send(chunk({}, e.finishReason)); // 'cancelled' when the server shut down mid-stream
      if (r.stream_options?.include_usage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: e.usage });
      finished = true;
    }
  } catch (e) {
    // Headers are gone: report the failure in-stream, in the error envelope.
    send({ error: toEnvelope(e).error });
    finished = true;
  }
  if (!finished && signal.aborted) send(chunk({}, 'cancelled'));
  if (open()) res.end('data: [DONE]\n\n');
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
