// POST /v1/chat/completions: n choices (seed + i each), logprobs, logit_bias, tools and tool_choice, structured
// outputs (response_format), streamed or not, in OpenAI's shapes. Order of work: admit (from headers) → read the
// body → validate (schema, model, tools, grammar, logit_bias) → budgets from text and media headers → wait for the
// model → decode media (worker) → first engine event → only then the 200 headers, so every input error is a 4xx,
// streaming or not.
import { randomUUID } from 'node:crypto';
import { chatRequestSchema, formatIssue, unsupportedFields, type ChatRequest, type ContentPartIn } from './schema.js';
import type { ChatEvent, ChatMessage, ContentPart, SamplingOptions, TokenLogprob, Usage } from '../api/types.js';
import { loadMediaBytes, MediaError, type MediaFetchOptions } from '../io/media.js';
import { parseToolCalls, ToolCallStreamParser, type ToolCall } from '../text/tool_calls.js';
import { HttpError, parseJson, readBody, sendJson, toEnvelope, tooLarge } from './http.js';
import { Budget, decodePool } from './limits.js';
import { choiceSeed, nowSec, toSampling } from './common.js';
import { compileConstraint } from './constraints.js';
import { mediaHttpError, routeContext } from './routes.js';
import { DEFAULT_TOOL_SYSTEM, renderAssistantCalls, renderTools, toolPlan, type ToolPlan } from './tools.js';
import type { RequestContext, Route } from './server.js';

const PATH = '/v1/chat/completions';
/** Bytes a request without Content-Length is assumed to hold until its body is read. */
const UNKNOWN_BODY_BYTES = 64 * 1024;
/** Bodies and base64 payloads above this are parsed/decoded in the worker: a 16 MiB JSON.parse stalls the event loop. */
const OFFLOAD_BYTES = 1024 * 1024;

export function chatCompletionsRoute(): Route {
  return { method: 'POST', path: PATH, handler: chatCompletions };
}

type PendingPart = { type: 'text'; text: string } | { type: 'image'; bytes: Uint8Array; param: string } | { type: 'audio'; bytes: Uint8Array; param: string; seconds: number };

/** The engine event stream of one choice; `current` is returned (engine cleanup) when the request ends. */
type Events = AsyncIterator<ChatEvent>;

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
    const bad = unsupportedFields(raw);
    if (bad.length) throw new HttpError(400, 'invalid_request_error', `${bad.join(', ')}: not supported by this server; remove ${bad.length > 1 ? 'them' : 'it'} from the request`, bad[0]!, 'unsupported_parameter');
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
    const plan = toolPlan(r.tools, r.tool_choice, r.parallel_tool_calls);
    const constraint = compileConstraint(routeContext(ctx), r, { tools: 'tool_choice', format: 'response_format' });
    const base = toSampling({ ...r, max_tokens: maxTokens }, signal, engine);
    if (r.logprobs) base.topLogprobs = r.top_logprobs ?? 0;
    if (plan.suppressIds.length) base.suppressIds = plan.suppressIds;
    if (constraint) base.constraint = constraint;
    let chars = 0, items = 0;
    for (const m of r.messages) {
      if (typeof m.content === 'string') chars += m.content.length;
      else for (const p of m.content ?? []) { if (p.type === 'text') chars += p.text.length; else items++; }
    }
    budget.checkCounts(chars, items);
    const pending = await fetchMedia(ctx, r, budget, blobs);
    ticket.resize(bodyBytes + pending.flat().reduce((n, p) => n + ('bytes' in p ? p.bytes.length : 0), 0));
    await ticket.turn(signal);
    const messages = await toChatMessages(r, pending, budget);
    const id = `chatcmpl-${randomUUID()}`;
    if (r.user != null || r.metadata != null) server.opts.log?.(`${id}: user=${JSON.stringify(r.user ?? null)} metadata=${JSON.stringify(r.metadata ?? null)}`);
    // Choice 0 runs alone until its prompt is in (its first event); then choices 1..n−1 start together, so they
    // find the prompt's blocks in the prefix cache and decode in one batch, while the response still lists
    // the choices in order.
    const started: Events[] = [];
    const start = (i: number): Events => {
      const it = engine.streamEvents(messages, withSeed(base, i))[Symbol.asyncIterator]();
      const first = it.next();
      first.catch(() => {}); // surfaced when this choice is read
      let primed: Promise<IteratorResult<ChatEvent>> | null = first;
      const ev: Events = {
        next: () => { const p = primed ?? it.next(); primed = null; return p; },
        return: (v) => it.return!(v),
        [Symbol.asyncIterator]() { return this; },
      } as Events;
      started.push(ev);
      return ev;
    };
    const run: Run = { ctx, r, id, model, plan, current: null, open: (i) => (run.current = i === 0 ? start(0) : started[i]!) };
    try {
      const events = run.open(0);
      const firstToken = server.metrics.firstTokenTimer(PATH);
      const t0 = performance.now();
      const first = await events.next(); // prompt building and prefill errors surface here, before any header
      ctx.stats.ttftMs = performance.now() - t0;
      firstToken();
      if (!first.done) for (let j = 1; j < (r.n ?? 1); j++) start(j);
      if (r.stream) await streamResponse(run, first);
      else await plainResponse(run, first);
    } finally {
      // Runs the engine's own cleanup when we stop at the 'done' event, and frees choices never read.
      await Promise.all(started.map((e) => e.return?.(undefined).catch(() => undefined)));
    }
  } finally {
    ticket.release();
  }
}

interface Run {
  ctx: RequestContext;
  r: ChatRequest;
  id: string;
  model: string;
  plan: ToolPlan;
  current: Events | null;
  /** Choice i (seed + i), made `current`: choice 0 starts here; the others were started after its first event. */
  open(i: number): Events;
}

/** Fetches every media part (bounded bytes) and checks its header against the budgets; nothing is decoded yet. */
interface Blobs { marker: string; list: Array<Uint8Array | { error: string }> }

async function fetchMedia(ctx: RequestContext, r: ChatRequest, budget: Budget, blobs: Blobs): Promise<PendingPart[][]> {
  const o = ctx.server.opts;
  const opts: MediaFetchOptions = {
    timeoutMs: o.mediaTimeoutMs ?? 20_000, maxBytes: budget.limits.maxMediaBytes, maxRedirects: o.maxRedirects ?? 3,
    allowPrivateNetwork: o.allowPrivateMedia ?? false, allowLocalFiles: o.allowLocalMedia ?? false, signal: ctx.signal,
    ...(o.mediaNetwork ? { network: o.mediaNetwork } : {}),
  };
  const out: PendingPart[][] = [];
  for (const [i, m] of r.messages.entries()) {
    const parts: PendingPart[] = [];
    if (m.role === 'user' && Array.isArray(m.content)) {
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
      throw mediaHttpError(e, param);
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

/** The request's messages as library messages: media decoded, tools in the system turn, past calls re-rendered. */
async function toChatMessages(r: ChatRequest, pending: PendingPart[][], budget: Budget): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  const text = (c: string | Array<{ text: string }>) => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));
  for (const [i, m] of r.messages.entries()) {
    switch (m.role) {
      case 'system': case 'developer': out.push({ role: 'system', content: text(m.content) }); break;
      case 'tool': out.push({ role: 'tool', content: text(m.content) }); break;
      case 'assistant': {
        const content = m.content == null ? '' : text(m.content);
        try {
          out.push({ role: 'assistant', content: m.tool_calls?.length ? renderAssistantCalls(content, m.tool_calls, `messages.${i}`) : content });
        } catch (e) {
          throw new HttpError(400, 'invalid_request_error', (e as Error).message, `messages.${i}.tool_calls`, 'invalid_value');
        }
        break;
      }
      case 'user': {
        if (typeof m.content === 'string') { out.push({ role: 'user', content: m.content }); break; }
        out.push({ role: 'user', content: await decodeParts(pending[i]!, budget) });
      }
    }
  }
  if (r.tools?.length) {
    const sys = out.find((m) => m.role === 'system');
    if (sys) sys.tools = renderTools(r.tools);
    else out.unshift({ role: 'system', content: DEFAULT_TOOL_SYSTEM, tools: renderTools(r.tools) });
  }
  return out;
}

async function decodeParts(pending: PendingPart[], budget: Budget): Promise<ContentPart[]> {
  const parts: ContentPart[] = [];
  for (const p of pending) {
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
      throw mediaHttpError(e, p.param);
    }
  }
  return parts;
}

interface ChoiceResult {
  text: string;
  finish: string;
  usage: Usage | null;
  logprobs: TokenLogprob[];
}

/** Sums the usage of n choices: the prompt counts once, completions add up (as OpenAI reports n > 1). */
export function mergeUsage(us: Array<Usage | null>): Usage | null {
  const all = us.filter((u): u is Usage => u !== null);
  if (!all.length) return null;
  if (all.length === 1) return all[0]!;
  const sum = (k: Exclude<keyof Usage, 'prompt_tokens_details'>) => all.reduce((a, u) => a + u[k], 0);
  const prompt = all[0]!.prompt_tokens, compl = sum('completion_tokens');
  const promptSec = sum('total_prompt_time_sec'), complSec = sum('total_completion_time_sec');
  const rate = (n: number, s: number) => (s > 0 ? n / s : 0);
  return {
    prompt_tokens: prompt, completion_tokens: compl, total_tokens: prompt + compl,
    avg_tok_per_sec: rate(sum('prompt_tokens') + compl, promptSec + complSec), avg_prompt_tok_per_sec: rate(sum('prompt_tokens'), promptSec),
    avg_compl_tok_per_sec: rate(compl, complSec), total_time_sec: promptSec + complSec, total_prompt_time_sec: promptSec, total_completion_time_sec: complSec,
    ...(all[0]!.prompt_tokens_details ? { prompt_tokens_details: all[0]!.prompt_tokens_details } : {}),
  };
}

/** The client is gone (nothing to send) or the server is shutting down (503 envelope, from the abort reason). */
const cancelled = (ctx: RequestContext) => ctx.signal.reason ?? new HttpError(499, 'invalid_request_error', 'cancelled', null, 'client_closed');

async function plainResponse(run: Run, first: IteratorResult<ChatEvent>): Promise<void> {
  const { ctx, r, plan } = run;
  const results: ChoiceResult[] = [];
  for (let i = 0; i < (r.n ?? 1); i++) {
    const events = i === 0 ? run.current! : run.open(i);
    const out: ChoiceResult = { text: '', finish: 'stop', usage: null, logprobs: [] };
    for (let ev = i === 0 ? first : await events.next(); !ev.done; ev = await events.next()) {
      const e = ev.value;
      if (e.logprobs) out.logprobs.push(...e.logprobs);
      if (e.type === 'delta') { out.text += e.text; continue; }
      out.finish = e.finishReason;
      out.usage = e.usage;
      break;
    }
    if (out.finish === 'cancelled') throw cancelled(ctx);
    if (!out.usage) throw new Error('generation ended without a result');
    ctx.server.metrics.countTokens(PATH, i === 0 ? out.usage.prompt_tokens : 0, out.usage.completion_tokens);
    results.push(out);
  }
  const usage = mergeUsage(results.map((c) => c.usage));
  if (usage) { ctx.stats.promptTokens = usage.prompt_tokens; ctx.stats.completionTokens = usage.completion_tokens; }
  sendJson(ctx.res, 200, {
    id: run.id, object: 'chat.completion', created: nowSec(), model: run.model,
    choices: results.map((c, index) => {
      const { content, toolCalls } = plan.parse ? parseToolCalls(c.text) : { content: c.text, toolCalls: [] as ToolCall[] };
      const calls = plan.parallel ? toolCalls : toolCalls.slice(0, 1);
      const message = calls.length
        ? { role: 'assistant', content: content.trim() ? content : null, refusal: null, tool_calls: calls }
        : { role: 'assistant', content, refusal: null };
      return { index, message, finish_reason: calls.length ? 'tool_calls' : c.finish, logprobs: r.logprobs ? { content: c.logprobs, refusal: null } : null };
    }),
    usage,
  });
}

async function streamResponse(run: Run, first: IteratorResult<ChatEvent>): Promise<void> {
  const { ctx, r, id, model, plan } = run;
  const { res, signal } = ctx;
  const created = nowSec();
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const open = () => !res.destroyed && !res.writableEnded;
  const send = (o: unknown) => { if (open()) res.write(`data: ${JSON.stringify(o)}\n\n`); };
  const chunk = (index: number, delta: object, finish: string | null, logprobs: TokenLogprob[] | null = null) =>
    send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index, delta, finish_reason: finish, logprobs: logprobs && r.logprobs ? { content: logprobs, refusal: null } : null }] });
  const usages: Array<Usage | null> = [];
  let finished = false, index = 0;
  try {
    for (; index < (r.n ?? 1); index++) {
      const i = index;
      const events = i === 0 ? run.current! : run.open(i);
      const firstToken = i === 0 ? () => {} : ctx.server.metrics.firstTokenTimer(PATH);
      const parser = plan.parse ? new ToolCallStreamParser() : null;
      let calls = 0;
      // Content deltas as they come; each call as one tool_calls delta once its block is complete.
      const emit = (text: string, logprobs: TokenLogprob[] | null) => {
        const evs = parser ? parser.push(text) : [{ type: 'content' as const, text }];
        let content = '';
        for (const e of evs) {
          if (e.type === 'content') { content += e.text; continue; }
          if (!plan.parallel && e.delta.index > 0) continue;
          calls++;
          chunk(i, { tool_calls: [e.delta] }, null);
        }
        if (content || logprobs?.length) chunk(i, content ? { content } : {}, null, logprobs);
      };
      chunk(i, { role: 'assistant', content: '' }, null);
      let finish = 'stop';
      for (let ev = i === 0 ? first : await events.next(); !ev.done; ev = await events.next()) {
        const e = ev.value;
        if (e.type === 'delta') { firstToken(); emit(e.text, e.logprobs ?? null); continue; }
        finish = e.finishReason;
        usages.push(e.usage);
        ctx.server.metrics.countTokens(PATH, i === 0 ? e.usage.prompt_tokens : 0, e.usage.completion_tokens);
        if (e.logprobs?.length) chunk(i, {}, null, e.logprobs);
        break;
      }
      if (parser && finish !== 'cancelled') {
        for (const e of parser.end()) {
          if (e.type === 'content') { if (e.text) chunk(i, { content: e.text }, null); }
          else if (plan.parallel || e.delta.index === 0) { calls++; chunk(i, { tool_calls: [e.delta] }, null); }
        }
      }
      chunk(i, {}, calls ? 'tool_calls' : finish); // 'cancelled' when the server shut down mid-stream
      if (finish === 'cancelled') { finished = true; break; }
    }
    const usage = mergeUsage(usages);
    if (usage) { ctx.stats.promptTokens = usage.prompt_tokens; ctx.stats.completionTokens = usage.completion_tokens; }
    if (r.stream_options?.include_usage && !signal.aborted) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
    finished = true;
  } catch (e) {
    // Headers are gone: report the failure in-stream, in the error envelope.
    send({ error: toEnvelope(e).error });
    finished = true;
  }
  if (!finished && signal.aborted) chunk(index, {}, 'cancelled');
  if (open()) res.end('data: [DONE]\n\n');
}

function withSeed(base: SamplingOptions, i: number): SamplingOptions {
  const seed = choiceSeed(base.seed, i);
  const o = { ...base };
  if (seed === undefined) delete o.seed; else o.seed = seed;
  return o;
}
