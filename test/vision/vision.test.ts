// Image branch (SigLIP tower, pooling, HD assembly, projection) against the reference's outputs on the tiny
// random model (golden c_vision), fed with the reference image processor's tensors (golden b_image_processor).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import { checkpointProvider, StrictWeights, WeightLoadError, type TensorProvider } from '../../src/nn/weights.js';
import { IMAGE_EMBED_PREFIX, Phi4MMImageEmbedding, type VisionConfig } from '../../src/models/phi4mm/vision.js';
import { keyPaddingMask, MASK_MIN, siglipPositionIds } from '../../src/models/phi4mm/vision_siglip.js';
import { createBackend, type Backend } from '../../src/tensor/backend.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { expectClose, golden, goldenPath } from '../helpers/golden.js';

// README §10: the vision tower's float32-vs-float64 error is ~1e-6 (1.5e-6 after pooling, 1.1e-6 projected,
// values up to ~4); 1e-4 leaves room for a different summation order and still catches any real slip.
const TOL = { atol: 1e-4, rtol: 1e-4 };

const hfConfig = JSON.parse(readFileSync(goldenPath('model_hf', 'config.json'), 'utf8'));
const cfg: VisionConfig = hfConfig.vision_config;
const lmHidden: number = hfConfig.hidden_size;
const bip = () => golden('b_image_processor');
const cv = () => golden('c_vision');

/** model_orig, keeping only the image branch's tensors (the rest belongs to other modules). */
function provider(filter: (n: string) => boolean = () => true, reads?: string[]): TensorProvider {
  const p = checkpointProvider(SafetensorsCheckpoint.open(goldenPath('model_orig')), 'model_orig');
  const names = p.names().filter((n) => n.startsWith(`${IMAGE_EMBED_PREFIX}.`) && filter(n));
  return { ...p, names: () => names, readF32: (n) => (reads?.push(n), p.readF32(n)), readRaw: (n) => (reads?.push(n), p.readRaw(n)) };
}

function load(src: TensorProvider): Phi4MMImageEmbedding {
  const ws = new StrictWeights(src);
  const m = new Phi4MMImageEmbedding(ws, cfg, lmHidden);
  ws.finish();
  return m;
}

const S = cfg.image_size, SIDE = S / cfg.patch_size, CROP = 3 * S * S, MASK = SIDE * SIDE;

/**
 * The processor's `image_pixel_values` [nImg, maxCrops, 3, S, S], rebuilt as the b_image_processor sidecar
 * says (`pixel_values_reconstruction`): crop 0 = `K.global_image` (A: its single HD crop), crop 1+c = the
 * row-major S×S tile c of ((canvas_u8/255)-0.5)/0.5 in float32 CHW, the rest zeros.
 */
function pixelValues(keys: string[], maxCrops: number): Float32Array {
  const g = bip(), out = new Float32Array(keys.length * maxCrops * CROP);
  keys.forEach((key, i) => {
    const canvas = g.raw(`${key}.canvas_u8`), [h, w] = g.tensor(`${key}.dynamic_mask`).shape.map((d) => d * cfg.patch_size) as [number, number];
    expect(canvas.length).toBe(h * w * 3);
    const gw = w / S, gh = h / S;
    for (let t = 0; t < gh * gw; t++) {
      const dst = out.subarray((i * maxCrops + 1 + t) * CROP, (i * maxCrops + 2 + t) * CROP);
      const y0 = Math.floor(t / gw) * S, x0 = (t % gw) * S;
      for (let ch = 0; ch < 3; ch++)
        for (let y = 0; y < S; y++)
          for (let x = 0; x < S; x++) {
            const u = canvas[((y0 + y) * w + x0 + x) * 3 + ch]!;
            dst[(ch * S + y) * S + x] = Math.fround(Math.fround(Math.fround(u / 255) - 0.5) / 0.5);
          }
    }
    const global = out.subarray(i * maxCrops * CROP, (i * maxCrops + 1) * CROP);
    global.set(g.has(`${key}.global_image`) ? g.tensor(`${key}.global_image`).data : out.subarray((i * maxCrops + 1) * CROP, (i * maxCrops + 2) * CROP));
  });
  return out;
}

describe('Phi4MMImageEmbedding', () => {
  const be: Backend = new ReferenceBackend();
  let model: Phi4MMImageEmbedding;
  let pixels: Float32Array, masks: Float32Array, sizes: Array<[number, number]>, maxCrops: number;
  const reads: string[] = [];

  beforeAll(() => {
    model = load(provider(undefined, reads));
    const m = bip().tensor('image_attention_mask');
    maxCrops = m.shape[1]!;
    masks = m.data;
    pixels = pixelValues(Object.keys(bip().json.images), maxCrops);
    const s = bip().tensor('image_sizes').data;
    sizes = Array.from({ length: s.length / 2 }, (_, i) => [s[2 * i]!, s[2 * i + 1]!] as [number, number]);
  });
  const crop = (k: number) => pixels.subarray(k * CROP, (k + 1) * CROP);
  const mask = (k: number) => masks.subarray(k * MASK, (k + 1) * MASK);

  it('loads every image-branch tensor, reading none of the discarded last layer, post_layernorm or head', () => {
    expect(reads.length).toBeGreaterThan(0);
    const discarded = reads.filter((n) => /encoder\.layers\.1\.|post_layernorm|\.head\./.test(n));
    expect(discarded).toEqual([]);
    expect(model.img_processor.encoder.layers).toHaveLength(cfg.num_hidden_layers - 1);
  });

  it('reports a missing tensor by name', () => {
    const gone = `${IMAGE_EMBED_PREFIX}.img_projection.2.bias`;
    expect(() => load(provider((n) => n !== gone))).toThrow(WeightLoadError);
    expect(() => load(provider((n) => n !== gone))).toThrow(gone);
  });

  it('bucketises NaViT position ids exactly like the reference (all 9 crop slots)', () => {
    const ref = cv().tensor('siglip_position_ids');
    expect(ref.shape).toEqual([sizes.length * maxCrops, MASK]);
    for (let k = 0; k < ref.shape[0]!; k++) expect(Array.from(siglipPositionIds(mask(k), SIDE)), `crop slot ${k}`).toEqual(Array.from(ref.data.subarray(k * MASK, (k + 1) * MASK)));
  });

  it('builds the additive key mask only for crops with padded patches', () => {
    expect(keyPaddingMask(mask(0))).toBeUndefined(); // A's global crop: all valid
    const m = keyPaddingMask(mask(1))!; // A's HD crop: 24 valid rows
    expect(m[0 * MASK + 23 * SIDE]).toBe(0);
    expect(m[5 * MASK + 24 * SIDE]).toBe(MASK_MIN);
  });

  it('matches the SigLIP embeddings and layer-0 output of image A (global + HD crop)', () => {
    const emb = cv().tensor('A.siglip.embeddings'), l0 = cv().tensor('A.siglip.layer0_out');
    const c = cfg.hidden_size;
    for (let k = 0; k < 2; k++) {
      const ref = (t: typeof emb) => t.data.subarray(k * MASK * c, (k + 1) * MASK * c);
      expectClose(model.img_processor.forward(be, crop(k), mask(k), 0), ref(emb), TOL, `A crop ${k} embeddings`);
      expectClose(model.img_processor.forward(be, crop(k), mask(k), 1), ref(l0), TOL, `A crop ${k} layer0_out`);
    }
  });

  it('matches the pooled features of every crop slot, padding slots included', () => {
    const ref = cv().tensor('img_features_after_avgpool');
    const n = ref.shape[0]!, per = ref.shape[1]! * ref.shape[2]!;
    expect(n).toBe(sizes.length * maxCrops);
    for (let k = 0; k < n; k++) expectClose(model.cropFeatures(be, crop(k), mask(k)), ref.data.subarray(k * per, (k + 1) * per), TOL, `crop slot ${k}`);
  });

  it('encodes the batch A, B, C into the projected token blocks', () => {
    const ref = cv().tensor('projected_all_images');
    const offsets: number[] = cv().json.token_offsets;
    const counts = Array.from(bip().tensor('num_img_tokens').data);
    const out = model.encode(be, pixels, masks, sizes, counts);
    expect(out.map((o) => o.length / lmHidden)).toEqual(counts);
    out.forEach((o, i) => {
      expect(offsets[i + 1]! - offsets[i]!).toBe(counts[i]);
      expectClose(o, ref.data.subarray(offsets[i]! * lmHidden, offsets[i + 1]! * lmHidden), TOL, `image ${'ABC'[i]}`);
    });
  });

  it('runs SigLIP once per distinct crop: the global view of a 448×448 image equals its HD crop (exact reuse)', () => {
    // Two one-crop images with all-valid masks, both [global, crop] = A's global view: four crop slots, one input.
    const a = crop(0), two = new Float32Array(4 * CROP), ones = new Float32Array(4 * MASK).fill(1);
    for (let k = 0; k < 4; k++) two.set(a, k * CROP);
    const forward = model.img_processor.forward.bind(model.img_processor);
    let runs = 0;
    model.img_processor.forward = (...args) => (runs++, forward(...args));
    try {
      const out = model.encode(be, two, ones, [[S, S], [S, S]]);
      expect(runs).toBe(1);
      const f = model.cropFeatures(be, a, ones.subarray(0, MASK)), ps = S / cfg.patch_size / 2;
      const want = model.project(be, model.assemble([f, f], 1, 1, ps, ps), out[0]!.length / lmHidden);
      expect(out[0]).toEqual(want);
      expect(out[1]).toEqual(want);
      runs = 0;
      const changed = Float32Array.from(two);
      changed[CROP + 5] += 0.5; // image 0's HD crop now differs from its global view in one value
      model.encode(be, changed, ones, [[S, S], [S, S]]);
      expect(runs).toBe(2);
    } finally {
      model.img_processor.forward = forward;
    }
  });

  it('rejects inconsistent inputs with clear errors', () => {
    const one = pixels.subarray(0, maxCrops * CROP), oneMask = masks.subarray(0, maxCrops * MASK);
    expect(model.encode(be, one, oneMask, [])).toEqual([]);
    expect(() => model.encode(be, one.subarray(1), oneMask, [[448, 448]])).toThrow(/pixel values/);
    expect(() => model.encode(be, one, oneMask.subarray(1), [[448, 448]])).toThrow(/attention mask/);
    expect(() => model.encode(be, one, oneMask, [[448, 450]])).toThrow(/multiples of the crop size/);
    expect(() => model.encode(be, one, oneMask, [[896, 896]])).toThrow(/needs 1 \+ 2x2 crops but the batch holds 3/);
    expect(() => model.encode(be, one, oneMask, [[448, 448]], [1, 2])).toThrow(/2 token counts given for 1 images/);
    expect(() => model.encode(be, one, oneMask, [[448, 448]], [545])).toThrow(/announced 545 image tokens but .* give 477/);
    const holed = Float32Array.from(oneMask);
    holed[MASK + 3] = 0; // a hole in A's HD crop: not a top-left rectangle
    expect(() => model.encode(be, one, holed, [[448, 448]])).toThrow(/top-left rectangle/);
  });
});

describe('vision config validation', () => {
  const build = (patch: Partial<VisionConfig>) => new Phi4MMImageEmbedding(new StrictWeights(provider()), { ...cfg, ...patch }, lmHidden);
  it('rejects a feature layer outside the hidden states and a crop size other than the SigLIP input size', () => {
    expect(() => build({ feature_layer: cfg.num_hidden_layers + 1 })).toThrow(/feature_layer 3 is outside the 3 hidden states/);
    expect(() => build({ crop_size: 336 })).toThrow(/crop_size 336 must equal image_size 448/);
  });
  it('loads the last layer too when the features are the last hidden state', () => {
    expect(build({ feature_layer: -1 }).img_processor.encoder.layers).toHaveLength(cfg.num_hidden_layers);
  });
});

describe('Phi4MMImageEmbedding on the auto backend', async () => {
  const auto = await createBackend('auto');
  it.skipIf(auto.name !== 'native')('gives the reference results on the native backend', () => {
    const model = load(provider());
    const m = bip().tensor('image_attention_mask'), pv = { data: pixelValues(Object.keys(bip().json.images), m.shape[1]!) };
    const ref = cv().tensor('img_features_after_avgpool'), per = ref.shape[1]! * ref.shape[2]!;
    for (const k of [1, 4]) // A's HD crop (24 valid rows) and B's first HD crop (31 valid cols)
      expectClose(model.cropFeatures(auto, pv.data.subarray(k * CROP, (k + 1) * CROP), m.data.subarray(k * MASK, (k + 1) * MASK)), ref.data.subarray(k * per, (k + 1) * per), TOL, `native crop slot ${k}`);
  });
});
