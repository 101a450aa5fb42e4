// The per-sequence sampler the engine drives: one `next(logits)` per generated token. Requests describe their
// sampler with a plain, structured-clone-safe `SamplerSpec` (it crosses into the engine's worker thread), and
// the worker builds the sampler there with `createSampler`. Everything that bends a step's choice lives here,
// behind this seam: penalties and temperature (sampling.ts), logit_bias, grammar constraints (structured
// outputs, tool calls) and logprobs capture. The engine never looks inside.
import { sample, SamplingState, type SamplingParams } from './sampling.js';

export interface SamplerSpec {
  params: SamplingParams;
  seed?: number;
}

/** What the engine knows about the model when it builds a sampler (in the worker). */
export interface SamplerContext {
  vocabSize: number;
  /** Prompt ids (the repetition penalty sees them). */
  promptIds: ArrayLike<number>;
}

export interface SequenceSampler {
  /** The next id from this step's logits ([vocab]; the buffer is reused by the next step — copy to keep). */
  next(logits: Float32Array): number;
}

export function createSampler(spec: SamplerSpec, ctx: SamplerContext): SequenceSampler {
  const state = new SamplingState({ ...(spec.seed !== undefined ? { seed: spec.seed } : {}), promptIds: ctx.promptIds });
  return { next: (logits) => sample(logits, spec.params, state) };
}
