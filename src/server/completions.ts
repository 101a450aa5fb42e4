// POST /v1/completions, the legacy text endpoint: a raw prompt (string or list) with no chat template, n samples
// per prompt (seed + i), legacy-shaped logprobs (tokens, token_logprobs, top_logprobs, text_offset).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { SamplingOptions, TokenLogprob, Usage } from '../api/types.js';
import { HttpError, sendJson as json } from './http.js';
import { completionRequestSchema } from './schema.js';
import { choiceSeed, nowSec, parseRequest, requestController, SseWriter, toSampling, type RouteContext } from './common.js';
import { mergeUsage } from './chat.js';

const PATH = '/v1/completions';

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

/** OpenAI's legacy logprobs block; `offset` is where this piece starts in the choice's text. */
function legacy(lps: readonly TokenLogprob[], offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const t of lps) {
    out.tokens.push(t.token);
    out.token_logprobs.push(t.logprob);
    out.top_logprobs.push(Object.fromEntries(t.top_logprobs.map((x) => [x.token, x.logprob])));
    out.text_offset.push(at);
    at += Buffer.from(t.bytes).toString('utf8').length;
  }
  return out;
}

export async function handleCompletions(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const r = parseRequest(completionRequestSchema, await ctx.readJson(req));
  const run = ctx.engine.streamCompletion?.bind(ctx.engine);
  if (!run) throw new HttpError(404, 'invalid_request_error', 'this engine has no raw-prompt completions; use /v1/chat/completions');
  const prompts = Array.isArray(r.prompt) ? r.prompt : [r.prompt];
  const n = r.n ?? 1;
  const ctrl = requestController(res);
  const base = toSampling(r, ctrl.signal, ctx.engine);
  base.maxTokens = r.max_tokens ?? 16; // OpenAI's default for this endpoint
  if (r.logprobs != null) base.topLogprobs = r.logprobs;
  const id = `cmpl-${randomUUID()}`, created = nowSec(), model = ctx.engine.modelId;
  if (r.user != null) ctx.log(`${id}: user=${JSON.stringify(r.user)}`);
  const jobs = prompts.flatMap((p, pi) => Array.from({ length: n }, (_, i) => ({ prompt: p, index: pi * n + i, opts: seeded(base, i) })));
  await ctx.admit(ctrl, async () => {
    const usages: Array<Usage | null> = [];
    const sse = r.stream ? new SseWriter(res, ctrl.signal) : null;
    const choices: object[] = [];
    try {
      for (const job of jobs) {
        const firstToken = ctx.metrics.firstTokenTimer(PATH);
        let text = '', finish = 'stop', usage: Usage | null = null;
        const lps: TokenLogprob[] = [];
        for await (const ev of run(job.prompt, job.opts)) {
          if (ev.type === 'delta') {
            firstToken();
            sse?.send({ id, object: 'text_completion', created, model, choices: [{ index: job.index, text: ev.text, logprobs: r.logprobs != null ? legacy(ev.logprobs ?? [], text.length) : null, finish_reason: null }] });
            text += ev.text;
            if (!sse && ev.logprobs) lps.push(...ev.logprobs);
          } else {
            finish = ev.finishReason; usage = ev.usage;
            if (!sse && ev.logprobs) lps.push(...ev.logprobs);
          }
        }
        if (finish === 'cancelled') return;
        usages.push(usage);
        if (usage) ctx.metrics.countTokens(PATH, usage.prompt_tokens, usage.completion_tokens);
        sse?.send({ id, object: 'text_completion', created, model, choices: [{ index: job.index, text: '', logprobs: null, finish_reason: finish }] });
        choices.push({ index: job.index, text, logprobs: r.logprobs != null ? legacy(lps, 0) : null, finish_reason: finish });
      }
      // Several prompts each count their own prompt tokens.
      const total = usages.filter((u): u is Usage => !!u);
      const usage = total.length ? { ...mergeUsage(total)!, prompt_tokens: total.filter((_, k) => k % n === 0).reduce((a, u) => a + u.prompt_tokens, 0) } : null;
      if (usage) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      if (sse) {
        if (r.stream_options?.include_usage) sse.send({ id, object: 'text_completion', created, model, choices: [], usage });
      } else json(res, 200, { id, object: 'text_completion', created, model, choices, usage });
    } catch (e) {
      if (!sse) throw e;
      sse.error(e);
    }
    sse?.end();
  });
}

function seeded(base: SamplingOptions, i: number): SamplingOptions {
  const o = { ...base };
  const s = choiceSeed(base.seed, i);
  if (s === undefined) delete o.seed; else o.seed = s;
  return o;
}
