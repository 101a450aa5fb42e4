// The per-sequence sampler the engine drives: one `step(logits)` (or `next`) per generated token. Requests describe
// their sampler with a plain, structured-clone-safe `SamplerSpec` (it crosses into the engine's worker thread), and
// the worker builds the sampler there with `createSampler`. Everything that bends a step's choice lives here,
// behind this seam: penalties and temperature (sampling.ts), logit_bias, grammar constraints (structured
// outputs, tool calls) and logprobs capture. The engine never looks inside.
//
// Step order: raw logits → (logprobs are read here: log-softmax of the raw row, as OpenAI reports them)
// → masks and penalties (sampling.ts) → logit_bias → grammar mask → greedy or seeded draw.
import type { Grammar } from '../constrained/grammar.js';
import { argmax, draw, penalizedScores, SamplingState, sumExpShifted, validateSamplingParams, type SamplingParams } from './sampling.js';

/** OpenAI's limits: |logit_bias| ≤ 100, top_logprobs ≤ 20. */
export const LOGIT_BIAS_LIMIT = 100;
export const MAX_TOP_LOGPROBS = 20;

/**
 * What a grammar constraint enforces: a compiled `Grammar` (src/constrained: response_format JSON / JSON Schema,
 * forced tool calls). A plain object, so it crosses into the worker; the worker turns it into a mask.
 */
export type ConstraintSpec = Grammar;

export interface SamplerSpec {
  params: SamplingParams;
  seed?: number;
  /** [token id, bias in [-100, 100]] pairs, added to the (penalized) logits before the draw. */
  logitBias?: Array<[number, number]>;
  /** Capture the chosen token's logprob and this many alternatives (0..20). Omitted = no capture. */
  topLogprobs?: number;
  constraint?: ConstraintSpec;
}

/** A grammar over the token stream: masks what may come next and follows what was chosen. */
export interface LogitsConstraint {
  /** Sets the scores of ids that may not come next to -Infinity (end-of-sequence ids included). */
  mask(scores: Float32Array): void;
  /** Advances past the chosen id. */
  accept(id: number): void;
}

/** What the engine knows about the model when it builds a sampler (in the worker). */
export interface SamplerContext {
  vocabSize: number;
  /** Prompt ids (the repetition penalty sees them). */
  promptIds: ArrayLike<number>;
  /** Builds the grammar for a constraint spec; absent = constrained decoding unavailable (specs with one are refused). */
  constraints?: (spec: ConstraintSpec) => LogitsConstraint;
}

export interface TopLogprob {
  id: number;
  logprob: number;
}

export interface SampleStep {
  id: number;
  /** Present when the spec asked for logprobs: log-softmax of the raw logits at `id`. */
  logprob?: number;
  /** The `topLogprobs` most likely ids under the raw logits, most likely first. */
  top?: TopLogprob[];
}

export interface SequenceSampler {
  /** The next id and its logprob info, from this step's logits ([vocab]; the buffer is reused by the next step). */
  step(logits: Float32Array): SampleStep;
  /** The next id only. */
  next(logits: Float32Array): number;
}

/** Throws a RangeError naming what is wrong with a spec's bias / logprobs / params. */
export function validateSamplerSpec(spec: SamplerSpec, vocabSize: number): void {
  validateSamplingParams(spec.params);
  for (const [id, b] of spec.logitBias ?? []) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) throw new RangeError(`logit_bias: token id ${id} is not in the vocabulary (0..${vocabSize - 1})`);
    if (!(Number.isFinite(b) && Math.abs(b) <= LOGIT_BIAS_LIMIT)) throw new RangeError(`logit_bias: bias for token ${id} must be in [-100, 100], got ${b}`);
  }
  const k = spec.topLogprobs;
  if (k !== undefined && !(Number.isInteger(k) && k >= 0 && k <= MAX_TOP_LOGPROBS)) throw new RangeError(`top_logprobs must be an integer in [0, 20], got ${k}`);
}

export function createSampler(spec: SamplerSpec, ctx: SamplerContext): SequenceSampler {
  validateSamplerSpec(spec, ctx.vocabSize);
  const state = new SamplingState({ ...(spec.seed !== undefined ? { seed: spec.seed } : {}), promptIds: ctx.promptIds });
  let constraint: LogitsConstraint | null = null;
  if (spec.constraint) {
    if (!ctx.constraints) throw new RangeError(`constrained decoding (${spec.constraint.label}) is not available in this build`);
    constraint = ctx.constraints(spec.constraint);
  }
  const bias = spec.logitBias ?? [];
  const temperature = spec.params.temperature ?? 1;
  const limit = Math.min(spec.params.vocabLimit ?? ctx.vocabSize, ctx.vocabSize);
  const step = (logits: Float32Array): SampleStep => {
    const scores = penalizedScores(logits, spec.params, state);
    for (const [id, b] of bias) if (id < scores.length) scores[id] = scores[id]! + b;
    constraint?.mask(scores);
    const id = temperature === 0 ? argmax(scores) : draw(scores, temperature, spec.params, state.rng);
    state.accept(id);
    constraint?.accept(id);
    if (spec.topLogprobs === undefined) return { id };
    return { id, ...rawLogprobs(logits, id, spec.topLogprobs, Math.min(limit, logits.length)) };
  };
  return { step, next: (logits) => step(logits).id };
}

/** log-softmax of `logits[0..limit)` at `id`, and the `k` largest entries (ties: lower id first). NaN counts as -Infinity. */
export function rawLogprobs(logits: Float32Array, id: number, k: number, limit = logits.length): { logprob: number; top: TopLogprob[] } {
  let max = -Infinity;
  for (let i = 0; i < limit; i++) if (logits[i]! > max) max = logits[i]!;
  const lse = max + Math.log(sumExpShifted(logits, limit, max));
  const lp = (i: number) => { const v = logits[i]!; return Number.isNaN(v) ? -Infinity : v - lse; };
  // k ≤ 20: keep a small sorted buffer instead of sorting the whole row.
  const ids: number[] = [], vals: number[] = [];
  if (k > 0) {
    for (let i = 0; i < limit; i++) {
      const v = logits[i]!;
      if (!(v > -Infinity)) continue;
      if (ids.length === k && v <= vals[k - 1]!) continue;
      let j = ids.length < k ? ids.length : k - 1;
      while (j > 0 && vals[j - 1]! < v) j--;
      ids.splice(j, 0, i); vals.splice(j, 0, v);
      if (ids.length > k) { ids.pop(); vals.pop(); }
    }
  }
  return { logprob: id < limit ? lp(id) : -Infinity, top: ids.map((t) => ({ id: t, logprob: lp(t) })) };
}
