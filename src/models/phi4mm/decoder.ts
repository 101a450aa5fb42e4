// Phi-4-mini, the language half of Phi-4-multimodal (transformers v4.51.3 Phi3 / Phi4Multimodal text model):
// RMSNorm → fused qkv → partial LongRoPE → GQA causal attention → o_proj, RMSNorm → gate_up → up·silu(gate) →
// down; final RMSNorm; LM head tied to embed_tokens. Module tree = checkpoint key tree under `model.`.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { embedding, rmsNorm } from '../../tensor/ops.js';
import type { WeightSource } from '../../nn/weights.js';
import type { TextConfig } from './config.js';
import { LongRope, applyRope } from './rope.js';
import { LoraLinear, loraAdapterFor, type Adapter, type InputMode, type LoraConfigs } from './lora.js';
import { Scratch } from './decoder_scratch.js';

/** Up to this many rows a forward reuses the decoder's scratch (decode); longer prefills get their own. */
const DECODE_SCRATCH_MAX_ROWS = 16;
/** First allocation of a cache without an explicit capacity, in tokens (then it doubles as needed). */
const DEFAULT_CACHE_TOKENS = 256;

/** Keys and values of every layer, preallocated: [capacity, nKv, headDim] per layer, grown by doubling. */
export class KVCache {
  /** Tokens cached (the position of the next token). */
  length = 0;
  /** Whether the last forward used the LongRoPE long factors (the cached keys then are rotated with them). */
  long = false;
  private cap = 0;
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];

  constructor(readonly layers: number, readonly rowSize: number, capacity = DEFAULT_CACHE_TOKENS) {
    this.reserve(capacity);
  }

  get capacity(): number {
    return this.cap;
  }

  reserve(total: number): void {
    if (total <= this.cap) return;
    const cap = Math.max(total, this.cap * 2);
    for (let l = 0; l < this.layers; l++) {
      const k = new Float32Array(cap * this.rowSize), v = new Float32Array(cap * this.rowSize);
      if (this.k[l]) { k.set(this.k[l]!.subarray(0, this.length * this.rowSize)); v.set(this.v[l]!.subarray(0, this.length * this.rowSize)); }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.cap = cap;
  }

  /** Forget the cached tokens (keeps the memory). */
  reset(): void {
    this.length = 0;
    this.long = false;
  }
}

/** Per-forward context shared by the layers. */
interface Step {
  be: Backend;
  t: number; // rows in this forward
  cache: KVCache;
  rope: { cos: Float32Array; sin: Float32Array }; // [T, rotaryDim]
  adapter: Adapter | null;
  s: Scratch;
}

export class Phi3Attention {
  readonly qkv_proj: LoraLinear;
  readonly o_proj: LoraLinear;
  private readonly H: number;
  private readonly KV: number;

  constructor(ws: WeightSource, prefix: string, cfg: TextConfig, readonly headDim: number, readonly rotaryDim: number, loras: LoraConfigs) {
    this.H = cfg.num_attention_heads;
    this.KV = cfg.num_key_value_heads;
    this.qkv_proj = new LoraLinear(ws, `${prefix}.qkv_proj`, cfg.hidden_size, (this.H + 2 * this.KV) * headDim, loras);
    this.o_proj = new LoraLinear(ws, `${prefix}.o_proj`, this.H * headDim, cfg.hidden_size, loras);
  }

  /** x [T, hidden] at positions cache.length.. → out [T, hidden]; writes this layer's k/v into the cache. */
  forward(x: Float32Array, layer: number, p: Step, out: Float32Array): Float32Array {
    const { be, t, cache, s } = p, H = this.H, KV = this.KV, d = this.headDim;
    const w = (H + 2 * KV) * d, qRow = H * d, kvRow = KV * d;
    const qkv = this.qkv_proj.forward(be, x, t, p.adapter, s.get('qkv', t * w), s); // [T, q: H·d | k: KV·d | v: KV·d]
    const q = s.get('q', t * qRow); // [T, H, d]
    const kc = cache.k[layer]!, vc = cache.v[layer]!, base = cache.length * kvRow; // [T, KV, d] rows appended
    for (let i = 0; i < t; i++) {
      q.set(qkv.subarray(i * w, i * w + qRow), i * qRow);
      kc.set(qkv.subarray(i * w + qRow, i * w + qRow + kvRow), base + i * kvRow);
      vc.set(qkv.subarray(i * w + qRow + kvRow, (i + 1) * w), base + i * kvRow);
    }
    applyRope(q, t, H, d, p.rope.cos, p.rope.sin, this.rotaryDim);
    applyRope(kc.subarray(base, base + t * kvRow), t, KV, d, p.rope.cos, p.rope.sin, this.rotaryDim);
    const tk = cache.length + t;
    const att = be.attention({
      q, k: kc.subarray(0, tk * kvRow), v: vc.subarray(0, tk * kvRow), tq: t, tk,
      nHeads: H, nKvHeads: KV, headDim: d, scale: 1 / Math.sqrt(d), causalOffset: cache.length, out: s.get('att', t * qRow),
    });
    return this.o_proj.forward(be, att, t, p.adapter, out, s);
  }
}

export class Phi3MLP {
  readonly gate_up_proj: LoraLinear;
  readonly down_proj: LoraLinear;

  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, loras: LoraConfigs) {
    this.gate_up_proj = new LoraLinear(ws, `${prefix}.gate_up_proj`, cfg.hidden_size, 2 * cfg.intermediate_size, loras);
    this.down_proj = new LoraLinear(ws, `${prefix}.down_proj`, cfg.intermediate_size, cfg.hidden_size, loras);
  }

  /** x [T, hidden] → out [T, hidden]. */
  forward(x: Float32Array, p: Step, out: Float32Array): Float32Array {
    const { be, t, s } = p, I = this.cfg.intermediate_size;
    const gu = this.gate_up_proj.forward(be, x, t, p.adapter, s.get('gate_up', t * 2 * I), s); // [T, 2I]: gate, up = chunk(2)
    const h = s.get('mlp_act', t * I); // [T, I]
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < I; j++) {
        const g = gu[i * 2 * I + j]!, u = gu[i * 2 * I + I + j]!;
        h[i * I + j] = u * (g / (1 + Math.exp(-g)));
      }
    }
    return this.down_proj.forward(be, h, t, p.adapter, out, s);
  }
}

export class Phi3DecoderLayer {
  readonly input_layernorm: Float32Array; // [hidden]
  readonly post_attention_layernorm: Float32Array; // [hidden]
  readonly self_attn: Phi3Attention;
  readonly mlp: Phi3MLP;

  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, headDim: number, rotaryDim: number, loras: LoraConfigs) {
    this.input_layernorm = ws.take(`${prefix}.input_layernorm.weight`, [cfg.hidden_size], 'f32').f32();
    this.post_attention_layernorm = ws.take(`${prefix}.post_attention_layernorm.weight`, [cfg.hidden_size], 'f32').f32();
    this.self_attn = new Phi3Attention(ws, `${prefix}.self_attn`, cfg, headDim, rotaryDim, loras);
    this.mlp = new Phi3MLP(ws, `${prefix}.mlp`, cfg, loras);
  }

  /** x [T, hidden]: the residual stream, updated in place. */
  forward(x: Float32Array, layer: number, p: Step): void {
    const { t, s } = p, hd = this.cfg.hidden_size, eps = this.cfg.rms_norm_eps;
    const a = this.self_attn.forward(rmsNorm(x, t, hd, this.input_layernorm, eps, s.get('norm', t * hd)), layer, p, s.get('branch', t * hd));
    for (let i = 0; i < x.length; i++) x[i]! += a[i]!;
    const m = this.mlp.forward(rmsNorm(x, t, hd, this.post_attention_layernorm, eps, s.get('norm', t * hd)), p, s.get('branch', t * hd));
    for (let i = 0; i < x.length; i++) x[i]! += m[i]!;
  }
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

/** `model.` of the checkpoint: embed_tokens, layers, norm; `lm_head.weight` only when embeddings are untied. */
export class Phi4MiniDecoder {
  readonly embed_tokens: Tensor; // [vocab, hidden]
  readonly layers: Phi3DecoderLayer[];
  readonly norm: Float32Array; // [hidden]
  readonly lm_head: Tensor; // [vocab, hidden]
  readonly rope: LongRope;
  readonly headDim: number;
  private readonly scratch = new Scratch();

  constructor(ws: WeightSource, readonly cfg: TextConfig, loras: LoraConfigs) {
    this.headDim = cfg.hidden_size / cfg.num_attention_heads;
    this.rope = new LongRope(cfg);
    this.embed_tokens = ws.take('model.embed_tokens.weight', [cfg.vocab_size, cfg.hidden_size]);
    this.layers = Array.from({ length: cfg.num_hidden_layers }, (_, i) => new Phi3DecoderLayer(ws, `model.layers.${i}`, cfg, this.headDim, this.rope.rotaryDim, loras));
    this.norm = ws.take('model.norm.weight', [cfg.hidden_size], 'f32').f32();
    // Tied (Phi-4-mini): the checkpoint has no lm_head.weight, as expected; untied: it must be there.
    this.lm_head = cfg.tie_word_embeddings ? this.embed_tokens : ws.take('lm_head.weight', [cfg.vocab_size, cfg.hidden_size]);
  }

  /** An empty cache with room for `capacity` tokens (it grows past that). */
  newCache(capacity?: number): KVCache {
    return new KVCache(this.cfg.num_hidden_layers, this.cfg.num_key_value_heads * this.headDim, capacity);
  }

  /** Token embeddings [T, hidden]. */
  embed(ids: ArrayLike<number>): Float32Array {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.cfg.vocab_size) throw new Error(`token id ${id} at ${i} is outside the vocabulary [0, ${this.cfg.vocab_size})`);
    }
    return embedding(this.embed_tokens, ids);
  }

  /**
   * Run `inputIds` (or `inputsEmbeds`) at positions cache.length.. and extend the cache. The LongRoPE factors
   * follow the reference's rule for this forward: long iff cache.length + T > original_max_position_embeddings.
   * (With a cache filled under the short factors that is what HF's forward does too; generateTokens drops the
   * cache at the switch, like HF's generate().)
   */
  forward(be: Backend, inputIds: ArrayLike<number>, opts: DecoderForwardOptions = {}): DecoderOutput {
    const t = inputIds.length, hd = this.cfg.hidden_size;
    if (t === 0) throw new Error('forward: no tokens');
    const cache = opts.cache ?? this.newCache(t);
    if (cache.rowSize !== this.cfg.num_key_value_heads * this.headDim || cache.layers !== this.layers.length) throw new Error('forward: the cache was made for another model (use decoder.newCache())');
    const s = t <= DECODE_SCRATCH_MAX_ROWS ? this.scratch : new Scratch();
    const x = s.get('x', t * hd); // [T, hidden] residual stream
    if (opts.inputsEmbeds) {
      if (opts.inputsEmbeds.length !== t * hd) throw new Error(`forward: inputsEmbeds has ${opts.inputsEmbeds.length} values, expected ${t} tokens x ${hd}`);
      x.set(opts.inputsEmbeds);
    } else {
      x.set(this.embed(inputIds));
    }
    cache.reserve(cache.length + t);
    cache.long = this.rope.useLong(cache.length + t);
    const rd = this.rope.rotaryDim;
    const rope = this.rope.tables(cache.length, t, cache.long, { cos: s.get('cos', t * rd), sin: s.get('sin', t * rd) });
    const step: Step = { be, t, cache, rope, adapter: loraAdapterFor(opts.mode ?? 'language'), s };
    const hiddenStates: Float32Array[] | undefined = opts.outputHiddenStates ? [x.slice()] : undefined;
    this.layers.forEach((layer, l) => {
      layer.forward(x, l, step);
      if (hiddenStates && l < this.layers.length - 1) hiddenStates.push(x.slice());
    });
    cache.length += t;
    const last = rmsNorm(x, t, hd, this.norm, this.cfg.rms_norm_eps); // [T, hidden], returned: not scratch
    hiddenStates?.push(last);
    const mode = opts.logits ?? 'last';
    const logits = mode === 'none' ? new Float32Array(0)
      : mode === 'all' ? be.linear(last, t, this.lm_head)
      : be.linear(last.subarray((t - 1) * hd), 1, this.lm_head, null, opts.logitsOut);
    return { logits, lastHiddenState: last, ...(hiddenStates ? { hiddenStates } : {}) };
  }
}
