// What the OpenAI route handlers share: the server context they run in, request parsing into 400s, the
// sampling options every generating route builds, and SSE writing.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { ChatEngine, ContentPart, SamplingOptions } from '../api/types.js';
import { HttpError, toEnvelope } from './http.js';
import { formatIssue, unsupportedFields, type ContentPartIn } from './schema.js';
import type { ServerMetrics } from './metrics.js';

export interface OpenAIRouteOptions {
  /** Longest audio piece the model transcribes at once; longer audio is cut on silence (default 30 s). */
  transcriptionWindowSec?: number;
  /** Token budget for each transcribed piece (default 448: ample for 30 s of fast speech). */
  transcriptionMaxTokens?: number;
  /** Longest audio a transcription or translation request may hold, checked from the header before decoding
   * and again after (default 1800 s). */
  transcriptionMaxSec?: number;
}

/** What the server hands the route handlers. */
export interface RouteContext {
  engine: ChatEngine;
  opts: OpenAIRouteOptions;
  metrics: ServerMetrics;
  log: (line: string) => void;
  readJson(req: IncomingMessage): Promise<unknown>;
  maxBodyBytes: number;
  /** Media part → library content part, under the server's media policy (URL rules, size, timeout). */
  resolvePart(p: ContentPartIn, param: string, signal: AbortSignal): Promise<ContentPart>;
  /** Waits for the model (bounded queue, 429 beyond it), runs `fn`, and lets the next request in. */
  admit<T>(ctrl: AbortController, fn: () => Promise<T>): Promise<T>;
}

/** Zod result → value or a 400 naming the first bad field. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const bad = unsupportedFields(body);
  if (bad.length) throw new HttpError(400, 'invalid_request_error', `${bad.join(', ')}: not supported by this server; remove ${bad.length > 1 ? 'them' : 'it'} from the request`, bad[0]!, 'unsupported_parameter');
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const { param, message } = formatIssue(parsed.error.issues as never, body);
    throw new HttpError(400, 'invalid_request_error', message, param, 'invalid_value');
  }
  return parsed.data;
}

/** A controller aborted when the client goes away before the response is finished. */
export function requestController(res: ServerResponse): AbortController {
  const ctrl = new AbortController();
  res.on('close', () => { if (!res.writableFinished) ctrl.abort(); });
  return ctrl;
}

export interface SamplingFieldsIn {
  max_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  top_k?: number | null | undefined;
  min_p?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  repetition_penalty?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  seed?: number | null | undefined;
  logit_bias?: Record<string, number> | null | undefined;
}

/** The OpenAI sampling fields as library options. logit_bias ids are checked against the vocabulary here. */
export function toSampling(r: SamplingFieldsIn, signal: AbortSignal, engine: ChatEngine): SamplingOptions {
  const s: SamplingOptions = { signal };
  if (r.max_tokens != null) s.maxTokens = r.max_tokens;
  if (r.temperature != null) s.temperature = r.temperature;
  if (r.top_p != null) s.topP = r.top_p;
  if (r.top_k != null) s.topK = r.top_k;
  if (r.min_p != null) s.minP = r.min_p;
  if (r.frequency_penalty != null) s.frequencyPenalty = r.frequency_penalty;
  if (r.presence_penalty != null) s.presencePenalty = r.presence_penalty;
  if (r.repetition_penalty != null) s.repetitionPenalty = r.repetition_penalty;
  if (r.stop != null) s.stop = r.stop;
  if (r.seed != null) s.seed = r.seed;
  if (r.logit_bias != null && Object.keys(r.logit_bias).length) {
    const vocab = engine.vocabSize ?? Infinity;
    const bias: Record<number, number> = {};
    for (const [k, v] of Object.entries(r.logit_bias)) {
      const id = Number(k);
      if (!(id < vocab)) throw new HttpError(400, 'invalid_request_error', `logit_bias: token id ${k} is not in the vocabulary (0..${vocab - 1})`, 'logit_bias', 'invalid_value');
      bias[id] = v;
    }
    s.logitBias = bias;
  }
  return s;
}

/** Seed of choice i of n: the request's seed + i (distinct, reproducible samples); none = fresh random seeds. */
export function choiceSeed(seed: number | undefined, i: number): number | undefined {
  return seed === undefined ? undefined : seed + i;
}

export class SseWriter {
  constructor(private readonly res: ServerResponse, private readonly signal: AbortSignal) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  }
  /** `data: …` (chat/completions) or, with `event`, a typed event (Responses API). */
  send(o: unknown, event?: string): void {
    if (this.signal.aborted) return;
    this.res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(o)}\n\n`);
  }
  /** The failure in the error envelope, in-stream (the headers are gone). */
  error(e: unknown): void {
    this.send({ error: toEnvelope(e).error }, undefined);
  }
  end(done = true): void {
    if (!this.signal.aborted) this.res.end(done ? 'data: [DONE]\n\n' : undefined);
  }
}

export const nowSec = () => Math.floor(Date.now() / 1000);
