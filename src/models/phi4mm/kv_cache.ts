// The research API's cache: one sequence in a private paged store (f32 by default, so the golden tolerances
// hold), on top of forwardBatch. The store is allocated by the backend that first runs it; when it must grow
// (or another backend runs it) a larger store is filled again by replaying the cached rows, which gives the
// same K/V bit for bit because every op is batch invariant.
import type { Backend } from '../../tensor/backend.js';
import type { DeviceOps, KvDType, KvStore } from '../../tensor/device.js';
import type { Phi4MiniDecoder } from './decoder.js';
import type { BatchSeq } from './decoder_batch.js';
import type { InputMode } from './multimodal.js';

/** Tokens per block of the private store. */
const CACHE_BLOCK_TOKENS = 16;
/** First allocation of a cache without an explicit capacity, in tokens (then it doubles as needed). */
const DEFAULT_CACHE_TOKENS = 256;

/** Rows run with one mode and regime, kept to refill a grown store. */
interface Chunk {
  ids: number[];
  embeds: Float32Array[] | null; // [rows, hidden] pieces (the caller's arrays, not copied)
  mode: InputMode;
  long: boolean;
}

export class KVCache {
  /** Tokens cached (the position of the next token). */
  length = 0;
  /** Whether the last forward used the LongRoPE long factors (the cached keys then are rotated with them). */
  long = false;
  private cap: number;
  private store: KvStore | null = null;
  private dev: DeviceOps | null = null;
  private table = new Int32Array(0);
  private log: Chunk[] = [];

  constructor(readonly layers: number, readonly rowSize: number, capacity = DEFAULT_CACHE_TOKENS, readonly dtype: KvDType = 'f32') {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`KV cache capacity must be a positive integer, got ${capacity}`);
    this.cap = roundUp(capacity);
  }

  get capacity(): number {
    return this.cap;
  }

  /** Room for `total` tokens (doubling); a store in use is rebuilt on the next forward. */
  reserve(total: number): void {
    if (total <= this.cap) return;
    this.cap = roundUp(Math.max(total, 2 * this.cap));
    this.store = null;
  }

  /** Forget the cached tokens (keeps the memory). */
  reset(): void {
    this.length = 0;
    this.long = false;
    this.log = [];
  }

  /** The store and block table for `t` more tokens on `be`, refilled by replay when (re)allocated. */
  prepare(lm: Phi4MiniDecoder, be: Backend, t: number): { kv: KvStore; blockTable: Int32Array } {
    this.reserve(this.length + t);
    if (!this.store || this.dev !== be.device) {
      const blocks = this.cap / CACHE_BLOCK_TOKENS;
      this.store = be.device.allocKv(lm.kvSpec(blocks, CACHE_BLOCK_TOKENS, this.dtype));
      this.dev = be.device;
      this.table = Int32Array.from({ length: blocks }, (_, i) => i);
      let start = 0;
      for (const c of this.log) {
        const ids = Int32Array.from(c.ids);
        const seq: BatchSeq = { ids, mode: c.mode, long: c.long, start, blockTable: this.table, logits: false };
        if (c.embeds) seq.embeds = concat(c.embeds, ids.length * lm.cfg.hidden_size);
        lm.forwardBatch(be, this.store, [seq]);
        start += ids.length;
      }
    }
    return { kv: this.store, blockTable: this.table };
  }

  /** Notes rows just run (after a successful forward). */
  record(ids: Int32Array, embeds: Float32Array | undefined, mode: InputMode, long: boolean): void {
    const last = this.log[this.log.length - 1];
    if (last && last.mode === mode && last.long === long && !last.embeds === !embeds) {
      for (const id of ids) last.ids.push(id);
      if (embeds) last.embeds!.push(embeds);
    } else {
      this.log.push({ ids: Array.from(ids), embeds: embeds ? [embeds] : null, mode, long });
    }
    this.length += ids.length;
    this.long = long;
  }
}

function roundUp(tokens: number): number {
  return Math.ceil(tokens / CACHE_BLOCK_TOKENS) * CACHE_BLOCK_TOKENS;
}

function concat(parts: Float32Array[], n: number): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export interface DecoderForwardOptions {
  /** Input mode → LoRA adapter (language: none; vision, vision_speech: vision; speech: speech). Default 'language'. */
  mode?: InputMode;
  /** [T, hidden]: replaces the token embedding lookup (the multimodal merge passes this). */
  inputsEmbeds?: Float32Array;
  /** Continue from (and extend) this cache; without one the forward starts at position 0 with a fresh cache. */
  cache?: KVCache;
  /** Which positions get logits (default 'last'); the 200064-wide LM head is the expensive part. */
  logits?: 'last' | 'all' | 'none';
  /** For logits 'last': write them here ([vocab], reused by decode loops) instead of a new array. */
  logitsOut?: Float32Array;
  outputHiddenStates?: boolean;
}

export interface DecoderOutput {
  /** [vocab] ('last'), [T, vocab] ('all') or empty ('none'). */
  logits: Float32Array;
  /** Final-norm output [T, hidden]. */
  lastHiddenState: Float32Array;
  /** HF convention, num_hidden_layers + 1 entries [T, hidden]: [0] = embeddings, [i] = output of layer i-1, last = final norm output. */
  hiddenStates?: Float32Array[];
}

/** Phi4MiniDecoder.forward: one sequence through forwardBatch with a KVCache. */
export function forwardWithCache(lm: Phi4MiniDecoder, be: Backend, inputIds: ArrayLike<number>, opts: DecoderForwardOptions): DecoderOutput {
  const t = inputIds.length, hd = lm.cfg.hidden_size, dev = be.device;
  if (t === 0) throw new Error('forward: no tokens');
  const cache = opts.cache ?? lm.newCache(t);
  if (cache.rowSize !== lm.cfg.num_key_value_heads * lm.headDim || cache.layers !== lm.layers.length) throw new Error('forward: the cache was made for another model (use decoder.newCache())');
  if (opts.inputsEmbeds && opts.inputsEmbeds.length !== t * hd) throw new Error(`forward: inputsEmbeds has ${opts.inputsEmbeds.length} values, expected ${t} tokens x ${hd}`);
  const ids = Int32Array.from(inputIds);
  for (let i = 0; i < t; i++) {
    if (!Number.isInteger(inputIds[i]) || ids[i]! < 0 || ids[i]! >= lm.cfg.vocab_size) throw new Error(`token id ${inputIds[i]} at ${i} is outside the vocabulary [0, ${lm.cfg.vocab_size})`);
  }
  const mode = opts.mode ?? 'language', which = opts.logits ?? 'last';
  const long = lm.rope.useLong(cache.length + t);
  const { kv, blockTable } = cache.prepare(lm, be, t);
  const hiddenStates: Float32Array[] | undefined = opts.outputHiddenStates ? [] : undefined;
  let last: Float32Array | null = null;
  const seq: BatchSeq = { ids, mode, long, start: cache.length, blockTable, logits: which === 'last' };
  if (opts.inputsEmbeds) seq.embeds = opts.inputsEmbeds;
  const logits = lm.forwardBatch(be, kv, [seq], {
    ...(hiddenStates ? { hidden: (_i: number, x, n: number) => { hiddenStates.push(dev.download(x, 0, n * hd)); } } : {}),
    normed: (x, n) => { last = dev.download(x, 0, n * hd); },
    allLogits: which === 'all',
    ...(which === 'last' && opts.logitsOut ? { logitsOut: opts.logitsOut } : {}),
  });
  cache.record(ids, opts.inputsEmbeds, mode, long);
  hiddenStates?.push(last!);
  return { logits: which === 'none' ? new Float32Array(0) : logits, lastHiddenState: last!, ...(hiddenStates ? { hiddenStates } : {}) };
}
