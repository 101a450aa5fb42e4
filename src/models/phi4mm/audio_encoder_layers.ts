// One conformer block of the Phi-4-MM audio encoder and its parts (checkpoint prefix
// `...audio_embed.encoder.encoders.N`). Activations are channel-last: a batch of n sequences of t frames is
// [n·t, C] row-major, so every pointwise conv is one `backend.linear` with M = n·t. Only the depthwise conv
// and the attention see the sequence boundaries.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { LayerNorm, Linear } from '../../nn/layers.js';
import type { WeightSource } from '../../nn/weights.js';
import type { AudioConfig } from './audio_encoder.js';

/** nn.LayerNorm default eps; every LayerNorm of the audio encoder uses it (vision uses 1e-6). */
export const AUDIO_LAYER_NORM_EPS = 1e-5;

/**
 * Activation buffers of one encoder run, reused by role from block to block. Fresh, each block took ~40 MB of new
 * arrays at 375 frames, and their page faults and zeroing were a fifth of the encoder's time on 30 s of audio.
 * A role's buffer is overwritten by its next user: callers keep a result only until the next block starts.
 */
export class Scratch {
  private readonly bufs = new Map<string, Float32Array>();
  /** `n` values for `role`, holding whatever its last user left. */
  get(role: string, n: number): Float32Array {
    let b = this.bufs.get(role);
    if (!b || b.length < n) this.bufs.set(role, (b = new Float32Array(n)));
    return b.subarray(0, n);
  }
}

/** A Conv1d with kernel 1 (weight [out, in, 1]) run as a linear over channel-last frames. */
export class PointwiseConv1d {
  readonly weight: Tensor; // [out, in]
  readonly bias: Float32Array; // [out]
  constructor(ws: WeightSource, prefix: string, readonly inChannels: number, readonly outChannels: number) {
    this.weight = ws.take(`${prefix}.weight`, [outChannels, inChannels, 1]).reshape([outChannels, inChannels]);
    this.bias = ws.take(`${prefix}.bias`, [outChannels], 'f32').f32();
  }
  /** x [rows, in] → [rows, out] (into `out` when given) */
  forward(be: Backend, x: Float32Array, rows: number, out?: Float32Array): Float32Array {
    return be.linear(x, rows, this.weight, this.bias, out);
  }
}

/** Macaron half-step FFN: LayerNorm → Linear to 2·I → `up, gate = chunk(2)`, up·swish(gate) → Linear. */
export class FeedForward {
  readonly layerNorm: LayerNorm;
  readonly net0: Linear; // `net.0.linear`
  readonly net2: Linear;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    const c = cfg.hidden_size, i = cfg.intermediate_size;
    this.layerNorm = new LayerNorm(ws, `${prefix}.layer_norm`, c, AUDIO_LAYER_NORM_EPS);
    this.net0 = new Linear(ws, `${prefix}.net.0.linear`, c, 2 * i, { bias: true });
    this.net2 = new Linear(ws, `${prefix}.net.2`, i, c, { bias: true });
  }
  /** x [rows, C] → [rows, C] */
  forward(be: Backend, x: Float32Array, rows: number, s = new Scratch()): Float32Array {
    const i = this.net2.inFeatures, c = this.layerNorm.dim;
    const ln = this.layerNorm.forward(be, x, rows, s.get('ffn.ln', rows * c));
    const upGate = this.net0.forward(be, ln, rows, s.get('ffn.upGate', rows * 2 * i)); // [rows, 2I] = [up | gate]
    const h = be.swishGate(upGate, rows, i, null, null, s.get('ffn.h', rows * i)); // up · swish(gate): the text MLP's order reversed
    return this.net2.forward(be, h, rows, s.get('ffn.out', rows * c));
  }
}

/** Multi-head self-attention with the encoder's additive [t, t] mask and shared [H, t, t] relative bias. */
export class MultiHeadedAttention {
  readonly linearQ: Linear;
  readonly linearK: Linear;
  readonly linearV: Linear;
  readonly linearOut: Linear;
  readonly nHeads: number;
  readonly headDim: number;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    const c = cfg.hidden_size;
    this.nHeads = cfg.num_attention_heads;
    this.headDim = c / this.nHeads;
    this.linearQ = new Linear(ws, `${prefix}.linear_q`, c, c, { bias: true });
    this.linearK = new Linear(ws, `${prefix}.linear_k`, c, c, { bias: true });
    this.linearV = new Linear(ws, `${prefix}.linear_v`, c, c, { bias: true });
    this.linearOut = new Linear(ws, `${prefix}.linear_out`, c, c, { bias: true });
  }
  /** x [n·t, C]; masks[b] [t, t] additive per sequence; bias [H, t, t] → [n·t, C] */
  forward(be: Backend, x: Float32Array, n: number, t: number, masks: Float32Array[], bias: Float32Array, s = new Scratch()): Float32Array {
    const rows = n * t, c = this.nHeads * this.headDim;
    const q = this.linearQ.forward(be, x, rows, s.get('att.q', rows * c)), k = this.linearK.forward(be, x, rows, s.get('att.k', rows * c));
    const v = this.linearV.forward(be, x, rows, s.get('att.v', rows * c));
    const ctx = s.get('att.ctx', rows * c); // [n·t, H, headDim]
    for (let b = 0; b < n; b++) {
      const span = (a: Float32Array) => a.subarray(b * t * c, (b + 1) * t * c);
      be.attention({
        q: span(q), k: span(k), v: span(v), tq: t, tk: t, nHeads: this.nHeads, nKvHeads: this.nHeads, headDim: this.headDim,
        scale: this.headDim ** -0.5, mask: masks[b]!, bias, out: span(ctx),
      });
    }
    return this.linearOut.forward(be, ctx, rows, s.get('att.out', rows * c));
  }
}

/** `glu`: 1×1 conv C → 2E, then (a + b1)·swish(g + b2) with a the first E channels. */
export class GluPointWiseConv {
  readonly extPwConv1d: PointwiseConv1d;
  readonly b1: Float32Array; // [E] (checkpoint [1, E, 1])
  readonly b2: Float32Array;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    const e = cfg.ext_pw_out_channel;
    this.extPwConv1d = new PointwiseConv1d(ws, `${prefix}.ext_pw_conv_1d`, cfg.hidden_size, 2 * e);
    this.b1 = ws.take(`${prefix}.b1`, [1, e, 1], 'f32').f32();
    this.b2 = ws.take(`${prefix}.b2`, [1, e, 1], 'f32').f32();
  }
  /** x [rows, C] → [rows, E] */
  forward(be: Backend, x: Float32Array, rows: number, s = new Scratch()): Float32Array {
    const e = this.b1.length;
    const ag = this.extPwConv1d.forward(be, x, rows, s.get('glu.ag', rows * 2 * e)); // [rows, 2E] = [a | g]
    return be.swishGate(ag, rows, e, this.b1, this.b2, s.get('glu.out', rows * e));
  }
}

/**
 * `dw_sep_conv_1d`: depthwise Conv1d(k, padding k−1 both sides, groups C, C·multiplier outputs) → 1×1
 * `pw_conv`. Only the first t of the t+k−1 outputs are kept (the block drops the last k−1 after pw_conv;
 * pw_conv is per frame, so trimming first is the same), which makes the conv causal:
 * y[τ] = Σ_j w[j]·x[τ − (k−1) + j].
 */
export class DepthWiseSeparableConv1d {
  readonly dwWeight: Float32Array; // [k, C·mult] tap-major (checkpoint [C·mult, 1, k])
  readonly dwBias: Float32Array; // [C·mult]
  readonly pwConv: PointwiseConv1d;
  readonly channels: number;
  readonly multiplier: number;
  readonly kernel: number;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    this.channels = cfg.hidden_size;
    this.multiplier = cfg.depthwise_multiplier;
    this.kernel = cfg.kernel_size;
    const cm = this.channels * this.multiplier;
    this.dwWeight = tapMajor(ws.take(`${prefix}.dw_conv.weight`, [cm, 1, this.kernel], 'f32').f32(), cm, this.kernel);
    this.dwBias = ws.take(`${prefix}.dw_conv.bias`, [cm], 'f32').f32();
    this.pwConv = new PointwiseConv1d(ws, `${prefix}.pw_conv`, cm, cfg.depthwise_seperable_out_channel);
  }
  /** x [n·t, C] → [n·t, depthwise_seperable_out_channel], causal within each sequence. */
  forward(be: Backend, x: Float32Array, n: number, t: number, s = new Scratch()): Float32Array {
    const c = this.channels, m = this.multiplier, k = this.kernel, cm = c * m;
    const dw = s.get('dw.dw', n * t * cm);
    for (let b = 0; b < n; b++)
      for (let tau = 0; tau < t; tau++) {
        const dst = (b * t + tau) * cm;
        dw.set(this.dwBias, dst);
        for (let j = 0; j < k; j++) {
          const src = tau - (k - 1) + j;
          if (src < 0) continue; // left zero padding; the right padding only feeds the dropped outputs
          const xo = (b * t + src) * c, wo = j * cm;
          for (let o = 0; o < cm; o++) dw[dst + o] += x[xo + (m === 1 ? o : Math.floor(o / m))]! * this.dwWeight[wo + o]!;
        }
      }
    return this.pwConv.forward(be, dw, n * t, s.get('dw.out', n * t * this.pwConv.outChannels));
  }
}

/** Conformer conv module: LN → GLU → causal depthwise-separable conv → swish → 1×1 `ext_pw_conv_1d`. */
export class ConvModule {
  readonly layerNorm: LayerNorm;
  readonly glu: GluPointWiseConv;
  readonly dwSepConv1d: DepthWiseSeparableConv1d;
  readonly extPwConv1d: PointwiseConv1d;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    this.layerNorm = new LayerNorm(ws, `${prefix}.layer_norm`, cfg.hidden_size, AUDIO_LAYER_NORM_EPS);
    this.glu = new GluPointWiseConv(ws, `${prefix}.glu`, cfg);
    this.dwSepConv1d = new DepthWiseSeparableConv1d(ws, `${prefix}.dw_sep_conv_1d`, cfg);
    this.extPwConv1d = new PointwiseConv1d(ws, `${prefix}.ext_pw_conv_1d`, cfg.hidden_size, cfg.ext_pw_out_channel);
  }
  /** x [n·t, C] → [n·t, C] */
  forward(be: Backend, x: Float32Array, n: number, t: number, s = new Scratch()): Float32Array {
    const rows = n * t;
    const h = this.glu.forward(be, this.layerNorm.forward(be, x, rows, s.get('conv.ln', rows * this.layerNorm.dim)), rows, s);
    const d = this.dwSepConv1d.forward(be, h, n, t, s);
    return this.extPwConv1d.forward(be, be.silu(d, d), rows, s.get('conv.out', rows * this.extPwConv1d.outChannels));
  }
}

/** x + ½FFN_in(x) → + MHSA(LN_att(·)) → + Conv(·) → + ½FFN_out(·) → LayerNorm. */
export class ConformerBlock {
  readonly feedForwardIn: FeedForward;
  readonly selfAttn: MultiHeadedAttention;
  readonly conv: ConvModule;
  readonly feedForwardOut: FeedForward;
  readonly layerNormAtt: LayerNorm;
  readonly layerNorm: LayerNorm;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    this.feedForwardIn = new FeedForward(ws, `${prefix}.feed_forward_in`, cfg);
    this.selfAttn = new MultiHeadedAttention(ws, `${prefix}.self_attn`, cfg);
    this.conv = new ConvModule(ws, `${prefix}.conv`, cfg);
    this.feedForwardOut = new FeedForward(ws, `${prefix}.feed_forward_out`, cfg);
    this.layerNormAtt = new LayerNorm(ws, `${prefix}.layer_norm_att`, cfg.hidden_size, AUDIO_LAYER_NORM_EPS);
    this.layerNorm = new LayerNorm(ws, `${prefix}.layer_norm`, cfg.hidden_size, AUDIO_LAYER_NORM_EPS);
  }
  /** x [n·t, C] (not modified; may be the previous block's result in `s`) → [n·t, C] */
  forward(be: Backend, x: Float32Array, n: number, t: number, masks: Float32Array[], bias: Float32Array, s = new Scratch()): Float32Array {
    const rows = n * t, c = this.layerNorm.dim;
    const h = addScaled(x, this.feedForwardIn.forward(be, x, rows, s), 0.5, s.get('block.h', rows * c));
    addScaled(h, this.selfAttn.forward(be, this.layerNormAtt.forward(be, h, rows, s.get('block.ln', rows * c)), n, t, masks, bias, s), 1, h);
    addScaled(h, this.conv.forward(be, h, n, t, s), 1, h);
    addScaled(h, this.feedForwardOut.forward(be, h, rows, s), 0.5, h);
    return this.layerNorm.forward(be, h, rows, s.get('block.out', rows * c));
  }
}

/** out = a + s·b, rounded to f32 per element (torch computes s·b as its own f32 tensor first). */
function addScaled(a: Float32Array, b: Float32Array, s: number, out: Float32Array = new Float32Array(a.length)): Float32Array {
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + Math.fround(s * b[i]!);
  return out;
}

/** [rows, cols] → [cols, rows] copy (conv weights [C, taps] to tap-major for channel-contiguous loops). */
export function tapMajor(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let t = 0; t < cols; t++) out[t * rows + r] = w[r * cols + t]!;
  return out;
}
