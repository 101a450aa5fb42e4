import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeImage, type RgbImage } from '../../src/io/image.js';
import {
  canvasMask, chooseGrid, computeNumImageTokens, CROP_SIZE, fmaf, makeCanvas, MASK_SIZE, pilResizeBilinear, planImage,
  processImages, targetRatioCandidates, torchBicubicResize,
} from '../../src/models/phi4mm/image_processor.js';
import { expectClose, golden, goldenPath, specJson } from '../helpers/golden.js';

const CROP = 3 * CROP_SIZE * CROP_SIZE; // values in one [3, 448, 448] crop
const MASK = MASK_SIZE * MASK_SIZE;
const input = (name: string) => decodeImage(new Uint8Array(readFileSync(goldenPath('inputs', name))));
const g = golden('b_image_processor');
// Image C goes in as the PIL decode (.decoded.png), so the processor is tested independently of the JPEG decoder.
const IMAGES: Record<string, RgbImage> = {
  A: input('image_A_320x240.png'),
  B: input('image_B_300x620_rgba.png'),
  C: input('image_C_700x260.decoded.png'),
};
const KEYS = ['A', 'B', 'C'] as const;
const batch = processImages(KEYS.map((k) => IMAGES[k]!));
const ints = (key: string) => Array.from(g.tensor(key).data);

/** Exact array equality with a short message (vitest's deep diff of megabyte arrays takes seconds). */
function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let bad = 0, first = -1;
  for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) { bad++; if (first < 0) first = i; }
  expect(bad, `${label}: ${bad} values differ, first at [${first}]: ${actual[first]} vs ${expected[first]}`).toBe(0);
}

/** Expected crop c of an image per the fixture's reconstruction rule: ((canvas_u8/255) − 0.5)/0.5 in float32, CHW. */
function expectedCrop(canvas: Uint8Array, hw: number[], c: number): Float32Array {
  const [h, w] = hw as [number, number], gw = w / CROP_SIZE;
  const row = Math.floor(c / gw), col = c % gw;
  const out = new Float32Array(CROP);
  for (let ch = 0; ch < 3; ch++) for (let y = 0; y < CROP_SIZE; y++) for (let x = 0; x < CROP_SIZE; x++) {
    const u = canvas[((row * CROP_SIZE + y) * w + col * CROP_SIZE + x) * 3 + ch]!;
    out[(ch * CROP_SIZE + y) * CROP_SIZE + x] = Math.fround(Math.fround(Math.fround(u / 255) - 0.5) / 0.5);
  }
  expect(h % CROP_SIZE).toBe(0);
  return out;
}

describe('golden b_image_processor (batch A, B, C)', () => {
  it.each(KEYS)('%s: uint8 canvas is bit-exact (PIL bilinear + white pad)', (k) => {
    const img = IMAGES[k]!;
    const canvas = makeCanvas(img, planImage(img.width, img.height));
    expect([canvas.height, canvas.width]).toEqual(g.json.images[k].canvas_hw);
    expectSame(canvas.data, g.raw(`${k}.canvas_u8`), `${k} canvas`);
  });

  it.each(KEYS)('%s: dynamic mask and counts', (k) => {
    const img = IMAGES[k]!;
    const plan = planImage(img.width, img.height);
    expectSame(canvasMask(plan), g.tensor(`${k}.dynamic_mask`).data, `${k} mask`);
    expect([plan.validPatchRows, plan.validPatchCols]).toEqual(g.json.images[k].mask_valid_rows_cols);
    expect(plan.grid[0] * plan.grid[1]).toBe(g.json.images[k].hd_crops);
  });

  it('batch outputs: sizes, tokens, masks, crop count', () => {
    expect(batch.maxCrops).toBe(g.json.pixel_values_shape[1]);
    expect(batch.imageSizes.flat()).toEqual(ints('image_sizes'));
    expect(batch.numImgTokens).toEqual(ints('num_img_tokens'));
    expectSame(batch.attentionMask, g.tensor('image_attention_mask').data, 'attention mask');
    expect(batch.pixelValues.length).toBe(g.json.pixel_values_shape.reduce((a: number, b: number) => a * b, 1));
  });

  it('pixel values: crops, global images and zero padding', () => {
    KEYS.forEach((k, i) => {
      const slot = (c: number) => batch.pixelValues.subarray((i * batch.maxCrops + c) * CROP, (i * batch.maxCrops + c + 1) * CROP);
      const hw = g.json.images[k].canvas_hw, nCrops = g.json.images[k].hd_crops;
      const canvas = g.raw(`${k}.canvas_u8`);
      // The canvas is exact, so only float32 rounding could differ: atol 1e-6 (README §10). We are in fact bit-exact.
      for (let c = 0; c < nCrops; c++) expectClose(slot(1 + c), expectedCrop(canvas, hw, c), { atol: 1e-6 }, `${k} crop ${c}`);
      // Global: torch bicubic of the normalised canvas; A's is its single crop (448→448 is the identity).
      const global = g.has(`${k}.global_image`) ? g.tensor(`${k}.global_image`).data : expectedCrop(canvas, hw, 0);
      expectClose(slot(0), global, { atol: 1e-6 }, `${k} global`);
      for (let c = 1 + nCrops; c < batch.maxCrops; c++) expect(slot(c).every((v) => v === 0), `${k} padding crop ${c}`).toBe(true);
    });
  });

  it('global image is bit-identical to torch (FMA-contracted float32 kernel)', () => {
    for (const [i, k] of [[1, 'B'], [2, 'C']] as const) {
      const ours = batch.pixelValues.subarray(i * batch.maxCrops * CROP, (i * batch.maxCrops + 1) * CROP);
      expectSame(ours, g.tensor(`${k}.global_image`).data, `${k} global`);
    }
  });

  it('D with dynamic_hd=4: aspect-ratio search, canvas, mask, tokens', () => {
    const D = input('image_D_2000x300.png');
    const hd4 = processImages([D], { dynamicHd: 4 });
    const plan = planImage(D.width, D.height, 4);
    expectSame(makeCanvas(D, plan).data, input('canvas_D_dynamic_hd4.png').data, 'D canvas');
    expect(hd4.imageSizes.flat()).toEqual(ints('D_hd4.image_sizes'));
    expect(hd4.imageSizes[0]).toEqual(g.json.D_dynamic_hd4.canvas_hw);
    expect(hd4.numImgTokens).toEqual(ints('D_hd4.num_img_tokens'));
    expectSame(hd4.attentionMask, g.tensor('D_hd4.image_attention_mask').data, 'D mask');
    expect(hd4.maxCrops).toBe(g.tensor('D_hd4.image_attention_mask').shape[1]);
  });
});

describe('spec tables', () => {
  it('candidate grids in CPython set order (target_ratios_order.json)', () => {
    const spec = specJson('target_ratios_order.json');
    expect(targetRatioCandidates(36)).toEqual(spec.dynamic_hd_36);
    expect(targetRatioCandidates(16)).toEqual(spec.dynamic_hd_16);
  });

  it('image_token_examples.json: grid, sizes, shapes, tokens for every row', () => {
    const spec = specJson('image_token_examples.json');
    for (const r of spec.rows) {
      const plan = planImage(r.width, r.height, r.dynamic_hd);
      const label = `${r.width}×${r.height} @${r.dynamic_hd}`;
      expect(plan.grid, label).toEqual(r.grid_wxh);
      expect([plan.canvasHeight, plan.canvasWidth], label).toEqual(r.image_sizes_hw);
      expect([1, 1 + plan.grid[0] * plan.grid[1], 3, CROP_SIZE, CROP_SIZE], label).toEqual(r.pixel_shape);
      expect(computeNumImageTokens(r.width, r.height, { dynamicHd: r.dynamic_hd }), label).toBe(r.num_img_tokens);
    }
    const multi = spec.multi_image_example;
    const plans = multi.images_wh.map(([w, h]: number[]) => planImage(w!, h!));
    expect(plans.map((p: { numImgTokens: number }) => p.numImgTokens)).toEqual(multi.num_img_tokens);
    expect(Math.max(...plans.map((p: { grid: number[] }) => 1 + p.grid[0]! * p.grid[1]!))).toBe(multi.pixel_shape[1]);
  });

  it('golden_image.json: synthetic images end to end', () => {
    for (const c of specJson('golden_image.json').cases) {
      const [, w, h] = /W=(\d+),H=(\d+)/.exec(c.input)!.map(Number) as [number, number, number];
      const data = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { // the generator formula quoted in `input`
        data.set([(7 * x + 13 * y) % 256, (3 * x) % 256, (5 * y) % 256], (y * w + x) * 3);
      }
      const img = { width: w, height: h, data };
      const plan = planImage(w, h);
      const canvas = makeCanvas(img, plan);
      expect([canvas.height, canvas.width]).toEqual(c.hd_canvas_hw);
      expect(canvas.data.reduce((a, b) => a + b, 0)).toBe(c.hd_canvas_uint8_sum);
      for (const [rc, rgb] of Object.entries(c.hd_canvas_uint8_rgb_at_row_col)) {
        const [r, col] = rc.split(',').map(Number) as [number, number];
        expect(Array.from(canvas.data.subarray((r * canvas.width + col) * 3, (r * canvas.width + col) * 3 + 3)), rc).toEqual(rgb);
      }
      const out = processImages([img]);
      expect(out.imageSizes[0]).toEqual(c.image_sizes_hw);
      expect([1, out.maxCrops, 3, CROP_SIZE, CROP_SIZE]).toEqual(c.pixel_values_shape);
      expect(out.numImgTokens[0]).toBe(c.num_img_tokens);
      const validRows = Array.from({ length: out.maxCrops }, (_, k) => {
        let rows = 0;
        for (let y = 0; y < MASK_SIZE; y++) if (out.attentionMask.subarray(k * MASK + y * MASK_SIZE, k * MASK + (y + 1) * MASK_SIZE).some((v) => v > 0)) rows++;
        return rows;
      });
      expect(validRows).toEqual(c.attention_mask_valid_rows_per_crop);
      // Sums of ~600k float32 values: the summation order is unknown, so allow 1e-2 absolute.
      c.crop_sums.forEach((want: number, k: number) => {
        const s = out.pixelValues.subarray(k * CROP, (k + 1) * CROP).reduce((a, b) => a + b, 0);
        expect(Math.abs(s - want), `crop ${k} sum`).toBeLessThan(1e-2);
      });
      for (const [key, want] of Object.entries(c.global_crop0_at_c_row_col)) {
        const [ch, r, col] = key.split(',').map(Number) as [number, number, number];
        expect(out.pixelValues[(ch * CROP_SIZE + r) * CROP_SIZE + col], key).toBe(want); // float32 values stored exactly
      }
    }
  });
});

describe('building blocks', () => {
  it('fmaf rounds once, also at float32 ties that a double sum would hide', () => {
    const a = Math.fround(1 + 2 ** -12); // a² = 1 + 2^-11 + 2^-24: exactly halfway between two float32s
    expect(fmaf(a, a, 2 ** -80)).toBe(1 + 2 ** -11 + 2 ** -23); // just above the tie → up
    expect(fmaf(a, a, -(2 ** -80))).toBe(1 + 2 ** -11); // just below → down
    expect(fmaf(a, a, 0)).toBe(1 + 2 ** -11); // exact tie → even
    expect(fmaf(-a, a, -(2 ** -80))).toBe(-(1 + 2 ** -11 + 2 ** -23));
    expect(fmaf(3, 0.5, 1)).toBe(2.5);
  });

  it('Pillow bilinear: identity at the same size; constant images stay constant', () => {
    const img = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => i * 5) };
    expect(pilResizeBilinear(img, 5, 3).data).toEqual(img.data);
    const flat = { width: 9, height: 7, data: new Uint8Array(9 * 7 * 3).fill(77) };
    for (const [w, h] of [[4, 3], [20, 11], [9, 2], [1, 1]] as const) expect(pilResizeBilinear(flat, w, h).data.every((v) => v === 77)).toBe(true);
  });

  it('torch bicubic: 448→448 is the identity; constants stay constant', () => {
    const x = Float32Array.from({ length: 2 * 6 * 5 }, (_, i) => Math.fround(Math.sin(i)));
    expect(torchBicubicResize(x, 2, 6, 5, 6, 5)).toEqual(x);
    const c = new Float32Array(3 * 8 * 8).fill(Math.fround(0.3));
    expect(torchBicubicResize(c, 3, 8, 8, 4, 3).every((v) => Math.abs(v - Math.fround(0.3)) < 1e-6)).toBe(true);
  });

  it('chooseGrid uses the ceil grid unless it exceeds dynamic_hd', () => {
    expect(chooseGrid(1200, 800)).toEqual([3, 2]);
    expect(chooseGrid(2000, 300, 4)).toEqual(g.json.D_dynamic_hd4.canvas_hw.map((v: number) => v / CROP_SIZE).reverse());
  });

  it('rejects degenerate input with clear errors', () => {
    expect(() => planImage(0, 10)).toThrow(/positive integers/);
    expect(() => planImage(20000, 5)).toThrow(/extreme aspect ratio/);
    expect(() => processImages([])).toThrow(/at least one image/);
    expect(() => processImages([{ width: 2, height: 2, data: new Uint8Array(5) }])).toThrow(/expected 2×2×3 = 12 RGB bytes/);
    expect(() => processImages([IMAGES.A!], { dynamicHd: 0 })).toThrow(/dynamic_hd/);
  });

  it('a 2000×2000 image yields 26 crops with finite values', () => {
    const n = 2000 * 2000 * 3, data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = (i * 7) & 255;
    const out = processImages([{ width: 2000, height: 2000, data }]);
    expect(out.grids[0]).toEqual([5, 5]);
    expect(out.maxCrops).toBe(26);
    expect(out.pixelValues.every((v) => v >= -1.5 && v <= 1.5)).toBe(true);
  });
});
