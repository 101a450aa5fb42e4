// SigLIP-so400m/14 NaViT vision tower as Phi-4-multimodal runs it (checkpoint prefix
// `...image_embed.img_processor`): patch conv + bucketised position embedding, pre-LN encoder layers with a
// key-padding mask. Only the layers up to the feature layer are built; the rest, `post_layernorm` and the
// attention-pooling `head` are in the checkpoint but their outputs are discarded by the reference, so their
// weights are ignored (never loaded) to save memory.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { add } from '../../tensor/ops.js';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.js';
import type { WeightSource } from '../../nn/weights.js';

export const NUM_CHANNELS = 3; // RGB
/** torch.finfo(float32).min: the additive value `_prepare_4d_attention_mask` puts on padded keys. */
export const MASK_MIN = -3.4028234663852886e38;

/** The fields of the transformers `vision_config` the tower reads (key names as in config.json). */
export interface SiglipConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  image_size: number;
  patch_size: number;
  layer_norm_eps: number;
}

/**
 * Valid patch rows/cols of one crop's patch mask ([side, side], 1 = image, 0 = padding), which must be a
 * top-left rectangle of ones (what the image processor produces). Throws otherwise.
 */
export function validPatchExtent(mask: Float32Array, side: number): { rows: number; cols: number } {
  if (mask.length !== side * side) throw new Error(`patch mask has ${mask.length} values, expected ${side}x${side}`);
  let rows = 0, cols = 0;
  while (rows < side && mask[rows * side] === 1) rows++;
  while (cols < side && mask[cols] === 1) cols++;
  for (let r = 0; r < side; r++)
    for (let c = 0; c < side; c++) {
      const want = r < rows && c < cols ? 1 : 0;
      if (mask[r * side + c] !== want)
        throw new Error(`patch mask must be 0/1 with the ones forming a top-left rectangle (found ${mask[r * side + c]} at row ${r}, col ${c} for a ${rows}x${cols} valid region); pass the image processor's attention mask unchanged`);
    }
  return { rows, cols };
}

/** torch.arange(start, end, step) for float32 output: length and values evaluated in double, then rounded. */
function arangeF32(start: number, end: number, step: number): Float32Array {
  const n = Math.max(0, Math.ceil((end - start) / step));
  return Float32Array.from({ length: n }, (_, i) => start + step * i);
}

/**
 * NaViT position ids of one crop ([side·side], row-major patches): the valid rows/cols are spread over the
 * side×side table by `bucketize(arange(0, 1-1e-6, 1/n_valid), arange(1/side, 1, 1/side), right=True)` with
 * the fractions in float32 like torch; padded patches get id 0.
 */
export function siglipPositionIds(mask: Float32Array, side: number): Int32Array {
  const { rows, cols } = validPatchExtent(mask, side);
  const ids = new Int32Array(side * side);
  if (rows === 0) return ids;
  const boundaries = arangeF32(1 / side, 1, 1 / side); // [side-1]
  const buckets = (nValid: number): Int32Array => {
    const coords = arangeF32(0, 1 - 1e-6, Math.fround(1 / nValid)); // 1/n is a float32 tensor in torch
    if (coords.length !== nValid) throw new Error(`position bucketing produced ${coords.length} coordinates for ${nValid} valid patches`);
    // right=True: the bucket is the number of boundaries <= x
    return Int32Array.from(coords, (x) => boundaries.reduce((k, b) => (b <= x ? k + 1 : k), 0));
  };
  const br = buckets(rows), bc = buckets(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ids[r * side + c] = br[r]! * side + bc[c]!;
  return ids;
}

/** Additive key-padding mask [T, T] (MASK_MIN on padded keys), or undefined when every patch is valid. */
export function keyPaddingMask(mask: Float32Array): Float32Array | undefined {
  const t = mask.length;
  if (mask.every((v) => v !== 0)) return undefined;
  const row = mask.map((v) => (v !== 0 ? 0 : MASK_MIN));
  const out = new Float32Array(t * t);
  for (let i = 0; i < t; i++) out.set(row, i * t);
  return out;
}

export class SiglipVisionEmbeddings {
  readonly patch_embedding: { weight: Tensor; bias: Float32Array }; // weight viewed as [C, 3·p·p]
  readonly position_embedding: Embedding; // [side², C]
  readonly side: number; // patches per crop side

  constructor(ws: WeightSource, prefix: string, readonly cfg: SiglipConfig) {
    const { hidden_size: c, patch_size: p } = cfg;
    this.side = cfg.image_size / p;
    const w = ws.take(`${prefix}.patch_embedding.weight`, [c, NUM_CHANNELS, p, p]);
    this.patch_embedding = { weight: w.reshape([c, NUM_CHANNELS * p * p]), bias: ws.take(`${prefix}.patch_embedding.bias`, [c], 'f32').f32() };
    this.position_embedding = new Embedding(ws, `${prefix}.position_embedding`, this.side * this.side, c);
  }

  /** pixels [3, S, S] → [side², C]: the stride-p conv as one GEMM over unfolded patches. */
  forward(be: Backend, pixels: Float32Array, positionIds: Int32Array): Float32Array {
    const { side } = this, p = this.cfg.patch_size, s = this.cfg.image_size, k = NUM_CHANNELS * p * p;
    const patches = new Float32Array(side * side * k); // [side², 3·p·p], inner order (channel, ky, kx) = weight layout
    for (let py = 0; py < side; py++)
      for (let px = 0; px < side; px++) {
        let o = (py * side + px) * k;
        for (let ch = 0; ch < NUM_CHANNELS; ch++)
          for (let ky = 0; ky < p; ky++) {
            const src = (ch * s + py * p + ky) * s + px * p;
            patches.set(pixels.subarray(src, src + p), o);
            o += p;
          }
      }
    const x = be.linear(patches, side * side, this.patch_embedding.weight, this.patch_embedding.bias);
    return add(x, this.position_embedding.forward(positionIds), x);
  }
}

export class SiglipAttention {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly headDim: number;

  constructor(ws: WeightSource, prefix: string, readonly cfg: SiglipConfig) {
    const c = cfg.hidden_size;
    this.headDim = c / cfg.num_attention_heads;
    this.q_proj = new Linear(ws, `${prefix}.q_proj`, c, c, { bias: true });
    this.k_proj = new Linear(ws, `${prefix}.k_proj`, c, c, { bias: true });
    this.v_proj = new Linear(ws, `${prefix}.v_proj`, c, c, { bias: true });
    this.out_proj = new Linear(ws, `${prefix}.out_proj`, c, c, { bias: true });
  }

  /** x [T, C] → [T, C]; mask: additive [T, T] or undefined. */
  forward(be: Backend, x: Float32Array, t: number, mask?: Float32Array): Float32Array {
    const nHeads = this.cfg.num_attention_heads, headDim = this.headDim;
    const q = this.q_proj.forward(be, x, t), k = this.k_proj.forward(be, x, t), v = this.v_proj.forward(be, x, t); // [T, nHeads, headDim]
    const o = be.attention({ q, k, v, tq: t, tk: t, nHeads, nKvHeads: nHeads, headDim, scale: headDim ** -0.5, ...(mask ? { mask } : {}) });
    return this.out_proj.forward(be, o, t);
  }
}

export class SiglipMLP {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(ws: WeightSource, prefix: string, cfg: SiglipConfig) {
    this.fc1 = new Linear(ws, `${prefix}.fc1`, cfg.hidden_size, cfg.intermediate_size, { bias: true });
    this.fc2 = new Linear(ws, `${prefix}.fc2`, cfg.intermediate_size, cfg.hidden_size, { bias: true });
  }
  /** x [T, C] → [T, C], gelu_pytorch_tanh in between. */
  forward(be: Backend, x: Float32Array, t: number): Float32Array {
    const h = this.fc1.forward(be, x, t);
    return this.fc2.forward(be, be.geluTanh(h, h), t);
  }
}

export class SiglipEncoderLayer {
  readonly layer_norm1: LayerNorm;
  readonly self_attn: SiglipAttention;
  readonly layer_norm2: LayerNorm;
  readonly mlp: SiglipMLP;

  constructor(ws: WeightSource, prefix: string, cfg: SiglipConfig) {
    this.layer_norm1 = new LayerNorm(ws, `${prefix}.layer_norm1`, cfg.hidden_size, cfg.layer_norm_eps);
    this.self_attn = new SiglipAttention(ws, `${prefix}.self_attn`, cfg);
    this.layer_norm2 = new LayerNorm(ws, `${prefix}.layer_norm2`, cfg.hidden_size, cfg.layer_norm_eps);
    this.mlp = new SiglipMLP(ws, `${prefix}.mlp`, cfg);
  }

  /** Pre-LN block, x [T, C] → [T, C] (a new buffer). */
  forward(be: Backend, x: Float32Array, t: number, mask?: Float32Array): Float32Array {
    const h = add(x, this.self_attn.forward(be, this.layer_norm1.forward(be, x, t), t, mask));
    return add(h, this.mlp.forward(be, this.layer_norm2.forward(be, h, t), t), h);
  }
}

export class SiglipVisionModel {
  readonly embeddings: SiglipVisionEmbeddings;
  readonly encoder: { layers: SiglipEncoderLayer[] };

  /** Builds the embeddings and encoder layers [0, numLayers); the others are ignored (see the file header). */
  constructor(ws: WeightSource, prefix: string, readonly cfg: SiglipConfig, numLayers: number) {
    const side = cfg.image_size / cfg.patch_size;
    if (!Number.isInteger(side) || cfg.hidden_size % cfg.num_attention_heads !== 0)
      throw new Error(`vision config: image_size ${cfg.image_size} must be a multiple of patch_size ${cfg.patch_size} and hidden_size ${cfg.hidden_size} of num_attention_heads ${cfg.num_attention_heads}`);
    this.embeddings = new SiglipVisionEmbeddings(ws, `${prefix}.embeddings`, cfg);
    this.encoder = { layers: Array.from({ length: numLayers }, (_, i) => new SiglipEncoderLayer(ws, `${prefix}.encoder.layers.${i}`, cfg)) };
    const layerRe = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.encoder\\.layers\\.(\\d+)\\.`);
    ws.ignore((n) => Number(layerRe.exec(n)?.[1] ?? -1) >= numLayers || n.startsWith(`${prefix}.post_layernorm.`) || n.startsWith(`${prefix}.head.`));
  }

  get side(): number {
    return this.embeddings.side;
  }

  /**
   * One crop: pixels [3, S, S], patch mask [side, side] (1 = valid) → hidden state [side², C] after the
   * first `numLayers` encoder layers (0 = the embeddings). Padded patches are computed as queries too.
   */
  forward(be: Backend, pixels: Float32Array, patchMask: Float32Array, numLayers = this.encoder.layers.length): Float32Array {
    const s = this.cfg.image_size, t = this.side * this.side;
    if (pixels.length !== NUM_CHANNELS * s * s) throw new Error(`crop has ${pixels.length} values, expected [${NUM_CHANNELS}, ${s}, ${s}]`);
    if (numLayers > this.encoder.layers.length) throw new Error(`only ${this.encoder.layers.length} encoder layers are loaded, ${numLayers} requested`);
    let x = this.embeddings.forward(be, pixels, siglipPositionIds(patchMask, this.side));
    const mask = keyPaddingMask(patchMask);
    for (let i = 0; i < numLayers; i++) x = this.encoder.layers[i]!.forward(be, x, t, mask);
    return x;
  }
}
