// POST /v1/chat/completions: n choices (seed + i each), logprobs, logit_bias, tools and tool_choice, structured
// outputs (response_format), streamed or not, in OpenAI's shapes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { ChatMessage, ContentPart, SamplingOptions, TokenLogprob, Usage } from '../api/types.js';
import { parseToolCalls, ToolCallStreamParser, type ToolCall } from '../text/tool_calls.js';
import { HttpError, json } from './server.js';
import { chatRequestSchema, type ChatRequest } from './schema.js';
import { choiceSeed, nowSec, parseRequest, requestController, SseWriter, toSampling, type RouteContext } from './common.js';
import { DEFAULT_TOOL_SYSTEM, renderAssistantCalls, renderTools, toolPlan, type ToolPlan } from './tools.js';
import { compileConstraint } from './constraints.js';

const PATH = '/v1/chat/completions';

export async function handleChat(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const r = parseRequest(chatRequestSchema, await ctx.readJson(req));
  const plan = toolPlan(r.tools, r.tool_choice, r.parallel_tool_calls);
  const constraint = compileConstraint(ctx, r, { tools: 'tool_choice', format: 'response_format' });
  const ctrl = requestController(res);
  const messages = await toChatMessages(ctx, r, plan, ctrl.signal);
  const base = toSampling({ ...r, max_tokens: r.max_completion_tokens ?? r.max_tokens }, ctrl.signal, ctx.engine);
  if (r.logprobs) base.topLogprobs = r.top_logprobs ?? 0;
  if (plan.suppressIds.length) base.suppressIds = plan.suppressIds;
  if (constraint) base.constraint = constraint;
  const id = `chatcmpl-${randomUUID()}`;
  if (r.user != null || r.metadata != null) ctx.log(`${id}: user=${JSON.stringify(r.user ?? null)} metadata=${JSON.stringify(r.metadata ?? null)}`);
  await ctx.admit(ctrl, () => (r.stream ? stream(ctx, r, id, messages, base, plan, res, ctrl) : plain(ctx, r, id, messages, base, plan, res)));
}

/** The request's messages as library messages: media resolved, tools in the system turn, past calls re-rendered. */
async function toChatMessages(ctx: RouteContext, r: ChatRequest, plan: ToolPlan, signal: AbortSignal): Promise<ChatMessage[]> {
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
        const parts: ContentPart[] = [];
        for (const [j, p] of m.content.entries()) parts.push(await ctx.resolvePart(p, `messages.${i}.content.${j}`, signal));
        out.push({ role: 'user', content: parts });
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

async function plain(ctx: RouteContext, r: ChatRequest, id: string, messages: ChatMessage[], base: SamplingOptions, plan: ToolPlan, res: ServerResponse): Promise<void> {
  const n = r.n ?? 1;
  const results: ChoiceResult[] = [];
  for (let i = 0; i < n; i++) {
    const firstToken = ctx.metrics.firstTokenTimer(PATH);
    const out: ChoiceResult = { text: '', finish: 'stop', usage: null, logprobs: [] };
    for await (const ev of ctx.engine.streamEvents(messages, withSeed(base, i))) {
      if (ev.logprobs) out.logprobs.push(...ev.logprobs);
      if (ev.type === 'delta') { firstToken(); out.text += ev.text; } else { out.finish = ev.finishReason; out.usage = ev.usage; }
    }
    if (out.finish === 'cancelled') return; // nobody is listening any more
    if (out.usage) ctx.metrics.countTokens(PATH, i === 0 ? out.usage.prompt_tokens : 0, out.usage.completion_tokens);
    results.push(out);
  }
  json(res, 200, {
    id, object: 'chat.completion', created: nowSec(), model: ctx.engine.modelId,
    choices: results.map((c, index) => {
      const { content, toolCalls } = plan.parse ? parseToolCalls(c.text) : { content: c.text, toolCalls: [] as ToolCall[] };
      const calls = plan.parallel ? toolCalls : toolCalls.slice(0, 1);
      const message = calls.length
        ? { role: 'assistant', content: content.trim() ? content : null, refusal: null, tool_calls: calls }
        : { role: 'assistant', content, refusal: null };
      return { index, message, finish_reason: calls.length ? 'tool_calls' : c.finish, logprobs: r.logprobs ? { content: c.logprobs, refusal: null } : null };
    }),
    usage: mergeUsage(results.map((c) => c.usage)),
  });
}

async function stream(ctx: RouteContext, r: ChatRequest, id: string, messages: ChatMessage[], base: SamplingOptions, plan: ToolPlan, res: ServerResponse, ctrl: AbortController): Promise<void> {
  const created = nowSec(), model = ctx.engine.modelId;
  const sse = new SseWriter(res, ctrl.signal);
  const chunk = (index: number, delta: object, finish: string | null, logprobs: TokenLogprob[] | null = null) =>
    sse.send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index, delta, finish_reason: finish, logprobs: logprobs && r.logprobs ? { content: logprobs, refusal: null } : null }] });
  const usages: Array<Usage | null> = [];
  try {
    for (let i = 0; i < (r.n ?? 1); i++) {
      const firstToken = ctx.metrics.firstTokenTimer(PATH);
      const parser = plan.parse ? new ToolCallStreamParser() : null;
      let calls = 0;
      // Content deltas as they come; each call as one tool_calls delta once its block is complete.
      const emit = (text: string, logprobs: TokenLogprob[] | null) => {
        const events = parser ? parser.push(text) : [{ type: 'content' as const, text }];
        let content = '';
        for (const e of events) {
          if (e.type === 'content') { content += e.text; continue; }
          if (!plan.parallel && e.delta.index > 0) continue;
          calls++;
          chunk(i, { tool_calls: [e.delta] }, null);
        }
        if (content || logprobs?.length) chunk(i, content ? { content } : {}, null, logprobs);
      };
      chunk(i, { role: 'assistant', content: '' }, null);
      let finish = 'stop';
      for await (const ev of ctx.engine.streamEvents(messages, withSeed(base, i))) {
        if (ev.type === 'delta') {
          firstToken();
          emit(ev.text, ev.logprobs ?? null);
          continue;
        }
        finish = ev.finishReason;
        usages.push(ev.usage);
        ctx.metrics.countTokens(PATH, i === 0 ? ev.usage.prompt_tokens : 0, ev.usage.completion_tokens);
        if (ev.logprobs?.length) chunk(i, {}, null, ev.logprobs);
      }
      if (finish === 'cancelled') return;
      if (parser) {
        for (const e of parser.end()) {
          if (e.type === 'content') { if (e.text) chunk(i, { content: e.text }, null); }
          else if (plan.parallel || e.delta.index === 0) { calls++; chunk(i, { tool_calls: [e.delta] }, null); }
        }
      }
      chunk(i, {}, calls ? 'tool_calls' : finish);
    }
    if (r.stream_options?.include_usage) sse.send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: mergeUsage(usages) });
  } catch (e) {
    sse.error(e);
  }
  sse.end();
}

function withSeed(base: SamplingOptions, i: number): SamplingOptions {
  const seed = choiceSeed(base.seed, i);
  const o = { ...base };
  if (seed === undefined) delete o.seed; else o.seed = seed;
  return o;
}
