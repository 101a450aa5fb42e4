// Phi-4-multimodal image embedding (checkpoint prefix `model.embed_tokens_extend.image_embed`), after
// transformers v4.51.3 `Phi4MultimodalImageEmbedding`: SigLIP features of every crop → AvgPool 2×2 → HD
// assembly in "sub_glb" order with the learnt separators → projection (Linear → exact GELU → Linear) into the
// LM hidden size. One call of `encode` turns the image processor's batch into one [tokens, hidden] block per
// image, in the order the image placeholder tokens are replaced.
import type { Backend } from '../../tensor/backend.js';
import { geluErf } from '../../tensor/ops.js';
import { Linear } from '../../nn/layers.js';
import type { WeightSource } from '../../nn/weights.js';
import { NUM_CHANNELS, SiglipVisionModel, validPatchExtent, type SiglipConfig } from './vision_siglip.js';

export const IMAGE_EMBED_PREFIX = 'model.embed_tokens_extend.image_embed';
const POOL = 2; // AvgPool2d kernel and stride (patches per pooled token side)
const DEFAULT_FEATURE_LAYER = -2; // hidden_states[-2]: the input of the last encoder layer

/** transformers `vision_config` keys (either config layout is parsed into this). */
export interface VisionConfig extends SiglipConfig {
  crop_size: number;
  image_token_id: number;
  /** Index into SigLIP's hidden_states (0 = embeddings); negative counts from the end. Default -2. */
  feature_layer?: number;
}

export class Phi4MMImageEmbedding {
  readonly img_processor: SiglipVisionModel;
  readonly glb_GN: Float32Array; // [C], separator between the HD tokens and the global tokens
  readonly sub_GN: Float32Array; // [C], appended after every row of tokens
  /** Keys img_projection.0 and .2 (index 1 is the parameter-free GELU). */
  readonly img_projection: { readonly 0: Linear; readonly 2: Linear };
  readonly dim: number; // C, SigLIP hidden size
  readonly side: number; // patches per crop side (32)
  readonly pooledSide: number; // tokens per crop side after pooling (16)

  constructor(ws: WeightSource, readonly cfg: VisionConfig, readonly lmHidden: number, prefix = IMAGE_EMBED_PREFIX) {
    const c = (this.dim = cfg.hidden_size);
    this.side = cfg.image_size / cfg.patch_size;
    this.pooledSide = this.side / POOL;
    if (cfg.crop_size !== cfg.image_size) throw new Error(`vision config: crop_size ${cfg.crop_size} must equal image_size ${cfg.image_size} (each crop is one SigLIP input)`);
    if (!Number.isInteger(this.pooledSide)) throw new Error(`vision config: ${this.side} patches per side is odd; the reflection padding before pooling is not implemented`);
    const l = cfg.num_hidden_layers, f = cfg.feature_layer ?? DEFAULT_FEATURE_LAYER;
    const featureLayers = f < 0 ? l + 1 + f : f; // encoder layers whose output is the feature
    if (!Number.isInteger(featureLayers) || featureLayers < 0 || featureLayers > l) throw new Error(`vision config: feature_layer ${f} is outside the ${l + 1} hidden states`);
    this.img_processor = new SiglipVisionModel(ws, `${prefix}.img_processor`, cfg, featureLayers);
    this.glb_GN = ws.take(`${prefix}.glb_GN`, [1, 1, c], 'f32').f32();
    this.sub_GN = ws.take(`${prefix}.sub_GN`, [1, 1, 1, c], 'f32').f32();
    this.img_projection = {
      0: new Linear(ws, `${prefix}.img_projection.0`, c, lmHidden, { bias: true }),
      2: new Linear(ws, `${prefix}.img_projection.2`, lmHidden, lmHidden, { bias: true }),
    };
  }

  /** One crop: pixels [3, S, S], patch mask [side, side] → pooled features [pooledSide², C]. */
  cropFeatures(be: Backend, pixels: Float32Array, patchMask: Float32Array): Float32Array {
    const x = this.img_processor.forward(be, pixels, patchMask); // [side, side, C]
    const { side, pooledSide: ps, dim: c } = this;
    const out = new Float32Array(ps * ps * c); // [ps, ps, C]
    for (let y = 0; y < ps; y++)
      for (let xq = 0; xq < ps; xq++) {
        const o = (y * ps + xq) * c;
        for (let dy = 0; dy < POOL; dy++)
          for (let dx = 0; dx < POOL; dx++) {
            const src = ((y * POOL + dy) * side + xq * POOL + dx) * c;
            for (let i = 0; i < c; i++) out[o + i] += x[src + i]!;
          }
        for (let i = 0; i < c; i++) out[o + i] /= POOL * POOL;
      }
    return out;
  }

  /**
   * Token rows of one image in "sub_glb" order, [N, C]: the HD crops (crops[1..]) stitched to a
   * (gh·ps)×(gw·ps) grid cut to usefulH×usefulW, `sub_GN` after each row; `glb_GN`; the global crop
   * (crops[0]) ps×ps, `sub_GN` after each row. N = usefulH·(usefulW+1) + 1 + ps·(ps+1).
   */
  assemble(crops: Float32Array[], gh: number, gw: number, usefulH: number, usefulW: number): Float32Array {
    const { pooledSide: ps, dim: c } = this;
    if (crops.length !== 1 + gh * gw) throw new Error(`assemble: ${crops.length} crops given for a ${gh}x${gw} grid plus the global crop`);
    if (usefulH > gh * ps || usefulW > gw * ps) throw new Error(`assemble: useful region ${usefulH}x${usefulW} exceeds the ${gh * ps}x${gw * ps} token grid`);
    const out = new Float32Array((usefulH * (usefulW + 1) + 1 + ps * (ps + 1)) * c);
    let o = 0;
    const put = (row: Float32Array): void => {
      out.set(row, o);
      o += c;
    };
    for (let y = 0; y < usefulH; y++) {
      for (let x = 0; x < usefulW; x++) {
        const tile = crops[1 + Math.floor(y / ps) * gw + Math.floor(x / ps)]!, t = (y % ps) * ps + (x % ps);
        put(tile.subarray(t * c, (t + 1) * c));
      }
      put(this.sub_GN);
    }
    put(this.glb_GN);
    for (let y = 0; y < ps; y++) {
      out.set(crops[0]!.subarray(y * ps * c, (y + 1) * ps * c), o);
      o += ps * c;
      put(this.sub_GN);
    }
    return out;
  }

  /** x [n, C] → [n, lmHidden]: Linear → exact (erf) GELU → Linear. */
  project(be: Backend, x: Float32Array, n: number): Float32Array {
    const h = this.img_projection[0].forward(be, x, n);
    return this.img_projection[2].forward(be, geluErf(h, h), n);
  }

  /**
   * The image processor's batch → per image [numImgTokens_i, lmHidden].
   * pixelValues [nImg, maxCrops, 3, S, S] (crop 0 = global), attentionMask [nImg, maxCrops, side, side],
   * imageSizes [h, w] of each padded canvas (multiples of crop_size). Only crops[:1+gh·gw] of each image
   * are run; the batch padding crops are skipped. numImgTokens (the processor's count), when given, is checked.
   */
  encode(be: Backend, pixelValues: Float32Array, attentionMask: Float32Array, imageSizes: Array<[number, number]>, numImgTokens?: number[]): Float32Array[] {
    const nImg = imageSizes.length, s = this.cfg.image_size, cropLen = NUM_CHANNELS * s * s, maskLen = this.side * this.side;
    if (nImg === 0) return [];
    const maxCrops = pixelValues.length / (nImg * cropLen);
    if (!Number.isInteger(maxCrops) || maxCrops < 1) throw new Error(`image encoder: pixel values hold ${pixelValues.length} floats, not a multiple of ${nImg} images x [${NUM_CHANNELS}, ${s}, ${s}] crops`);
    if (attentionMask.length !== nImg * maxCrops * maskLen) throw new Error(`image encoder: attention mask holds ${attentionMask.length} floats, expected [${nImg}, ${maxCrops}, ${this.side}, ${this.side}] to match the pixel values`);
    if (numImgTokens && numImgTokens.length !== nImg) throw new Error(`image encoder: ${numImgTokens.length} token counts given for ${nImg} images`);
    const seen = new CropFeatures((pixels, mask) => this.cropFeatures(be, pixels, mask));
    return imageSizes.map(([h, w], i) => {
      if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0 && h % s === 0 && w % s === 0)) throw new Error(`image ${i}: image size [h=${h}, w=${w}] must be positive multiples of the crop size ${s}`);
      const gh = h / s, gw = w / s;
      if (1 + gh * gw > maxCrops) throw new Error(`image ${i}: a ${h}x${w} canvas needs 1 + ${gh}x${gw} crops but the batch holds ${maxCrops} crops per image`);
      const base = i * maxCrops;
      const mask = (k: number): Float32Array => attentionMask.subarray((base + k) * maskLen, (base + k + 1) * maskLen);
      // useful region: a token is kept iff the top-left patch of its 2×2 cell is valid, i.e. ceil(valid/2)
      let usefulH = 0, usefulW = 0;
      for (let r = 0; r < gh; r++) usefulH += Math.ceil(validPatchExtent(mask(1 + r * gw), this.side).rows / POOL);
      for (let c = 0; c < gw; c++) usefulW += Math.ceil(validPatchExtent(mask(1 + c), this.side).cols / POOL);
      const n = usefulH * (usefulW + 1) + 1 + this.pooledSide * (this.pooledSide + 1);
      if (numImgTokens && numImgTokens[i] !== n) throw new Error(`image ${i}: the processor announced ${numImgTokens[i]} image tokens but its masks and size [${h}, ${w}] give ${n}; pass the processor's outputs unchanged`);
      const crops = Array.from({ length: 1 + gh * gw }, (_, k) => seen.features(pixelValues.subarray((base + k) * cropLen, (base + k + 1) * cropLen), mask(k)));
      return this.project(be, this.assemble(crops, gh, gw, usefulH, usefulW), n);
    });
  }
}

/**
 * Crop features computed once per distinct (pixels, patch mask) of an `encode` call. SigLIP runs each crop on
 * its own, so equal inputs give equal features and reusing them is exact. It pays for one-crop images: when
 * the HD grid is 1×1 and the canvas is the crop size (a 448×448 image), the global view is the HD crop
 * resized 448 → 448, which the processor leaves unchanged, so without this SigLIP would run twice on the same
 * input. Equal images in one batch share their crops the same way.
 */
class CropFeatures {
  private readonly done: Array<{ hash: number; pixels: Float32Array; mask: Float32Array; features: Float32Array }> = [];

  constructor(private readonly compute: (pixels: Float32Array, mask: Float32Array) => Float32Array) {}

  features(pixels: Float32Array, mask: Float32Array): Float32Array {
    const hash = fingerprint(pixels) ^ Math.imul(fingerprint(mask), 0x9e3779b1);
    const hit = this.done.find((d) => d.hash === hash && sameBytes(d.pixels, pixels) && sameBytes(d.mask, mask));
    if (hit) return hit.features;
    const features = this.compute(pixels, mask);
    this.done.push({ hash, pixels, mask, features });
    return features;
  }
}

/** FNV-1a over the 32-bit words of the values: a cheap filter before the byte comparison. */
function fingerprint(x: Float32Array): number {
  const w = new Int32Array(x.buffer, x.byteOffset, x.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
  return h;
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
