// Phi-4-mini, the language half of Phi-4-multimodal (transformers Phi3/Phi4Multimodal text model, v4.51.3):
// RMSNorm → fused qkv → partial LongRoPE → GQA attention → o_proj, RMSNorm → gate_up → up·silu(gate) → down.
// Module tree = checkpoint key tree under `model.`.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { embedding, rmsNorm } from '../../tensor/ops.js';
import type { WeightSource } from '../../nn/weights.js';
import type { LoraConfig, TextConfig } from './configuration.js';

export type Adapter = 'vision' | 'speech';

/**
 * A base linear with its LoRA adapters, applied at run time: y = W·x + s·B·(A·x), s = lora_alpha / r.
 * Why unmerged: merging would need a copy of every adapted weight per adapter (or a merge/unmerge per request,
 * ~3.8 B multiply-adds each time), and with a quantized base it would re-quantize. Unmerged costs two skinny
 * GEMMs of rank r per linear (r = 256/320 against 3072–16384 outputs: ~10–15% of the base FLOPs), keeps one
 * base copy in memory, and switches adapter per request for free.
 */
export class LoraLinear {
  readonly weight: Tensor; // base_layer.weight [out, in], stored as the policy says
  readonly adapters = new Map<Adapter, { A: Tensor; B: Tensor; scale: number }>(); // A [r, in], B [out, r], f32

  constructor(ws: WeightSource, prefix: string, readonly inFeatures: number, readonly outFeatures: number, loras: Partial<Record<Adapter, LoraConfig | null>>) {
    this.weight = ws.take(`${prefix}.base_layer.weight`, [outFeatures, inFeatures]);
    for (const name of ['vision', 'speech'] as const) {
      const cfg = loras[name];
      if (!cfg) continue;
      // The config declares the adapter, so its tensors are required (strict loading reports them if absent).
      const A = ws.take(`${prefix}.lora_A.${name}.weight`, [cfg.r, inFeatures], 'f32');
      const B = ws.take(`${prefix}.lora_B.${name}.weight`, [outFeatures, cfg.r], 'f32');
      this.adapters.set(name, { A, B, scale: cfg.lora_alpha / cfg.r });
    }
  }

  /** x [m, in] → [m, out] */
  forward(be: Backend, x: Float32Array, m: number, adapter: Adapter | null): Float32Array {
    const y = be.linear(x, m, this.weight);
    const ad = adapter ? this.adapters.get(adapter) : undefined;
    if (adapter && !ad) throw new Error(`no "${adapter}" LoRA adapter loaded for this layer; the checkpoint lacks it`);
    if (ad) {
      const u = be.linear(be.linear(x, m, ad.A), m, ad.B); // [m, out]
      for (let i = 0; i < y.length; i++) y[i]! += ad.scale * u[i]!;
    }
    return y;
  }
}

/** LongRoPE cos/sin tables, computed in float32 exactly like the reference (inv_freq, angles, × attention factor). */
export class LongRope {
  readonly rotaryDim: number;
  readonly attentionFactor: number;
  private readonly invShort: Float32Array;
  private readonly invLong: Float32Array;

  constructor(readonly cfg: TextConfig) {
    const headDim = cfg.hidden_size / cfg.num_attention_heads;
    this.rotaryDim = Math.floor(headDim * cfg.partial_rotary_factor);
    const half = this.rotaryDim / 2;
    const rs = cfg.rope_scaling;
    const ones = new Array<number>(half).fill(1);
    const invFreq = (factors: number[]) => {
      const out = new Float32Array(half);
      for (let k = 0; k < half; k++) {
        // 1 / (ext_factor · base^(2k/dim)) in float32, as torch evaluates it
        const expo = Math.fround((2 * k) / this.rotaryDim);
        const pow = Math.fround(Math.pow(cfg.rope_theta, expo));
        out[k] = Math.fround(1 / Math.fround(Math.fround(factors[k]!) * pow));
      }
      return out;
    };
    this.invShort = invFreq(rs ? rs.short_factor : ones);
    this.invLong = invFreq(rs ? rs.long_factor : ones);
    const scale = cfg.max_position_embeddings / cfg.original_max_position_embeddings;
    this.attentionFactor = rs && scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(cfg.original_max_position_embeddings)) : 1;
  }

  /** Long factors apply to every position once the sequence (max position + 1) exceeds the original window. */
  useLong(seqLen: number): boolean {
    return this.cfg.rope_scaling !== null && seqLen > this.cfg.original_max_position_embeddings;
  }

  /** cos/sin [n, rotaryDim] for positions start..start+n-1 (halves duplicated, as cat(freqs, freqs)). */
  tables(start: number, n: number, long: boolean): { cos: Float32Array; sin: Float32Array } {
    const inv = long ? this.invLong : this.invShort;
    const d = this.rotaryDim, half = d / 2;
    const cos = new Float32Array(n * d), sin = new Float32Array(n * d);
    const af = Math.fround(this.attentionFactor);
    for (let t = 0; t < n; t++) {
      const pos = start + t;
      for (let k = 0; k < half; k++) {
        const ang = Math.fround(inv[k]! * pos);
        const c = Math.fround(Math.fround(Math.cos(ang)) * af), s = Math.fround(Math.fround(Math.sin(ang)) * af);
        cos[t * d + k] = cos[t * d + k + half] = c;
        sin[t * d + k] = sin[t * d + k + half] = s;
      }
    }
    return { cos, sin };
  }
}

/** Rotate the first rotaryDim dims of each head in place: x·cos + rotate_half(x)·sin. x: [T, nHeads, headDim]. */
export function applyRope(x: Float32Array, t: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array, rotaryDim: number): void {
  const half = rotaryDim / 2;
  for (let i = 0; i < t; i++) {
    const c = i * rotaryDim;
    for (let h = 0; h < nHeads; h++) {
      const o = (i * nHeads + h) * headDim;
      for (let k = 0; k < half; k++) {
        const x1 = x[o + k]!, x2 = x[o + k + half]!;
        x[o + k] = x1 * cos[c + k]! - x2 * sin[c + k]!;
        x[o + k + half] = x2 * cos[c + k + half]! + x1 * sin[c + k + half]!;
      }
    }
  }
}

/** Keys and values of every layer, [T, nKv, headDim] each, grown by doubling. */
export class KVCache {
  length = 0;
  /** Whether the cached keys were rotated with the long factors (LongRoPE). */
  long = false;
  private cap = 0;
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  constructor(readonly layers: number, readonly rowSize: number) {}

  reserve(total: number): void {
    if (total <= this.cap) return;
    const cap = Math.max(total, this.cap * 2, 64);
    for (let l = 0; l < this.layers; l++) {
      const k = new Float32Array(cap * this.rowSize), v = new Float32Array(cap * this.rowSize);
      if (this.k[l]) { k.set(this.k[l]!.subarray(0, this.length * this.rowSize)); v.set(this.v[l]!.subarray(0, this.length * this.rowSize)); }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.cap = cap;
  }

  reset(): void {
    this.length = 0;
    this.long = false;
  }
}

export class Phi3Attention {
  readonly qkv_proj: LoraLinear;
  readonly o_proj: LoraLinear;
  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, readonly headDim: number, loras: Partial<Record<Adapter, LoraConfig | null>>) {
    const h = cfg.hidden_size, op = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * headDim;
    this.qkv_proj = new LoraLinear(ws, `${prefix}.qkv_proj`, h, op, loras);
    this.o_proj = new LoraLinear(ws, `${prefix}.o_proj`, cfg.num_attention_heads * headDim, h, loras);
  }

  /** x [T, hidden] at positions cache.length.. → [T, hidden]; appends this layer's k/v to the cache. */
  forward(be: Backend, x: Float32Array, t: number, layer: number, cache: KVCache, rope: { cos: Float32Array; sin: Float32Array; rotaryDim: number }, adapter: Adapter | null): Float32Array {
    const H = this.cfg.num_attention_heads, KV = this.cfg.num_key_value_heads, d = this.headDim;
    const qkv = this.qkv_proj.forward(be, x, t, adapter); // [T, (H + 2KV)·d] = [q | k | v] per row
    const w = (H + 2 * KV) * d, kvRow = KV * d;
    const q = new Float32Array(t * H * d);
    const kc = cache.k[layer]!, vc = cache.v[layer]!, base = cache.length * kvRow;
    for (let i = 0; i < t; i++) {
      q.set(qkv.subarray(i * w, i * w + H * d), i * H * d);
      kc.set(qkv.subarray(i * w + H * d, i * w + H * d + kvRow), base + i * kvRow);
      vc.set(qkv.subarray(i * w + H * d + kvRow, (i + 1) * w), base + i * kvRow);
    }
    applyRope(q, t, H, d, rope.cos, rope.sin, rope.rotaryDim);
    applyRope(kc.subarray(base, base + t * kvRow), t, KV, d, rope.cos, rope.sin, rope.rotaryDim);
    const tk = cache.length + t;
    const out = be.attention({
      q, k: kc.subarray(0, tk * kvRow), v: vc.subarray(0, tk * kvRow), tq: t, tk,
      nHeads: H, nKvHeads: KV, headDim: d, scale: 1 / Math.sqrt(d), causalOffset: cache.length,
    });
    return this.o_proj.forward(be, out, t, adapter);
  }
}

export class Phi3MLP {
  readonly gate_up_proj: LoraLinear;
  readonly down_proj: LoraLinear;
  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, loras: Partial<Record<Adapter, LoraConfig | null>>) {
    this.gate_up_proj = new LoraLinear(ws, `${prefix}.gate_up_proj`, cfg.hidden_size, 2 * cfg.intermediate_size, loras);
    this.down_proj = new LoraLinear(ws, `${prefix}.down_proj`, cfg.intermediate_size, cfg.hidden_size, loras);
  }

  forward(be: Backend, x: Float32Array, t: number, adapter: Adapter | null): Float32Array {
    const I = this.cfg.intermediate_size;
    const gu = this.gate_up_proj.forward(be, x, t, adapter); // [T, 2I]: gate, up = chunk(2)
    const h = new Float32Array(t * I);
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < I; j++) {
        const g = gu[i * 2 * I + j]!, u = gu[i * 2 * I + I + j]!;
        h[i * I + j] = u * (g / (1 + Math.exp(-g)));
      }
    }
    return this.down_proj.forward(be, h, t, adapter);
  }
}

export class Phi3DecoderLayer {
  readonly input_layernorm: Float32Array;
  readonly post_attention_layernorm: Float32Array;
  readonly self_attn: Phi3Attention;
  readonly mlp: Phi3MLP;
  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, headDim: number, loras: Partial<Record<Adapter, LoraConfig | null>>) {
    this.input_layernorm = ws.take(`${prefix}.input_layernorm.weight`, [cfg.hidden_size], 'f32').f32();
    this.post_attention_layernorm = ws.take(`${prefix}.post_attention_layernorm.weight`, [cfg.hidden_size], 'f32').f32();
    this.self_attn = new Phi3Attention(ws, `${prefix}.self_attn`, cfg, headDim, loras);
    this.mlp = new Phi3MLP(ws, `${prefix}.mlp`, cfg, loras);
  }

  /** x [T, hidden], updated in place (residual stream). */
  forward(be: Backend, x: Float32Array, t: number, layer: number, cache: KVCache, rope: { cos: Float32Array; sin: Float32Array; rotaryDim: number }, adapter: Adapter | null): void {
    const hd = this.cfg.hidden_size, eps = this.cfg.rms_norm_eps;
    const a = this.self_attn.forward(be, rmsNorm(x, t, hd, this.input_layernorm, eps), t, layer, cache, rope, adapter);
    for (let i = 0; i < x.length; i++) x[i]! += a[i]!;
    const m = this.mlp.forward(be, rmsNorm(x, t, hd, this.post_attention_layernorm, eps), t, adapter);
    for (let i = 0; i < x.length; i++) x[i]! += m[i]!;
  }
}

export interface LmForwardOptions {
  adapter: Adapter | null;
  /** [T, hidden]: replaces the token embedding lookup (the multimodal merge passes this). */
  inputsEmbeds?: Float32Array;
  /** Which positions get logits (default 'last'). */
  logits?: 'last' | 'all' | 'none';
  outputHiddenStates?: boolean;
}

export interface LmForwardResult {
  /** [1, vocab] ('last'), [T, vocab] ('all') or empty. */
  logits: Float32Array;
  /** Final-norm output [T, hidden]. */
  lastHiddenState: Float32Array;
  /** HF convention: [0] = embeddings, [i] = output of layer i-1, last = final norm output. */
  hiddenStates?: Float32Array[];
}

/** `model.` in the checkpoint: embed_tokens, layers, norm; the LM head is tied to embed_tokens unless untied. */
export class Phi4MiniModel {
  readonly embed_tokens: Tensor; // [vocab, hidden]
  readonly layers: Phi3DecoderLayer[];
  readonly norm: Float32Array;
  readonly lm_head: Tensor;
  readonly rope: LongRope;
  readonly headDim: number;

  constructor(ws: WeightSource, readonly cfg: TextConfig, loras: Partial<Record<Adapter, LoraConfig | null>>) {
    this.headDim = cfg.hidden_size / cfg.num_attention_heads;
    this.embed_tokens = ws.take('model.embed_tokens.weight', [cfg.vocab_size, cfg.hidden_size]);
    this.layers = Array.from({ length: cfg.num_hidden_layers }, (_, i) => new Phi3DecoderLayer(ws, `model.layers.${i}`, cfg, this.headDim, loras));
    this.norm = ws.take('model.norm.weight', [cfg.hidden_size], 'f32').f32();
    // Tied: the checkpoint has no lm_head.weight (expected); otherwise it must be there.
    this.lm_head = cfg.tie_word_embeddings ? this.embed_tokens : ws.take('lm_head.weight', [cfg.vocab_size, cfg.hidden_size]);
    this.rope = new LongRope(cfg);
  }

  newCache(): KVCache {
    return new KVCache(this.cfg.num_hidden_layers, this.cfg.num_key_value_heads * this.headDim);
  }

  embed(ids: ArrayLike<number>): Float32Array {
    return embedding(this.embed_tokens, ids);
  }

  /**
   * Run `ids` (or their embeddings) at positions cache.length.. and extend the cache. The caller decides the
   * LongRoPE factors by setting `cache.long` before the first chunk (see Phi4MMForCausalLM.generate).
   */
  forward(be: Backend, ids: ArrayLike<number>, cache: KVCache, opts: LmForwardOptions): LmForwardResult {
    const t = ids.length, hd = this.cfg.hidden_size;
    if (t === 0) throw new Error('forward: no tokens');
    const x = opts.inputsEmbeds ? Float32Array.from(opts.inputsEmbeds) : this.embed(ids);
    if (x.length !== t * hd) throw new Error(`forward: inputsEmbeds has ${x.length} values, expected ${t}x${hd}`);
    cache.reserve(cache.length + t);
    const rt = this.rope.tables(cache.length, t, cache.long);
    const rope = { ...rt, rotaryDim: this.rope.rotaryDim };
    const hiddenStates: Float32Array[] | undefined = opts.outputHiddenStates ? [x.slice()] : undefined;
    this.layers.forEach((layer, l) => {
      layer.forward(be, x, t, l, cache, rope, opts.adapter);
      if (hiddenStates && l < this.layers.length - 1) hiddenStates.push(x.slice());
    });
    cache.length += t;
    const last = rmsNorm(x, t, hd, this.norm, this.cfg.rms_norm_eps);
    hiddenStates?.push(last);
    const mode = opts.logits ?? 'last';
    const logits = mode === 'none' ? new Float32Array(0)
      : mode === 'all' ? be.linear(last, t, this.lm_head)
      : be.linear(last.subarray((t - 1) * hd), 1, this.lm_head);
    return { logits, lastHiddenState: last, ...(hiddenStates ? { hiddenStates } : {}) };
  }
}
