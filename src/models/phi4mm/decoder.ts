// Phi-4-mini, the language half of Phi-4-multimodal (transformers v4.51.3 Phi3 / Phi4Multimodal text model):
// RMSNorm → fused qkv → partial LongRoPE → GQA causal attention → o_proj, RMSNorm → gate_up → up·silu(gate) →
// down; final RMSNorm; LM head tied to embed_tokens. Module tree = checkpoint key tree under `model.`.
//
// It runs on Backend v2 (src/tensor/device.ts) over a paged KV store: `forwardBatch` takes a ragged batch of
// sequences (each with its own positions, block table, LongRoPE regime and LoRA adapter) and makes a fixed
// handful of device calls per layer. Model code never reads buffer contents; host arrays appear only for the
// inputs (ids, media rows, rotary tables) and the logits.
import type { Backend } from '../../tensor/backend.js';
import type { Buf, DeviceOps, KvDType, KvSpec, KvStore, SeqRows } from '../../tensor/device.js';
import type { Tensor } from '../../tensor/tensor.js';
import { embedding } from '../../tensor/ops.js';
import { kvRowBytes } from '../../tensor/host_kv.js';
import type { Deferred, WeightSource } from '../../nn/weights.js';
import { deferOrBuild } from '../../nn/lazy_weights.js';
import { DeviceRMSNorm, RoPE, SwiGLU, loadLoraLinear, type AdapterRun, type LoraAdapter, type LoraLinear } from '../../nn/device_layers.js';
import type { TextConfig } from './config.js';
import { LongRope } from './rope.js';
import { loadAdapter, loraTargets, type AdaptedPath, type Adapter, type LoraConfigs } from './lora.js';
import { DeviceScratch } from './decoder_scratch.js';
import { planBatch, type BatchSeq } from './decoder_batch.js';
import { KVCache, forwardWithCache, type DecoderForwardOptions, type DecoderOutput } from './kv_cache.js';

export type { BatchSeq } from './decoder_batch.js';
export { KVCache, type DecoderForwardOptions, type DecoderOutput } from './kv_cache.js';

/** Per-forward context shared by the layers. */
export interface Step {
  dev: DeviceOps;
  kv: KvStore;
  t: number; // rows in this forward
  seqs: readonly SeqRows[];
  runs: readonly AdapterRun[];
  cos: Buf; // [T, rotaryDim]
  sin: Buf;
  s: DeviceScratch;
}

export class Phi3Attention {
  readonly qkv_proj: LoraLinear;
  readonly o_proj: LoraLinear;
  readonly rotary: RoPE;
  private readonly H: number;
  private readonly KV: number;

  /** The base weights; the decoder attaches the adapters (lora.ts). */
  constructor(ws: WeightSource, prefix: string, cfg: TextConfig, readonly headDim: number, rotaryDim: number) {
    this.H = cfg.num_attention_heads;
    this.KV = cfg.num_key_value_heads;
    this.qkv_proj = loadLoraLinear(ws, `${prefix}.qkv_proj`, cfg.hidden_size, (this.H + 2 * this.KV) * headDim, {});
    this.o_proj = loadLoraLinear(ws, `${prefix}.o_proj`, this.H * headDim, cfg.hidden_size, {});
    this.rotary = new RoPE(headDim, rotaryDim);
  }

  /** x [T, hidden] → out [T, hidden]; writes this layer's K/V of the new rows into the store first. */
  forward(x: Buf, layer: number, p: Step, out: Buf): void {
    const { dev, t, s } = p, H = this.H, KV = this.KV, d = this.headDim;
    const w = (H + 2 * KV) * d;
    const qkv = s.get('qkv', t * w); // [T, q: H·d | k: KV·d | v: KV·d]
    this.qkv_proj.forward(dev, x, t, qkv, p.runs);
    this.rotary.forward(dev, qkv, t, w, 0, H + KV, p.cos, p.sin); // q and k heads are adjacent: one call rotates both
    dev.kvWrite(p.kv, layer, qkv, w, H * d, (H + KV) * d, p.seqs);
    const att = s.get('att', t * H * d); // [T, H, d]
    dev.pagedAttention(qkv, w, 0, p.kv, layer, p.seqs, H, 1 / Math.sqrt(d), att);
    this.o_proj.forward(dev, att, t, out, p.runs);
  }
}

export class Phi3MLP {
  readonly gate_up_proj: LoraLinear;
  readonly down_proj: LoraLinear;
  readonly act: SwiGLU;

  /** The base weights; the decoder attaches the adapters (lora.ts). */
  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig) {
    this.gate_up_proj = loadLoraLinear(ws, `${prefix}.gate_up_proj`, cfg.hidden_size, 2 * cfg.intermediate_size, {});
    this.down_proj = loadLoraLinear(ws, `${prefix}.down_proj`, cfg.intermediate_size, cfg.hidden_size, {});
    this.act = new SwiGLU(cfg.intermediate_size);
  }

  /** x [T, hidden] → out [T, hidden]. */
  forward(x: Buf, p: Step, out: Buf): void {
    const { dev, t, s } = p, I = this.cfg.intermediate_size;
    const gu = s.get('gate_up', t * 2 * I); // [T, 2I]: gate, up = chunk(2)
    this.gate_up_proj.forward(dev, x, t, gu, p.runs);
    const h = s.get('mlp_act', t * I); // [T, I]
    this.act.forward(dev, gu, t, h);
    this.down_proj.forward(dev, h, t, out, p.runs);
  }
}

export class Phi3DecoderLayer {
  readonly input_layernorm: DeviceRMSNorm;
  readonly post_attention_layernorm: DeviceRMSNorm;
  readonly self_attn: Phi3Attention;
  readonly mlp: Phi3MLP;

  constructor(ws: WeightSource, prefix: string, readonly cfg: TextConfig, headDim: number, rotaryDim: number) {
    this.input_layernorm = new DeviceRMSNorm(ws, `${prefix}.input_layernorm`, cfg.hidden_size, cfg.rms_norm_eps);
    this.post_attention_layernorm = new DeviceRMSNorm(ws, `${prefix}.post_attention_layernorm`, cfg.hidden_size, cfg.rms_norm_eps);
    this.self_attn = new Phi3Attention(ws, `${prefix}.self_attn`, cfg, headDim, rotaryDim);
    this.mlp = new Phi3MLP(ws, `${prefix}.mlp`, cfg);
  }

  /** The LoRA-adapted linear at `path` under this layer. */
  adapted(path: AdaptedPath): LoraLinear {
    switch (path) {
      case 'self_attn.qkv_proj': return this.self_attn.qkv_proj;
      case 'self_attn.o_proj': return this.self_attn.o_proj;
      case 'mlp.gate_up_proj': return this.mlp.gate_up_proj;
      case 'mlp.down_proj': return this.mlp.down_proj;
    }
  }

  /** x [T, hidden]: the residual stream, updated in place. */
  forward(x: Buf, layer: number, p: Step): void {
    const { dev, t, s } = p, n = t * this.cfg.hidden_size;
    const norm = s.get('norm', n), branch = s.get('branch', n);
    this.input_layernorm.forward(dev, x, t, norm);
    this.self_attn.forward(norm, layer, p, branch);
    dev.add(x, branch, n);
    this.post_attention_layernorm.forward(dev, x, t, norm);
    this.mlp.forward(norm, p, branch);
    dev.add(x, branch, n);
  }
}

/** What a forward hands back besides the requested logits (the research API's hidden states). */
export interface ForwardHooks {
  /** Receives [T, hidden] after the embedding (index 0) and after each layer but the last (1..L-1). */
  hidden?: (index: number, x: Buf, t: number) => void;
  /** Receives the final-norm output of every row [T, hidden] (then logits of `allLogits` come from it). */
  normed?: (x: Buf, t: number) => void;
  /** LM head over every row instead of the sequences' last rows: [T, vocab] into this. */
  allLogits?: boolean;
  /** For the per-sequence logits: written here instead of a new array. */
  logitsOut?: Float32Array;
}

/** `model.` of the checkpoint: embed_tokens, layers, norm; `lm_head.weight` only when embeddings are untied. */
export class Phi4MiniDecoder {
  readonly embed_tokens: Tensor; // [vocab, hidden]
  readonly layers: Phi3DecoderLayer[];
  readonly norm: DeviceRMSNorm;
  readonly lm_head: Tensor; // [vocab, hidden]
  readonly rope: LongRope;
  readonly headDim: number;
  /** Every LoRA adapter the config declares, loaded or not. */
  readonly adapterNames: ReadonlySet<Adapter>;
  /** Declared adapters whose weights are not read yet (lazy loading); useAdapter attaches them. */
  private readonly pendingAdapters = new Map<string, Deferred<Map<string, LoraAdapter>>>();
  private readonly scratch = new WeakMap<DeviceOps, DeviceScratch>();

  /** With a deferring source (nn/lazy_weights.ts) the adapters are checked now and read on first use. */
  constructor(ws: WeightSource, readonly cfg: TextConfig, loras: LoraConfigs) {
    this.headDim = cfg.hidden_size / cfg.num_attention_heads;
    this.rope = new LongRope(cfg);
    // Adapters first: deferred, this only checks them, so the reads that follow (and the progress) are the base.
    const targets = loraTargets(cfg, this.headDim);
    const adapters = (['vision', 'speech'] as const).flatMap((name) => {
      const c = loras[name];
      return c ? [[name, deferOrBuild(ws, `${name} LoRA adapter`, (w) => loadAdapter(w, name, c, targets))] as const] : [];
    });
    this.adapterNames = new Set(adapters.map(([name]) => name));
    this.embed_tokens = ws.take('model.embed_tokens.weight', [cfg.vocab_size, cfg.hidden_size]);
    this.layers = Array.from({ length: cfg.num_hidden_layers }, (_, i) => new Phi3DecoderLayer(ws, `model.layers.${i}`, cfg, this.headDim, this.rope.rotaryDim));
    this.norm = new DeviceRMSNorm(ws, 'model.norm', cfg.hidden_size, cfg.rms_norm_eps);
    // Tied (Phi-4-mini): the checkpoint has no lm_head.weight, as expected; untied: it must be there.
    this.lm_head = cfg.tie_word_embeddings ? this.embed_tokens : ws.take('lm_head.weight', [cfg.vocab_size, cfg.hidden_size]);
    for (const [name, part] of adapters) {
      if (part.loaded) this.attachAdapter(name, part.get());
      else this.pendingAdapters.set(name, part);
    }
  }

  /**
   * Whether the config declares adapter `name`; if its weights were deferred, reads and attaches them first
   * (once; every layer at the same time, so a forward never sees half an adapter).
   */
  useAdapter(name: string): boolean {
    const part = this.pendingAdapters.get(name);
    if (part) {
      this.attachAdapter(name, part.get());
      this.pendingAdapters.delete(name);
    }
    return this.adapterNames.has(name as Adapter);
  }

  /** Whether adapter `name` is declared and its weights are in memory. */
  adapterLoaded(name: string): boolean {
    return this.adapterNames.has(name as Adapter) && !this.pendingAdapters.has(name);
  }

  private attachAdapter(name: string, byPrefix: Map<string, LoraAdapter>): void {
    for (const t of loraTargets(this.cfg, this.headDim)) this.layers[t.layer]!.adapted(t.path).attach(name, byPrefix.get(t.prefix)!);
  }

  /** The KV pool layout of this model: numBlocks blocks of blockSize tokens, every layer, K and V. */
  kvSpec(numBlocks: number, blockSize: number, dtype: KvDType): KvSpec {
    return { layers: this.cfg.num_hidden_layers, numBlocks, blockSize, nKvHeads: this.cfg.num_key_value_heads, headDim: this.headDim, dtype };
  }

  /** K and V bytes of one token in every layer at a storage type (f16 at Phi-4-mini size: 128 KiB). */
  kvBytesPerToken(dtype: KvDType): number {
    return 2 * this.cfg.num_hidden_layers * kvRowBytes(dtype, this.cfg.num_key_value_heads, this.headDim);
  }

  /** An empty research-API cache with room for `capacity` tokens (it grows past that). */
  newCache(capacity?: number, dtype: KvDType = 'f32'): KVCache {
    return new KVCache(this.cfg.num_hidden_layers, this.cfg.num_key_value_heads * this.headDim, capacity, dtype);
  }

  /** Token embeddings [T, hidden] on the host (the multimodal merge replaces media rows in them). */
  embed(ids: ArrayLike<number>): Float32Array {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.cfg.vocab_size) throw new Error(`token id ${id} at ${i} is outside the vocabulary [0, ${this.cfg.vocab_size})`);
    }
    return embedding(this.embed_tokens, ids);
  }

  /**
   * One forward of a ragged batch: each sequence's new rows at positions start.., its K/V written into `kv`
   * through its block table. Returns the last-row logits of the sequences with `logits: true`, in order:
   * [n, vocab]. Every row's result depends only on its own sequence (batch invariance), so batching changes
   * no result.
   */
  forwardBatch(be: Backend, kv: KvStore, seqs: readonly BatchSeq[], hooks: ForwardHooks = {}): Float32Array {
    const sp = kv.spec, cfg = this.cfg, hd = cfg.hidden_size, V = cfg.vocab_size;
    if (sp.layers !== this.layers.length || sp.nKvHeads !== cfg.num_key_value_heads || sp.headDim !== this.headDim) {
      throw new Error(`forwardBatch: the KV store (${sp.layers} layers x ${sp.nKvHeads} kv heads x ${sp.headDim}) was made for another model; use decoder.kvSpec()`);
    }
    const plan = planBatch(cfg, this.rope, sp, (a) => this.useAdapter(a), seqs);
    const dev = be.device, t = plan.t, rd = this.rope.rotaryDim;
    const s = this.scratchFor(dev);
    const x = s.get('x', t * hd); // [T, hidden] residual stream
    dev.embedding(this.embed_tokens, plan.ids, x);
    for (const [row, e] of plan.embeds) dev.upload(e, x, row * hd);
    const cos = s.get('cos', t * rd), sin = s.get('sin', t * rd);
    dev.upload(plan.cos, cos);
    dev.upload(plan.sin, sin);
    const step: Step = { dev, kv, t, seqs: plan.seqs, runs: plan.runs, cos, sin, s };
    hooks.hidden?.(0, x, t);
    this.layers.forEach((layer, l) => {
      layer.forward(x, l, step);
      if (l < this.layers.length - 1) hooks.hidden?.(l + 1, x, t);
    });
    if (hooks.normed || hooks.allLogits) {
      const normed = s.get('final', t * hd);
      this.norm.forward(dev, x, t, normed);
      hooks.normed?.(normed, t);
      if (hooks.allLogits) return this.head(dev, s, normed, t, hooks.logitsOut);
    }
    const n = plan.logitRows.length;
    if (n === 0) return new Float32Array(0);
    const last = s.get('last', n * hd); // [n, hidden]
    dev.gatherRows(x, hd, plan.logitRows, last);
    this.norm.forward(dev, last, n, last);
    if (hooks.logitsOut && hooks.logitsOut.length < n * V) throw new Error(`forwardBatch: logitsOut has ${hooks.logitsOut.length} values, expected ${n} x ${V}`);
    return this.head(dev, s, last, n, hooks.logitsOut);
  }

  /**
   * Run `inputIds` (or `inputsEmbeds`) at positions cache.length.. and extend the cache (research API: hidden
   * states, logits of every position). The LongRoPE factors follow the reference's rule for this forward: long
   * iff cache.length + T > original_max_position_embeddings. (With a cache filled under the short factors that
   * is what HF's forward does too; generateTokens drops the cache at the switch, like HF's generate().)
   */
  forward(be: Backend, inputIds: ArrayLike<number>, opts: DecoderForwardOptions = {}): DecoderOutput {
    return forwardWithCache(this, be, inputIds, opts);
  }

  private head(dev: DeviceOps, s: DeviceScratch, x: Buf, n: number, out?: Float32Array): Float32Array {
    const V = this.cfg.vocab_size, logits = s.get('logits', n * V);
    dev.linear(x, n, this.lm_head, logits);
    return dev.download(logits, 0, n * V, out);
  }

  private scratchFor(dev: DeviceOps): DeviceScratch {
    let s = this.scratch.get(dev);
    if (!s) this.scratch.set(dev, (s = new DeviceScratch(dev)));
    return s;
  }
}
