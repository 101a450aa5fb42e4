// The language model's raw prefill and decode timings, shared by bench/run.ts and bench/llama/compare.ts so both
// measure the same way: the research API's forward with the buffers a real loop reuses (generateTokens' logits
// array, and one KV store for prefill and decode as the engine has one KV pool), so allocations and first touches
// of memory stay out of the timing.
import type { Phi4MM } from '../src/api/phi4mm.js';
import type { KVCache } from '../src/models/phi4mm/decoder.js';

export class LmTiming {
  /** The one KV store of every prefill and decode here, faulted in by the constructor's warm-up. */
  private readonly cache: KVCache;
  private readonly logitsOut: Float32Array;

  /**
   * Allocates the prefill's KV store for `prefillTokens` and touches it once with `warmupIds`: a fresh store per
   * run faulted in and zeroed its pages inside the timing (perf: clear_page_erms 4.8% of a 2-thread prefill loop).
   */
  constructor(private readonly m: Phi4MM, prefillTokens: number, warmupIds: Int32Array) {
    const lm = m.model.lm;
    this.cache = lm.newCache(prefillTokens);
    this.logitsOut = new Float32Array(lm.cfg.vocab_size);
    this.prefill(warmupIds);
  }

  /** Seconds for one prefill of `ids` from position 0 (last-position logits). */
  prefill(ids: Int32Array): number {
    this.cache.reset();
    const s = performance.now();
    this.m.model.forward(this.m.backend, ids, { cache: this.cache, logitsOut: this.logitsOut });
    return (performance.now() - s) / 1000;
  }

  /** Seconds for `steps` single-token decode steps after `prompt` (not timed), from position 0. */
  decode(prompt: ArrayLike<number>, steps: number): number {
    return this.decoder(prompt)(steps);
  }

  /**
   * A decode from position 0 after `prompt` (not timed) that runs in pieces: each call takes `steps` more steps
   * and returns their seconds (bench/llama/compare.ts measures memory bandwidth between the pieces). It reuses the
   * warm store, as a server's decode does: a fresh store per decode put the kernel's zeroing of its pages into the
   * timing (on this project's VM a first touch writes 0.3–0.5 GB/s; kvWrite took 0.4–0.8 ms of a 1-thread step
   * instead of ~0.05). Until the store is full; a prefill in between starts it over.
   */
  decoder(prompt: ArrayLike<number>): (steps: number) => number {
    const be = this.m.backend, cache = this.cache;
    cache.reset();
    this.m.model.forward(be, prompt, { cache, logitsOut: this.logitsOut });
    let pos = 0;
    return (steps) => {
      const s = performance.now();
      for (let i = 0; i < steps; i++, pos++) this.m.model.forward(be, [1000 + pos], { cache, logitsOut: this.logitsOut });
      return (performance.now() - s) / 1000;
    };
  }
}
