// Token-by-token generation over the decoder, with the LongRoPE switch of transformers' generate().
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Backend } from '../../tensor/backend.js';
import type { Phi4MiniDecoder } from './decoder.js';
import type { InputMode } from './lora.js';
import type { KvDType } from '../../tensor/device.js';

/**
 * KV cache room reserved up front beyond the prompt, in tokens (it doubles past that): a large maxNewTokens must
 * not reserve its whole budget (Phi-4-mini: 256 KiB of f32 keys+values per token).
 */
const CACHE_HEADROOM_TOKENS = 1024;

export interface GenerateTokensOptions {
  mode: InputMode;
  /** [T, hidden] for the prompt (media rows merged in); the token lookup when absent. */
  inputsEmbeds?: Float32Array;
  maxNewTokens: number;
  /**
   * Picks the next id from the last position's logits ([vocab]; a buffer reused by the next step, copy it to
   * keep it); `generated` = ids produced so far, prompt excluded.
   */
  sample: (logits: Float32Array, generated: readonly number[]) => number;
  /** Generation ends after yielding one of these. */
  stopIds?: Iterable<number>;
  signal?: AbortSignal;
  /** Called once the prompt has been run (time to first token = prefill). */
  onPrefill?: (promptTokens: number) => void;
  /** KV storage (default f32, the golden-exact choice; the engine's pool uses f16). */
  kvDtype?: KvDType;
}

/**
 * Yields the generated ids one by one (a stop id is yielded, then it ends; it also ends at maxNewTokens, at
 * max_position_embeddings, or when `signal` aborts). Async: between tokens it yields to the event loop so a
 * server can flush each token and notice a disconnect.
 *
 * LongRoPE like HF generate(): while the sequence fits original_max_position_embeddings the short factors are
 * used; the first time it grows past it, the cache is dropped once and the whole sequence (prompt, with the
 * same inputsEmbeds, + generated so far) is re-run with the long factors, which then stay.
 */
export async function* generateTokens(be: Backend, lm: Phi4MiniDecoder, promptIds: ArrayLike<number>, o: GenerateTokensOptions): AsyncGenerator<number> {
  const cfg = lm.cfg, hidden = cfg.hidden_size, n = promptIds.length;
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) throw new Error(`maxNewTokens must be a non-negative integer, got ${o.maxNewTokens}`);
  if (n === 0) throw new Error('generate: the prompt is empty');
  if (n >= cfg.max_position_embeddings) throw new Error(`generate: the prompt has ${n} tokens; the model takes at most ${cfg.max_position_embeddings - 1} before generating`);
  const stop = new Set(o.stopIds ?? []);
  const budget = Math.min(o.maxNewTokens, cfg.max_position_embeddings - n);
  const cache = lm.newCache(n + Math.min(budget, CACHE_HEADROOM_TOKENS), o.kvDtype);
  const logits = new Float32Array(cfg.vocab_size); // reused every step
  const base = { mode: o.mode, cache, logitsOut: logits };
  const generated: number[] = [];
  lm.forward(be, promptIds, { ...base, ...(o.inputsEmbeds ? { inputsEmbeds: o.inputsEmbeds } : {}) });
  o.onPrefill?.(n);
  const next = new Int32Array(1);
  while (generated.length < budget) {
    if (o.signal?.aborted) return;
    const id = o.sample(logits, generated);
    generated.push(id);
    yield id;
    if (stop.has(id) || generated.length >= budget) return;
    await yieldToEventLoop();
    if (o.signal?.aborted) return;
    const total = n + generated.length;
    if (!cache.long && lm.rope.useLong(total)) {
      cache.reset(); // the cached keys were rotated with the short factors
      const all = new Int32Array(total);
      all.set(Array.from(promptIds));
      all.set(generated, n);
      let embeds: Float32Array | undefined;
      if (o.inputsEmbeds) {
        embeds = new Float32Array(total * hidden);
        embeds.set(o.inputsEmbeds);
        embeds.set(lm.embed(generated), n * hidden);
      }
      lm.forward(be, all, { ...base, ...(embeds ? { inputsEmbeds: embeds } : {}) });
    } else {
      next[0] = id;
      lm.forward(be, next, base);
    }
  }
}
