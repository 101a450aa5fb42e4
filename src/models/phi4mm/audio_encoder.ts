// The Phi-4-MM audio encoder (checkpoint prefix `model.embed_tokens_extend.audio_embed`): global CMVN →
// NeMo conv subsampling ×8 → conformer blocks with a T5 relative-position bias → `audio_projection`
// (speech or vision pair) into the LM hidden size. It starts from the log-mel features of
// ./audio_processor.ts. Numerics follow transformers v4.51.3 `Phi4MultimodalAudioModel`, including its
// mask quirk (see `ConformerEncoder.forward`).
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { geluErf } from '../../tensor/ops.js';
import { Linear } from '../../nn/layers.js';
import type { WeightSource } from '../../nn/weights.js';
import { ConformerBlock, Scratch, tapMajor } from './audio_encoder_layers.js';

export const AUDIO_EMBED_PREFIX = 'model.embed_tokens_extend.audio_embed';
/** Subsampled frames per encoder chunk; longer inputs are zero-padded and unfolded (hard-coded upstream). */
export const MAX_SEQ_LEN = 500;
const SUBSAMPLING_KERNEL = 3; // every NeMo conv: 3×3, stride 2, padding 1

/** The `audio_config` fields the encoder reads (transformers-native key names). */
export interface AudioConfig {
  hidden_size: number;
  intermediate_size: number;
  num_blocks: number;
  num_attention_heads: number;
  /** Mel bins per feature frame. */
  input_size: number;
  /** Conv subsampling factor (a power of two). */
  time_reduction: number;
  nemo_conv_channels: number;
  kernel_size: number;
  ext_pw_out_channel: number;
  depthwise_seperable_out_channel: number;
  depthwise_multiplier: number;
  bias_max_distance: number;
  bias_symmetric: boolean;
  left_chunk: number;
  /** Streaming chunk in subsampled frames; negative = full attention (the released model: −1). */
  chunk_size: number;
  audio_token_id: number;
}

export type AudioProjectionMode = 'speech' | 'vision';

/** `encoder.encoder_embedding`: (x − global_mean)·global_invstd per mel bin. */
export class MeanVarianceNorm {
  readonly globalMean: Float32Array;
  readonly globalInvstd: Float32Array;
  constructor(ws: WeightSource, prefix: string, readonly dim: number) {
    this.globalMean = ws.take(`${prefix}.global_mean`, [dim], 'f32').f32();
    this.globalInvstd = ws.take(`${prefix}.global_invstd`, [dim], 'f32').f32();
  }
  /** x [rows, dim] → [rows, dim] */
  forward(x: Float32Array): Float32Array {
    const d = this.dim, out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = Math.fround(x[i]! - this.globalMean[i % d]!) * this.globalInvstd[i % d]!;
    return out;
  }
}

/**
 * `encoder.embed`: Conv2d(1→C) ReLU, then [depthwise Conv2d(C) → pointwise Conv2d(C) → ReLU] × (log2(r) − 1)
 * over the [time, mel] plane, all 3×3 / stride 2 / padding 1; then flatten channel-major to [t', C·F'] and
 * `out` Linear. Images are held channel-last [T, F, C] so the convs with C inputs are GEMMs.
 */
export class NemoConvSubsampling {
  readonly conv0: Float32Array; // [9, C] tap-major: one input channel broadcast to C outputs
  readonly conv0Bias: Float32Array;
  readonly stages: Array<{ dwWeight: Float32Array /* [9, C] tap-major */; dwBias: Float32Array; pw: Tensor /* [C, C] */; pwBias: Float32Array }> = [];
  readonly out: Linear;
  readonly channels: number;
  readonly finalFreq: number;
  constructor(ws: WeightSource, prefix: string, cfg: AudioConfig) {
    const c = (this.channels = cfg.nemo_conv_channels), kk = SUBSAMPLING_KERNEL ** 2;
    const steps = Math.log2(cfg.time_reduction);
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`audio config: time_reduction must be a power of two >= 2, got ${cfg.time_reduction}`);
    this.conv0 = tapMajor(ws.take(`${prefix}.conv.0.weight`, [c, 1, SUBSAMPLING_KERNEL, SUBSAMPLING_KERNEL], 'f32').f32(), c, kk);
    this.conv0Bias = ws.take(`${prefix}.conv.0.bias`, [c], 'f32').f32();
    // nn.Sequential indices: 0 conv, 1 act, then (dw, pw, act) per further step.
    for (let s = 0; s < steps - 1; s++) {
      const dw = `${prefix}.conv.${2 + 3 * s}`, pw = `${prefix}.conv.${3 + 3 * s}`;
      this.stages.push({
        dwWeight: tapMajor(ws.take(`${dw}.weight`, [c, 1, SUBSAMPLING_KERNEL, SUBSAMPLING_KERNEL], 'f32').f32(), c, kk),
        dwBias: ws.take(`${dw}.bias`, [c], 'f32').f32(),
        pw: ws.take(`${pw}.weight`, [c, c, 1, 1]).reshape([c, c]),
        pwBias: ws.take(`${pw}.bias`, [c], 'f32').f32(),
      });
    }
    let f = cfg.input_size;
    for (let s = 0; s < steps; s++) f = convOut(f);
    this.finalFreq = f;
    this.out = new Linear(ws, `${prefix}.out`, c * f, cfg.hidden_size, { bias: true });
  }

  /** x [n, T, F] → [n, t', hidden] with t' = ceil(T / time_reduction). */
  forward(be: Backend, x: Float32Array, n: number, tIn: number, fIn: number): { out: Float32Array; t: number } {
    const c = this.channels;
    const flat: Float32Array[] = [];
    let t = 0;
    for (let b = 0; b < n; b++) {
      let img = x.subarray(b * tIn * fIn, (b + 1) * tIn * fIn);
      let h = tIn, w = fIn;
      // First conv (1 input channel broadcast to C) + ReLU → [h', w', C], then per stage the depthwise conv, the
      // pointwise one and ReLU. The first conv goes with the first depthwise one: its image is never stored.
      this.stages.forEach((st, s) => {
        let dw: Float32Array;
        if (s === 0) {
          dw = be.conv3x3s2Pair(img, h, w, c, this.conv0, this.conv0Bias, st.dwWeight, st.dwBias);
          h = convOut(convOut(h)); w = convOut(convOut(w));
        } else {
          dw = be.conv3x3s2(img, h, w, c, c, st.dwWeight, st.dwBias, false);
          h = convOut(h); w = convOut(w);
        }
        img = be.relu(be.linear(dw, h * w, st.pw, st.pwBias));
      });
      if (this.stages.length === 0) {
        img = be.conv3x3s2(img, h, w, c, 1, this.conv0, this.conv0Bias, true);
        h = convOut(h); w = convOut(w);
      }
      // [t', F', C] → [t', C·F'] (torch: transpose(1, 2).reshape(b, t, -1) of [C, t', F']).
      const f = new Float32Array(h * c * w);
      for (let i = 0; i < h; i++)
        for (let q = 0; q < w; q++)
          for (let ch = 0; ch < c; ch++) f[(i * c + ch) * w + q] = img[(i * w + q) * c + ch]!;
      flat.push(f);
      t = h;
    }
    const all = new Float32Array(n * t * c * this.finalFreq);
    flat.forEach((f, b) => all.set(f, b * f.length));
    return { out: this.out.forward(be, all, n * t), t };
  }
}

/** `encoder.relative_attention_bias_layer`: T5-style learned bias per head and clipped offset j − i. */
export class T5RelativeAttentionBias {
  readonly table: Float32Array; // [buckets, H]
  constructor(ws: WeightSource, prefix: string, readonly maxDistance: number, readonly symmetric: boolean, readonly nHeads: number) {
    const buckets = symmetric ? maxDistance : 2 * maxDistance;
    this.table = ws.take(`${prefix}.bias_values.weight`, [buckets, nHeads], 'f32').f32();
  }
  /** → [H, t, t] */
  forward(t: number): Float32Array {
    const h = this.nHeads, d = this.maxDistance, out = new Float32Array(h * t * t);
    for (let i = 0; i < t; i++)
      for (let j = 0; j < t; j++) {
        const rel = Math.min(Math.max(j - i, -d), d - 1);
        const idx = this.symmetric ? Math.abs(rel) : rel + d;
        for (let k = 0; k < h; k++) out[(k * t + i) * t + j] = this.table[idx * h + k]!;
      }
    return out;
  }
}

/** Intermediate tensors of one `ConformerEncoder.forward` (filled when passed). */
export interface AudioEncoderTrace {
  afterGlobalCmvn?: Float32Array; // [n, T, input_size]
  afterConvSubsampling?: Float32Array; // [n, t', C]
  /** [H, t, t] for the sequence length the blocks run at (≤ MAX_SEQ_LEN). */
  relativeAttentionBias?: Float32Array;
  /** [n, t', C]: the encoder output before projection (filled by Phi4MMAudioEmbedding.encode). */
  encoderOut?: Float32Array;
}

/** `encoder`: the conformer proper. */
export class ConformerEncoder {
  readonly encoderEmbedding: MeanVarianceNorm;
  readonly embed: NemoConvSubsampling;
  readonly relativeAttentionBiasLayer: T5RelativeAttentionBias;
  readonly encoders: ConformerBlock[];
  constructor(ws: WeightSource, prefix: string, readonly cfg: AudioConfig) {
    this.encoderEmbedding = new MeanVarianceNorm(ws, `${prefix}.encoder_embedding`, cfg.input_size);
    this.embed = new NemoConvSubsampling(ws, `${prefix}.embed`, cfg);
    this.relativeAttentionBiasLayer = new T5RelativeAttentionBias(ws, `${prefix}.relative_attention_bias_layer`, cfg.bias_max_distance, cfg.bias_symmetric, cfg.num_attention_heads);
    this.encoders = Array.from({ length: cfg.num_blocks }, (_, i) => new ConformerBlock(ws, `${prefix}.encoders.${i}`, cfg));
  }

  /**
   * features [n, T, input_size] → [n, t', C], t' = ceil(T / time_reduction). `frames` (valid feature
   * frames per sequence) is the reference's audio_attention_mask: pass it for batches (n > 1), null for a
   * single clip. The mask is ADDED to the relative bias as 1.0 (valid key) / 0.0 (padded key), exactly as
   * the reference does, so padded frames are still attended to — copied, not fixed.
   * Sequences longer than MAX_SEQ_LEN are zero-padded to a multiple of it and run as a batch of chunks.
   */
  forward(be: Backend, features: Float32Array, n: number, tIn: number, frames: number[] | null, trace?: AudioEncoderTrace): Float32Array {
    const cfg = this.cfg, c = cfg.hidden_size;
    const normed = this.encoderEmbedding.forward(features);
    if (trace) trace.afterGlobalCmvn = normed;
    const { out: sub, t } = this.embed.forward(be, normed, n, tIn, cfg.input_size);
    if (trace) trace.afterConvSubsampling = sub;
    const valid = frames?.map((f) => Math.ceil(f / cfg.time_reduction)) ?? null; // subsampled frames per sequence

    // Unfold: [n, t, C] → [n·chunks, L, C], chunk-major within each sequence, zero padding at the end.
    const chunks = t > MAX_SEQ_LEN ? Math.ceil(t / MAX_SEQ_LEN) : 1;
    const len = t > MAX_SEQ_LEN ? MAX_SEQ_LEN : t;
    let x = sub;
    if (chunks * len !== t) {
      x = new Float32Array(n * chunks * len * c);
      for (let b = 0; b < n; b++) x.set(sub.subarray(b * t * c, (b + 1) * t * c), b * chunks * len * c);
    }
    const m = n * chunks;
    const streaming = streamingMask(len, cfg.chunk_size, cfg.left_chunk);
    const masks = Array.from({ length: m }, (_, s) => {
      // Valid keys of chunk s: a prefix (pad mask `arange < count`), or all keys without a mask.
      const keys = valid ? Math.min(Math.max(valid[Math.floor(s / chunks)]! - (s % chunks) * len, 0), len) : len;
      const mask = new Float32Array(len * len);
      for (let i = 0; i < len; i++)
        for (let j = 0; j < keys; j++) mask[i * len + j] = streaming ? streaming[i * len + j]! : 1;
      return mask;
    });
    const bias = this.relativeAttentionBiasLayer.forward(len);
    if (trace) trace.relativeAttentionBias = bias;

    const scratch = new Scratch();
    for (const block of this.encoders) x = block.forward(be, x, m, len, masks, bias, scratch);

    if (chunks * len === t) return x;
    const out = new Float32Array(n * t * c); // drop the unfold padding
    for (let b = 0; b < n; b++) out.set(x.subarray(b * chunks * len * c, (b * chunks * len + t) * c), b * t * c);
    return out;
  }
}

/**
 * The reference's streaming mask (`adaptive_enc_mask`) as [L, L] 0/1, or null when it is all ones:
 * chunk_size < 0 gives no chunk starts (np.arange(0, L, −1) is empty), i.e. full attention.
 */
export function streamingMask(len: number, chunkSize: number, leftChunk: number): Uint8Array | null {
  if (chunkSize === 0 || !Number.isInteger(chunkSize)) throw new Error(`audio config: chunk_size must be a negative (full attention) or positive integer, got ${chunkSize}`);
  if (chunkSize < 0 || chunkSize >= len) return null;
  const mask = new Uint8Array(len * len);
  for (let i = 0; i < len; i++) {
    const chunk = Math.floor(i / chunkSize);
    const from = Math.max(chunk - leftChunk, 0) * chunkSize, to = Math.min((chunk + 1) * chunkSize, len);
    mask.fill(1, i * len + from, i * len + to);
  }
  return mask;
}

/** `audio_projection.{speech,vision}`: Linear → exact GELU → Linear. */
export class AudioProjection {
  readonly fc0: Linear;
  readonly fc2: Linear;
  constructor(ws: WeightSource, prefix: string, audioHidden: number, lmHidden: number) {
    this.fc0 = new Linear(ws, `${prefix}.0`, audioHidden, lmHidden, { bias: true });
    this.fc2 = new Linear(ws, `${prefix}.2`, lmHidden, lmHidden, { bias: true });
  }
  /** x [rows, C] → [rows, lmHidden] */
  forward(be: Backend, x: Float32Array, rows: number): Float32Array {
    const h = this.fc0.forward(be, x, rows);
    return this.fc2.forward(be, geluErf(h, h), rows);
  }
}

/** `audio_embed`: encoder + both projections; turns log-mel features into LM input embeddings. */
export class Phi4MMAudioEmbedding {
  readonly encoder: ConformerEncoder;
  readonly audioProjection: Record<AudioProjectionMode, AudioProjection>;
  constructor(ws: WeightSource, readonly cfg: AudioConfig, readonly lmHidden: number, prefix = AUDIO_EMBED_PREFIX) {
    checkConfig(cfg);
    this.encoder = new ConformerEncoder(ws, `${prefix}.encoder`, cfg);
    this.audioProjection = {
      speech: new AudioProjection(ws, `${prefix}.audio_projection.speech`, cfg.hidden_size, lmHidden),
      vision: new AudioProjection(ws, `${prefix}.audio_projection.vision`, cfg.hidden_size, lmHidden),
    };
  }

  /**
   * features [n, max(frames), input_size] (zero-padded log-mel, as the audio processor returns them),
   * frames = valid feature frames per clip → per clip [ceil(frames_i / time_reduction), lmHidden].
   * Pass all clips of one prompt in one call: like the reference, a batch (n > 1) is masked and padded
   * frames still influence the others (see ConformerEncoder.forward). Projection: 'vision' when the prompt
   * also has an image, else 'speech'.
   */
  encode(be: Backend, features: Float32Array, frames: number[], projection: AudioProjectionMode, trace?: AudioEncoderTrace): Float32Array[] {
    const cfg = this.cfg, n = frames.length;
    if (n === 0) throw new Error('audio encoder: no clips given (frames is empty)');
    frames.forEach((f, i) => {
      if (!Number.isInteger(f) || f < 1) throw new Error(`audio encoder: clip ${i} has ${f} feature frames; each clip needs at least 1 (25 ms of audio)`);
    });
    const proj = this.audioProjection[projection];
    if (!proj) throw new Error(`audio encoder: projection must be 'speech' or 'vision', got ${JSON.stringify(projection)}`);
    const tMax = Math.max(...frames), want = n * tMax * cfg.input_size;
    if (features.length !== want)
      throw new Error(`audio encoder: features must be [${n}, ${tMax}, ${cfg.input_size}] (clips, max(frames), mel bins) = ${want} values, got ${features.length}` +
        (features.length % (n * tMax) === 0 ? ` (${features.length / (n * tMax)} per frame: wrong feature width?)` : ''));
    const enc = this.encoder.forward(be, features, n, tMax, n > 1 ? frames : null, trace);
    if (trace) trace.encoderOut = enc;
    const t = Math.ceil(tMax / cfg.time_reduction), c = cfg.hidden_size;
    return frames.map((f, b) => {
      const rows = Math.ceil(f / cfg.time_reduction);
      return proj.forward(be, enc.subarray(b * t * c, (b * t + rows) * c), rows);
    });
  }
}

function convOut(size: number): number {
  return Math.floor((size + 2 - SUBSAMPLING_KERNEL) / 2) + 1; // padding 1, stride 2
}

function checkConfig(cfg: AudioConfig): void {
  const bad = (why: string) => new Error(`audio config: ${why}`);
  for (const k of ['hidden_size', 'intermediate_size', 'num_blocks', 'num_attention_heads', 'input_size', 'nemo_conv_channels', 'kernel_size', 'ext_pw_out_channel', 'depthwise_seperable_out_channel', 'depthwise_multiplier', 'bias_max_distance'] as const)
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw bad(`${k} must be a positive integer, got ${cfg[k]}`);
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) throw bad(`hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  // The conv module chains GLU (→ ext_pw_out_channel) → depthwise over hidden_size channels → pw (→ depthwise_seperable_out_channel) → ext_pw (hidden_size →) → residual.
  if (cfg.ext_pw_out_channel !== cfg.hidden_size || cfg.depthwise_seperable_out_channel !== cfg.hidden_size)
    throw bad(`ext_pw_out_channel (${cfg.ext_pw_out_channel}) and depthwise_seperable_out_channel (${cfg.depthwise_seperable_out_channel}) must equal hidden_size (${cfg.hidden_size})`);
  streamingMask(1, cfg.chunk_size, cfg.left_chunk);
}
