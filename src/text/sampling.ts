// Next-token selection from a logits row. Pure apart from the SamplingState passed in (RNG + token history).
//
// Order (as transformers' generate): mask → repetition penalty (HF, over prompt + generated) → frequency/presence
// penalties (OpenAI, over generated) → temperature (0 = greedy argmax) → top-k → top-p → min-p → draw.

import { Rng } from './rng.js';
import { loadAddon } from '../tensor/native_addon.js';

export interface SamplingParams {
  /** ≥ 0; 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP?: number;
  /** Drop tokens with p < minP · p_max; in [0, 1], 0 = off. */
  minP?: number;
  /** HF repetition penalty (> 0, 1 = off): positive logits of seen tokens are divided by it, negative multiplied. */
  repetitionPenalty?: number;
  /** OpenAI frequency penalty in [-2, 2]: logit −= penalty · count in the generated tokens. */
  frequencyPenalty?: number;
  /** OpenAI presence penalty in [-2, 2]: logit −= penalty if the token was generated before. */
  presencePenalty?: number;
  /** Ids ≥ vocabLimit are never chosen (the model's padded rows past the tokenizer's tokens). */
  vocabLimit?: number;
  /** Ids that are never chosen. */
  suppressIds?: readonly number[];
}

export const OPENAI_PENALTY_RANGE = 2; // |frequency_penalty|, |presence_penalty| ≤ 2 (OpenAI API)

/** Throws a descriptive Error for out-of-range parameters. */
export function validateSamplingParams(p: SamplingParams): void {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`invalid sampling parameter: ${what}`);
  };
  const finite = (v: number | undefined) => v === undefined || Number.isFinite(v);
  check(finite(p.temperature) && (p.temperature ?? 1) >= 0, `temperature must be ≥ 0, got ${p.temperature}`);
  check(p.topK === undefined || (Number.isInteger(p.topK) && p.topK >= 0), `top_k must be an integer ≥ 0 (0 = off), got ${p.topK}`);
  check(finite(p.topP) && (p.topP ?? 1) > 0 && (p.topP ?? 1) <= 1, `top_p must be in (0, 1], got ${p.topP}`);
  check(finite(p.minP) && (p.minP ?? 0) >= 0 && (p.minP ?? 0) <= 1, `min_p must be in [0, 1], got ${p.minP}`);
  check(finite(p.repetitionPenalty) && (p.repetitionPenalty ?? 1) > 0, `repetition_penalty must be > 0, got ${p.repetitionPenalty}`);
  for (const [name, v] of [['frequency_penalty', p.frequencyPenalty], ['presence_penalty', p.presencePenalty]] as const) {
    check(finite(v) && Math.abs(v ?? 0) <= OPENAI_PENALTY_RANGE, `${name} must be in [-2, 2], got ${v}`);
  }
  check(p.vocabLimit === undefined || (Number.isInteger(p.vocabLimit) && p.vocabLimit > 0), `vocabLimit must be a positive integer, got ${p.vocabLimit}`);
  check(p.suppressIds === undefined || p.suppressIds.every((id) => Number.isInteger(id) && id >= 0), 'suppressIds must be non-negative integers');
}

/** Per-request sampling state: the RNG and the token history the penalties look at. */
export class SamplingState {
  readonly rng: Rng;
  /** Prompt and generated ids (repetition penalty). */
  private readonly seen = new Set<number>();
  /** Generated ids → count (frequency/presence penalties). */
  private readonly counts = new Map<number, number>();

  constructor(opts: { seed?: number; promptIds?: ArrayLike<number> } = {}) {
    this.rng = new Rng(opts.seed);
    const prompt = opts.promptIds ?? [];
    for (let i = 0; i < prompt.length; i++) this.seen.add(prompt[i]!);
  }

  /** Records a generated token. {@link sample} calls this itself; call it for tokens chosen another way. */
  accept(id: number): void {
    this.seen.add(id);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  private scores: Float32Array | null = null;

  /** The scratch buffer penalizedScores writes into, reused across steps. */
  scoresBuffer(n: number): Float32Array {
    if (this.scores?.length !== n) this.scores = new Float32Array(n);
    return this.scores;
  }

  get seenIds(): ReadonlySet<number> {
    return this.seen;
  }

  get generatedCounts(): ReadonlyMap<number, number> {
    return this.counts;
  }
}

/** Chooses the next token from `logits` ([vocab], not modified) and records it in `state`. */
export function sample(logits: Float32Array, params: SamplingParams, state: SamplingState): number {
  validateSamplingParams(params);
  const scores = penalizedScores(logits, params, state);
  const temperature = params.temperature ?? 1;
  const id = temperature === 0 ? argmax(scores) : draw(scores, temperature, params, state.rng);
  state.accept(id);
  return id;
}

/** Index of the largest score; the first on ties (torch.argmax). Scores of −∞ and NaN are masked. */
export function argmax(scores: ArrayLike<number>): number {
  const best = scores instanceof Float32Array ? argmaxKernel()(scores) : argmaxTs(scores);
  if (best < 0) throw new Error('every token is masked (no finite logit to choose from)');
  return best;
}

/** The first index of the largest score above −∞, or −1; the addon's argmaxScores returns the same. */
export function argmaxTs(scores: ArrayLike<number>): number {
  let best = -1, bestVal = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > bestVal) { bestVal = scores[i]!; best = i; }
  return best;
}

/** dst = src with NaN replaced by −∞; the addon's copyMaskNaN writes the same. */
export function copyMaskNaNTs(src: Float32Array, dst: Float32Array): void {
  dst.set(src);
  for (let i = 0; i < src.length; i++) if (dst[i] !== dst[i]) dst[i] = -Infinity;
}

/**
 * `logits` with masks and penalties applied, written into the state's one reused buffer (valid until the next
 * call with this state; `logits` is not modified). NaN logits are treated as masked.
 */
export function penalizedScores(logits: Float32Array, p: SamplingParams, state: SamplingState): Float32Array {
  const s = state.scoresBuffer(logits.length);
  copyMaskNaNKernel()(logits, s); // NaN → −∞; Float32Array.from(logits, mapFn) cost ~20 ms per 200k-token step
  if (p.vocabLimit !== undefined && p.vocabLimit < s.length) s.fill(-Infinity, p.vocabLimit);
  for (const id of p.suppressIds ?? []) if (id < s.length) s[id] = -Infinity;
  const rep = p.repetitionPenalty ?? 1;
  if (rep !== 1) {
    for (const id of state.seenIds) if (id < s.length) s[id] = s[id]! > 0 ? s[id]! / rep : s[id]! * rep;
  }
  const freq = p.frequencyPenalty ?? 0, pres = p.presencePenalty ?? 0;
  if (freq !== 0 || pres !== 0) {
    for (const [id, n] of state.generatedCounts) if (id < s.length) s[id] = s[id]! - freq * n - pres;
  }
  return s;
}

/** Temperature, top-k, top-p, min-p, then one draw from the renormalized distribution. */
export function draw(scores: Float32Array, temperature: number, p: SamplingParams, rng: Rng): number {
  if (!(temperature > 0)) throw new RangeError(`draw needs temperature > 0, got ${temperature}`);
  const id = drawKernel()(scores, temperature, p.topK ?? 0, p.topP ?? 1, p.minP ?? 0, rng.next());
  if (id < 0) throw new Error('every token is masked (no finite logit to choose from)');
  return id;
}

/**
 * The id draw() picks with random number r ∈ [0, 1), or −1 when no score is finite. drawTs is the reference; the
 * addon's sampleDraw (native/src/sampling_napi.cc) returns the same id, since its candidates, probabilities,
 * top-p ranking and walk are computed with the same operations in the same order, and replaces it when it loads.
 */
export type DrawKernel = (scores: Float32Array, temperature: number, topK: number, topP: number, minP: number, r: number) => number;

export const drawTs: DrawKernel = (scores, temperature, topK, topP, minP, r) => {
  // The walk of samplingDistribution's { ids, probs } without building them (200k-entry arrays per token took
  // most of the ~10 ms a draw cost): the same kept ids in id order, the same prob[j] / total subtracted in turn.
  const d = distribution(scores, temperature, { topK, topP, minP });
  if (!d) return -1;
  const { cand, prob, keep, total } = d;
  let last = -1;
  for (let j = 0; j < prob.length; j++) {
    if (keep && !keep[j]) continue;
    last = cand ? cand[j]! : j;
    r -= prob[j]! / total;
    if (r < 0) return last;
  }
  return last; // rounding left r ≥ 0 after the last token
};

/** The tokens that survive temperature, top-k, top-p and min-p, in id order, with probabilities summing to 1. */
export function samplingDistribution(scores: Float32Array, temperature: number, p: SamplingParams): { ids: number[]; probs: Float64Array } {
  const d = distribution(scores, temperature, p);
  if (!d) throw new Error('every token is masked (no finite logit to choose from)');
  const { cand, prob, keep, total } = d;
  let count = 0;
  for (let j = 0; j < prob.length; j++) if (!keep || keep[j]) count++;
  // Sized up front: pushing 200k numbers one at a time costs far more than the math above.
  const ids = new Array<number>(count), probs = new Float64Array(count);
  for (let j = 0, q = 0; j < prob.length; j++) if (!keep || keep[j]) { ids[q] = cand ? cand[j]! : j; probs[q++] = prob[j]! / total; }
  return { ids, probs };
}

/**
 * prob[j] = exp((scores[cand ? cand[j] : j] − max) / temperature) / Σ for j < m, Σ summed in order j = 0, 1, …;
 * returns Σ. The f64 reference; the addon's softmaxShifted computes the same bits (V8's Math.exp is fdlibm's,
 * ported in native/src/exp_fdlibm.h, 4 lanes at a time with AVX2) in a third of the time or less, and
 * replaces it when it loads.
 */
export type SoftmaxKernel = (scores: Float32Array, cand: Int32Array | null, m: number, max: number, temperature: number, prob: Float64Array) => number;

export const softmaxShiftedTs: SoftmaxKernel = (scores, cand, m, max, temperature, prob) => {
  let sum = 0;
  if (cand) for (let j = 0; j < m; j++) sum += prob[j] = Math.exp((scores[cand[j]!]! - max) / temperature);
  else for (let j = 0; j < m; j++) sum += prob[j] = Math.exp((scores[j]! - max) / temperature);
  for (let j = 0; j < m; j++) prob[j]! /= sum;
  return sum;
};

/** What `pick` takes from the addon where it loads and has it (an older build may not), else `fallback`. */
function fromAddon<K>(pick: (a: ReturnType<typeof loadAddon>) => K | undefined, fallback: K): K {
  try {
    return pick(loadAddon()) ?? fallback;
  } catch {
    return fallback;
  }
}

/** Σ exp(scores[i] − max) over i < n with scores[i] > −∞ (NaN skipped), summed in order of i: the logprobs' normalizer. */
export type SumExpKernel = (scores: Float32Array, n: number, max: number) => number;

export const sumExpShiftedTs: SumExpKernel = (scores, n, max) => {
  let sum = 0;
  for (let i = 0; i < n; i++) { const v = scores[i]!; if (v > -Infinity) sum += Math.exp(v - max); }
  return sum;
};

// The kernels in use (null: not chosen yet). The addon's give the same results as the TypeScript ones.
let kernel: SoftmaxKernel | null = null;
let drawWith: DrawKernel | null = null;
let sumExpWith: SumExpKernel | null = null;

/** The logprobs' normalizer, with the addon's kernel where it loads (the same sum either way). */
export function sumExpShifted(scores: Float32Array, n: number, max: number): number {
  return (sumExpWith ??= fromAddon((a) => (typeof a.sumExpShifted === 'function' ? (sc, m, mx) => a.sumExpShifted(sc, m, mx) : undefined), sumExpShiftedTs))(scores, n, max);
}

function softmaxKernel(): SoftmaxKernel {
  return (kernel ??= fromAddon((a) => (typeof a.softmaxShifted === 'function' ? (sc, c, m, mx, t, p) => a.softmaxShifted(sc, c, m, mx, t, p) : undefined), softmaxShiftedTs));
}

let argmaxWith: ((scores: Float32Array) => number) | null = null;
let copyMaskWith: ((src: Float32Array, dst: Float32Array) => void) | null = null;

function argmaxKernel(): (scores: Float32Array) => number {
  return (argmaxWith ??= fromAddon((a) => (typeof a.argmaxScores === 'function' ? (sc: Float32Array) => a.argmaxScores(sc) : undefined), argmaxTs));
}

function copyMaskNaNKernel(): (src: Float32Array, dst: Float32Array) => void {
  return (copyMaskWith ??= fromAddon((a) => (typeof a.copyMaskNaN === 'function' ? (x: Float32Array, y: Float32Array) => a.copyMaskNaN(x, y) : undefined), copyMaskNaNTs));
}

function drawKernel(): DrawKernel {
  return (drawWith ??= fromAddon((a) => (typeof a.sampleDraw === 'function' ? (sc, t, k, p, mp, r) => a.sampleDraw(sc, t, k, p, mp, r) : undefined), drawTs));
}

/** Chooses the softmax kernel (null: back to the default choice); for tests and benchmarks. */
export function setSoftmaxKernel(k: SoftmaxKernel | null): void {
  kernel = k;
}

/** Chooses the draw kernel (null: back to the default choice); for tests and benchmarks. */
export function setDrawKernel(k: DrawKernel | null): void {
  drawWith = k;
}

/** distribution()'s probabilities, reused: a fresh 1.6 MB array per token kept the garbage collector busy. */
let probScratch = new Float64Array(0);

/**
 * Candidates (null: every id, in order), their probabilities after temperature (normalized over the
 * candidates; valid until the next call), which of them top-p / min-p keep (null: all) and the kept sum; null when
 * no score is finite.
 */
function distribution(scores: Float32Array, temperature: number, p: SamplingParams): { cand: Int32Array | null; prob: Float64Array; keep: Uint8Array | null; total: number } | null {
  if (!(temperature > 0)) throw new RangeError(`samplingDistribution needs temperature > 0, got ${temperature}`);
  // The largest finite score is also the largest candidate's: top-k keeps the largest.
  let n = 0, max = -Infinity;
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!;
    if (v > -Infinity) { n++; if (v > max) max = v; }
  }
  if (n === 0) return null;
  let cand: Int32Array | null = null;
  if (n < scores.length) {
    cand = new Int32Array(n);
    for (let i = 0, j = 0; i < scores.length; i++) if (scores[i]! > -Infinity) cand[j++] = i;
  }
  const k = p.topK ?? 0;
  if (k > 0 && k < n) {
    // Keep ties with the k-th value, as HF's TopKLogitsWarper (removes only scores < k-th largest).
    const v = new Float32Array(n);
    for (let j = 0; j < n; j++) v[j] = scores[cand ? cand[j]! : j]!;
    const kth = kthLargest(v, k);
    let kept = 0;
    for (let j = 0; j < n; j++) if (scores[cand ? cand[j]! : j]! >= kth) kept++;
    const top = new Int32Array(kept);
    for (let j = 0, q = 0; j < n; j++) { const id = cand ? cand[j]! : j; if (scores[id]! >= kth) top[q++] = id; }
    cand = top;
  }
  const m = cand ? cand.length : n;
  if (probScratch.length < m) probScratch = new Float64Array(m);
  const prob = probScratch.subarray(0, m);
  softmaxKernel()(scores, cand, m, max, temperature, prob);

  const topP = p.topP ?? 1, minP = p.minP ?? 0;
  let keep: Uint8Array | null = null;
  if (topP < 1 || minP > 0) {
    keep = new Uint8Array(m).fill(1);
    if (topP < 1) applyTopP(prob, keep, topP);
    if (minP > 0) {
      let pMax = 0;
      for (let j = 0; j < m; j++) if (keep[j]) pMax = Math.max(pMax, prob[j]!);
      for (let j = 0; j < m; j++) if (prob[j]! < minP * pMax) keep[j] = 0;
    }
  }
  let total = 0;
  for (let j = 0; j < m; j++) if (!keep || keep[j]) total += prob[j]!;
  return { cand, prob, keep, total };
}

/** Below this many values a selection range is finished by sorting it. */
const SELECT_SORT_BELOW = 32;

/**
 * The k-th largest of `v` (1 ≤ k ≤ v.length; `v` is reordered): quickselect with a median-of-three pivot, O(n)
 * on average instead of sorting the whole vocabulary every token. Equal to sort()[n − k].
 */
export function kthLargest(v: Float32Array, k: number): number {
  if (!(Number.isInteger(k) && k >= 1 && k <= v.length)) throw new RangeError(`kthLargest: k = ${k} outside [1, ${v.length}]`);
  const target = v.length - k; // index in ascending order
  let lo = 0, hi = v.length - 1;
  while (hi - lo >= SELECT_SORT_BELOW) {
    const mid = (lo + hi) >>> 1;
    const a = v[lo]!, b = v[mid]!, c = v[hi]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    // Three-way partition: [lo, lt) < pivot, [lt, gt] = pivot, (gt, hi] > pivot (ties collapse at once).
    let lt = lo, gt = hi, i = lo;
    while (i <= gt) {
      const x = v[i]!;
      if (x < pivot) { v[i] = v[lt]!; v[lt++] = x; i++; }
      else if (x > pivot) { v[i] = v[gt]!; v[gt--] = x; }
      else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
  return v.subarray(lo, hi + 1).sort()[target - lo]!;
}

/**
 * HF TopPLogitsWarper (drop, in ascending order of probability, while the cumulative mass is ≤ 1 − topP; the most
 * likely token always stays), in the form that needs only the kept head ranked: a token stays while the mass of
 * the tokens ranked above it (higher p, then lower id) is < topP. The two agree in exact arithmetic; this one is
 * also llama.cpp's rule. Tokens with p ≤ (1 − topP)/n are dropped unranked: even all of them together hold at most
 * 1 − topP, so the mass above each is ≥ topP. The addon ranks only the head, in bands; the sums are the same.
 */
function applyTopP(prob: Float64Array, keep: Uint8Array, topP: number): void {
  const cutoff = (1 - topP) / prob.length;
  const rest: number[] = [];
  for (let j = 0; j < prob.length; j++) {
    if (!keep[j]) continue;
    if (prob[j]! <= cutoff) keep[j] = 0;
    else rest.push(j);
  }
  rest.sort((x, y) => prob[y]! - prob[x]! || x - y);
  let above = 0, q = 0;
  for (; q < rest.length && above < topP; q++) above += prob[rest[q]!]!;
  for (; q < rest.length; q++) keep[rest[q]!] = 0;
}
