// Phi-4-multimodal image preprocessing: pixels → crop tensors, masks and token counts.
// Bit-exact port of the reference (processing_phi4mm.py with PIL + torch, see SPEC §3):
//   grid choice → PIL BILINEAR resize (fixed point) → white pad → (x/255−0.5)/0.5 in float32
//   → global image = torch bicubic (a=−0.75) of the normalised canvas, then row-major 448² crops.
import type { RgbImage } from '../../io/image.js';
import { pilResizeBilinear, torchBicubicResize } from './image_resample.js';

const f32 = Math.fround;

export { fmaf, pilResizeBilinear, torchBicubicResize } from './image_resample.js';

export const CROP_SIZE = 448; // px, side of one crop and of the global image
export const PATCH_SIZE = 14; // px, SigLIP patch
export const MASK_SIZE = CROP_SIZE / PATCH_SIZE; // 32 patches per crop side
export const DEFAULT_DYNAMIC_HD = 36; // max crops (preprocessor_config.json `dynamic_hd`)
const MIN_CROPS = 1; // `min_num` of dynamic_preprocess
const MIN_RESIZED_SIDE = 10; // px; the reference rejects smaller resized sides ("aspect ratio is very extreme")
const GLOBAL_TOKENS = 16 * (16 + 1); // 16×16 pooled global features + one newline per row
const GLOBAL_SEPARATOR_TOKENS = 1; // glb_GN

export interface ImageProcessorConfig {
  dynamicHd?: number;
  cropSize?: 448;
  patchSize?: 14;
  mean?: number[];
  std?: number[];
}

export interface ProcessedImages {
  pixelValues: Float32Array; // [nImg, maxCrops, 3, 448, 448], crop 0 = global, padding crops = 0
  maxCrops: number;
  attentionMask: Float32Array; // [nImg, maxCrops, 32, 32], padding crops = 1
  imageSizes: Array<[number, number]>; // [h, w] of the padded canvas
  numImgTokens: number[];
  grids: Array<[number, number]>; // [w_crops, h_crops]
}

/** Geometry of one image: grid, resized size and padding (everything except pixels). */
export interface ImagePlan {
  grid: [number, number]; // [w_crops, h_crops]
  canvasWidth: number; // TW = 448·w_crops
  canvasHeight: number; // TH = 448·h_crops
  resizedWidth: number;
  resizedHeight: number;
  padWidth: number; // white columns on the right
  padHeight: number; // white rows at the bottom
  validPatchCols: number; // unmasked patch columns of the whole canvas
  validPatchRows: number;
  numImgTokens: number;
}

// ---------------------------------------------------------------- grid choice

/**
 * `(w_crops, h_crops)` candidates in the exact order the reference iterates them:
 * `sorted(set((i, j) for n … for i … for j … if min <= i*j <= max), key=i*j)` under CPython 3.11.
 * Equal-area ties keep CPython's set iteration order, which matters for the tie rule, so the set is simulated.
 */
export function targetRatioCandidates(maxNum: number, minNum = MIN_CROPS): Array<[number, number]> {
  const cached = candidateCache.get(`${maxNum},${minNum}`);
  if (cached) return cached;
  const set = new CPythonTupleSet();
  for (let n = minNum; n <= maxNum; n++) {
    for (let i = 1; i <= n; i++) {
      for (let j = 1; j <= n; j++) if (i * j >= minNum && i * j <= maxNum) set.add(i, j);
    }
  }
  const order = set.items().sort((a, b) => a[0] * a[1] - b[0] * b[1]); // Array.sort is stable, like sorted()
  candidateCache.set(`${maxNum},${minNum}`, order);
  return order;
}
const candidateCache = new Map<string, Array<[number, number]>>();

/** Grid `[w_crops, h_crops]`: plain ceil grid, or the closest aspect ratio when that exceeds `dynamicHd` crops. */
export function chooseGrid(width: number, height: number, dynamicHd = DEFAULT_DYNAMIC_HD): [number, number] {
  const wc = Math.ceil(width / CROP_SIZE), hc = Math.ceil(height / CROP_SIZE);
  if (wc * hc <= dynamicHd) return [wc, hc];
  const aspect = width / height, area = width * height;
  let best: [number, number] = [1, 1], bestDiff = Infinity;
  for (const cand of targetRatioCandidates(dynamicHd)) {
    const diff = Math.abs(aspect - cand[0] / cand[1]);
    if (diff < bestDiff) { bestDiff = diff; best = cand; }
    else if (diff === bestDiff && area > 0.5 * CROP_SIZE * CROP_SIZE * cand[0] * cand[1]) best = cand; // reference tie rule
  }
  return best;
}

/** Grid, resize target, padding, mask extent and token count of a `width`×`height` image. */
export function planImage(width: number, height: number, dynamicHd = DEFAULT_DYNAMIC_HD): ImagePlan {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`image size must be positive integers, got ${width}×${height}`);
  }
  if (!Number.isInteger(dynamicHd) || dynamicHd < 1) throw new Error(`dynamic_hd must be a positive integer, got ${dynamicHd}`);
  const grid = chooseGrid(width, height, dynamicHd);
  const tw = CROP_SIZE * grid[0], th = CROP_SIZE * grid[1];
  const rw = tw / width, rh = th / height; // float64, same evaluation order as the reference
  let newW: number, newH: number;
  if (rw < rh) { newW = tw; newH = Math.trunc(height * rw); } else { newW = Math.trunc(width * rh); newH = th; }
  const padW = tw - newW, padH = th - newH;
  const validPatchCols = MASK_SIZE * grid[0] - (padW >= PATCH_SIZE ? Math.floor(padW / PATCH_SIZE) : 0);
  const validPatchRows = MASK_SIZE * grid[1] - (padH >= PATCH_SIZE ? Math.floor(padH / PATCH_SIZE) : 0);
  if (Math.min(newH, th) < MIN_RESIZED_SIDE || Math.min(newW, tw) < MIN_RESIZED_SIDE || validPatchCols < 1 || validPatchRows < 1) {
    throw new Error(`image ${width}×${height} has a too extreme aspect ratio: it would be resized to ${newW}×${newH} ` +
      `inside a ${grid[0]}×${grid[1]} crop grid (each side must stay ≥ ${MIN_RESIZED_SIDE} px); crop or pad it first`);
  }
  // Pooled 2×2 cells count when their top-left patch is valid → ceil(valid/2) per axis (SPEC §3.7).
  const usefulH = Math.ceil(validPatchRows / 2), usefulW = Math.ceil(validPatchCols / 2);
  const numImgTokens = usefulH * (usefulW + 1) + GLOBAL_SEPARATOR_TOKENS + GLOBAL_TOKENS;
  return { grid, canvasWidth: tw, canvasHeight: th, resizedWidth: newW, resizedHeight: newH, padWidth: padW, padHeight: padH,
    validPatchCols, validPatchRows, numImgTokens };
}

/** Number of image placeholder tokens for a `width`×`height` image, without touching pixels. */
export function computeNumImageTokens(width: number, height: number, cfg: ImageProcessorConfig = {}): number {
  return planImage(width, height, cfg.dynamicHd ?? DEFAULT_DYNAMIC_HD).numImgTokens;
}

// ---------------------------------------------------------------- CPython set order

const U64 = (1n << 64n) - 1n;
const XXPRIME_1 = 11400714785074694791n;
const XXPRIME_2 = 14029467366897019727n;
const XXPRIME_5 = 2870177450012600261n;
const SET_MIN_SIZE = 8; // PySet_MINSIZE
const LINEAR_PROBES = 9;
const PERTURB_SHIFT = 5n;

/** CPython ≥ 3.8 `hash((a, b))` for small non-negative ints, as the unsigned 64-bit value the set probes with. */
function tupleHash2(a: number, b: number): bigint {
  let acc = XXPRIME_5;
  for (const lane of [BigInt(a), BigInt(b)]) { // hash(int) = int for small ints
    acc = (acc + lane * XXPRIME_2) & U64;
    acc = ((acc << 31n) | (acc >> 33n)) & U64;
    acc = (acc * XXPRIME_1) & U64;
  }
  acc = (acc + (2n ^ (XXPRIME_5 ^ 3527539n))) & U64;
  return acc === U64 ? 1546275796n : acc;
}

/** Just enough of CPython 3.11's setobject.c (insert + resize, no deletes) to reproduce its iteration order. */
class CPythonTupleSet {
  private table: Array<{ key: [number, number]; hash: bigint } | undefined> = new Array(SET_MIN_SIZE);
  private used = 0;

  add(a: number, b: number): void {
    const hash = tupleHash2(a, b);
    const mask = this.table.length - 1;
    const slot = this.probe(this.table, hash, (e) => e.hash === hash && e.key[0] === a && e.key[1] === b);
    if (slot < 0) return; // already present
    this.table[slot] = { key: [a, b], hash };
    this.used++; // fill == used without deletions
    if (this.used * 5 >= mask * 3) this.resize(this.used > 50000 ? this.used * 2 : this.used * 4);
  }

  items(): Array<[number, number]> {
    return this.table.filter((e) => e !== undefined).map((e) => e!.key);
  }

  /** First free slot on the probe sequence of `hash`, or −1 when `isSame` matches an entry on the way. */
  private probe(table: CPythonTupleSet['table'], hash: bigint, isSame: (e: { key: [number, number]; hash: bigint }) => boolean): number {
    const mask = BigInt(table.length - 1);
    let perturb = hash, i = hash & mask;
    for (;;) {
      const probes = i + BigInt(LINEAR_PROBES) <= mask ? LINEAR_PROBES : 0;
      for (let k = 0; k <= probes; k++) {
        const e = table[Number(i) + k];
        if (e === undefined) return Number(i) + k;
        if (isSame(e)) return -1;
      }
      perturb >>= PERTURB_SHIFT;
      i = (i * 5n + 1n + perturb) & mask;
    }
  }

  private resize(minUsed: number): void {
    let size = SET_MIN_SIZE;
    while (size <= minUsed) size <<= 1;
    const old = this.table;
    this.table = new Array(size);
    for (const e of old) if (e) this.table[this.probe(this.table, e.hash, () => false)] = e;
  }
}

// ---------------------------------------------------------------- canvas, mask, tensors

/** Resize to fit the grid (PIL bilinear) and pad right/bottom with white: [TH, TW, 3] uint8. */
export function makeCanvas(img: RgbImage, plan: ImagePlan): RgbImage {
  const resized = pilResizeBilinear(img, plan.resizedWidth, plan.resizedHeight);
  const { canvasWidth: tw, canvasHeight: th } = plan;
  if (resized.width === tw && resized.height === th) return resized;
  const data = new Uint8Array(th * tw * 3).fill(255);
  for (let y = 0; y < resized.height; y++) {
    data.set(resized.data.subarray(y * resized.width * 3, (y + 1) * resized.width * 3), y * tw * 3);
  }
  return { width: tw, height: th, data };
}

/** Patch mask of the whole canvas: [32·h_crops, 32·w_crops], 1 = valid, trailing padded patches 0. */
export function canvasMask(plan: ImagePlan): Float32Array {
  const rows = MASK_SIZE * plan.grid[1], cols = MASK_SIZE * plan.grid[0];
  const m = new Float32Array(rows * cols);
  for (let r = 0; r < plan.validPatchRows; r++) m.fill(1, r * cols, r * cols + plan.validPatchCols);
  return m;
}

/** uint8 → float32 value of `Normalize(mean, std)(ToTensor(x))`, per channel: [3, 256]. */
function normalisationTable(mean: number[], std: number[]): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = f32(mean[c]!), s = f32(std[c]!);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f32(f32(f32(v / 255) - m) / s);
  }
  return lut;
}

/** Normalised canvas as float32 CHW: [3, TH, TW]. */
function normaliseCanvas(canvas: RgbImage, lut: Float32Array): Float32Array {
  const n = canvas.width * canvas.height;
  const out = new Float32Array(3 * n);
  const d = canvas.data;
  for (let p = 0; p < n; p++) {
    out[p] = lut[d[p * 3]!]!;
    out[n + p] = lut[256 + d[p * 3 + 1]!]!;
    out[2 * n + p] = lut[512 + d[p * 3 + 2]!]!;
  }
  return out;
}

const DEFAULT_MEAN = [0.5, 0.5, 0.5];
const DEFAULT_STD = [0.5, 0.5, 0.5];
const CROP_PIXELS = CROP_SIZE * CROP_SIZE;
const CROP_VALUES = 3 * CROP_PIXELS; // one [3, 448, 448] crop
const MASK_VALUES = MASK_SIZE * MASK_SIZE;

function checkConfig(cfg: ImageProcessorConfig): { dynamicHd: number; mean: number[]; std: number[] } {
  if (cfg.cropSize !== undefined && cfg.cropSize !== CROP_SIZE) throw new Error(`cropSize must be ${CROP_SIZE}, got ${cfg.cropSize}`);
  if (cfg.patchSize !== undefined && cfg.patchSize !== PATCH_SIZE) throw new Error(`patchSize must be ${PATCH_SIZE}, got ${cfg.patchSize}`);
  const mean = cfg.mean ?? DEFAULT_MEAN, std = cfg.std ?? DEFAULT_STD;
  if (mean.length !== 3 || std.length !== 3 || std.some((s) => !(s !== 0 && Number.isFinite(s)))) {
    throw new Error(`mean/std must be 3 finite values per channel (std non-zero), got mean=${mean}, std=${std}`);
  }
  return { dynamicHd: cfg.dynamicHd ?? DEFAULT_DYNAMIC_HD, mean, std };
}

function checkImage(img: RgbImage, k: number): void {
  if (!(Number.isInteger(img.width) && Number.isInteger(img.height) && img.width > 0 && img.height > 0)) {
    throw new Error(`image ${k}: size must be positive integers, got ${img.width}×${img.height}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`image ${k}: expected ${img.width}×${img.height}×3 = ${img.width * img.height * 3} RGB bytes, got ${img.data.length}`);
  }
}

/** One image → its `1 + gw·gh` crops ([global, tiles…], each [3, 448, 448]) and masks, written at `pix`/`mask`. */
function processOne(img: RgbImage, plan: ImagePlan, lut: Float32Array, pix: Float32Array, mask: Float32Array): void {
  const canvas = makeCanvas(img, plan);
  const hd = normaliseCanvas(canvas, lut); // [3, TH, TW]
  const [gw, gh] = plan.grid;
  const tw = plan.canvasWidth, th = plan.canvasHeight;
  pix.set(torchBicubicResize(hd, 3, th, tw, CROP_SIZE, CROP_SIZE), 0);
  mask.fill(1, 0, MASK_VALUES); // global crop: all valid
  const full = canvasMask(plan); // [32·gh, 32·gw]
  for (let row = 0; row < gh; row++) {
    for (let col = 0; col < gw; col++) {
      const k = 1 + row * gw + col;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < CROP_SIZE; y++) {
          const src = (c * th + row * CROP_SIZE + y) * tw + col * CROP_SIZE;
          pix.set(hd.subarray(src, src + CROP_SIZE), k * CROP_VALUES + c * CROP_PIXELS + y * CROP_SIZE);
        }
      }
      for (let y = 0; y < MASK_SIZE; y++) {
        const src = (row * MASK_SIZE + y) * gw * MASK_SIZE + col * MASK_SIZE;
        mask.set(full.subarray(src, src + MASK_SIZE), k * MASK_VALUES + y * MASK_SIZE);
      }
    }
  }
}

/**
 * The reference processor on a batch: per image global + row-major crops, padded to the batch's largest crop count
 * (pixel padding 0, mask padding 1).
 */
export function processImages(images: RgbImage[], cfg: ImageProcessorConfig = {}): ProcessedImages {
  if (images.length === 0) throw new Error('processImages needs at least one image');
  const { dynamicHd, mean, std } = checkConfig(cfg);
  images.forEach(checkImage);
  const plans = images.map((img) => planImage(img.width, img.height, dynamicHd));
  const maxCrops = Math.max(...plans.map((p) => 1 + p.grid[0] * p.grid[1]));
  const pixelValues = new Float32Array(images.length * maxCrops * CROP_VALUES);
  const attentionMask = new Float32Array(images.length * maxCrops * MASK_VALUES).fill(1);
  const lut = normalisationTable(mean, std);
  images.forEach((img, i) => {
    processOne(img, plans[i]!, lut,
      pixelValues.subarray(i * maxCrops * CROP_VALUES, (i + 1) * maxCrops * CROP_VALUES),
      attentionMask.subarray(i * maxCrops * MASK_VALUES, (i + 1) * maxCrops * MASK_VALUES));
  });
  return {
    pixelValues, maxCrops, attentionMask,
    imageSizes: plans.map((p) => [p.canvasHeight, p.canvasWidth]),
    numImgTokens: plans.map((p) => p.numImgTokens),
    grids: plans.map((p) => p.grid),
  };
}
