// The language model's raw prefill and decode timings, shared by bench/run.ts and bench/llama/compare.ts so both
// measure the same way: the research API's forward with the buffers a real loop reuses (generateTokens' logits
// array, the engine's one KV pool), so allocations stay out of the timing.
import type { Phi4MM } from '../src/api/phi4mm.js';
import type { KVCache } from '../src/models/phi4mm/decoder.js';

export class LmTiming {
  private readonly prefillCache: KVCache;
  private readonly logitsOut: Float32Array;

  /**
   * Allocates the prefill's KV store for `prefillTokens` and touches it once with `warmupIds`: a fresh store per
   * run faulted in and zeroed its pages inside the timing (perf: clear_page_erms 4.8% of a 2-thread prefill loop).
   */
  constructor(private readonly m: Phi4MM, prefillTokens: number, warmupIds: Int32Array) {
    const lm = m.model.lm;
    this.prefillCache = lm.newCache(prefillTokens);
    this.logitsOut = new Float32Array(lm.cfg.vocab_size);
    this.prefill(warmupIds);
  }

  /** Seconds for one prefill of `ids` from position 0 (last-position logits). */
  prefill(ids: Int32Array): number {
    this.prefillCache.reset();
    const s = performance.now();
    this.m.model.forward(this.m.backend, ids, { cache: this.prefillCache, logitsOut: this.logitsOut });
    return (performance.now() - s) / 1000;
  }

  /** Seconds for `steps` single-token decode steps after `prompt` (not timed), on a fresh cache. */
  decode(prompt: ArrayLike<number>, steps: number): number {
    return this.decoder(prompt)(steps);
  }

  /**
   * A decode on a fresh cache after `prompt` (not timed) that runs in pieces: each call takes `steps` more steps
   * and returns their seconds (bench/llama/compare.ts measures memory bandwidth between the pieces).
   */
  decoder(prompt: ArrayLike<number>): (steps: number) => number {
    const be = this.m.backend, cache = this.m.model.lm.newCache();
    this.m.model.forward(be, prompt, { cache, logitsOut: this.logitsOut });
    let pos = 0;
    return (steps) => {
      const s = performance.now();
      for (let i = 0; i < steps; i++, pos++) this.m.model.forward(be, [1000 + pos], { cache, logitsOut: this.logitsOut });
      return (performance.now() - s) / 1000;
    };
  }
}
