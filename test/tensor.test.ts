import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { ReferenceBackend } from '../src/tensor/reference.js';
import { avgPool2d, conv1d, conv2d, erfc, geluErf, geluTanh, layerNorm, rmsNorm, softmaxRows } from '../src/tensor/ops.js';
import { encodeBf16 } from '../src/tensor/dtype.js';

describe('Tensor views', () => {
  const t = Tensor.f32(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
  it('transpose, narrow and permute are views that read the right elements', () => {
    const tr = t.transpose(0, 2); // [4, 3, 2]
    expect(tr.shape).toEqual([4, 3, 2]);
    expect(tr.data).toBe(t.data);
    expect(tr.get(3, 1, 1)).toBe(t.get(1, 1, 3));
    const n = t.narrow(2, 1, 2); // [2, 3, 2]
    expect(n.get(1, 2, 1)).toBe(t.get(1, 2, 2));
    expect([...n.contiguous().data]).toEqual([1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    expect(t.permute([1, 0, 2]).contiguous().get(2, 1, 3)).toBe(t.get(1, 2, 3));
  });
  it('reshape copies only a non-contiguous source and checks sizes', () => {
    expect(t.reshape([6, -1]).data).toBe(t.data);
    expect(t.transpose(0, 1).reshape([24]).get(4)).toBe(t.get(1, 0, 0));
    expect(() => t.reshape([5, 5])).toThrow(/cannot reshape/);
  });
  it('decodes bf16 storage to f32', () => {
    const b = new Tensor('bf16', [2, 2], encodeBf16(Float32Array.of(1, -2, 0.5, 3)));
    expect([...b.f32()]).toEqual([1, -2, 0.5, 3]);
  });
});

describe('reference backend', () => {
  const be = new ReferenceBackend();
  it('linear = x·Wᵀ + b with f32 and bf16 weights', () => {
    const x = Float32Array.of(1, 2, 3, 4, 5, 6); // [2, 3]
    const w = Tensor.f32([1, 0, -1, 2, 1, 0], [2, 3]);
    const y = be.linear(x, 2, w, Float32Array.of(0.5, -1));
    expect([...y]).toEqual([1 - 3 + 0.5, 2 + 2 - 1, 4 - 6 + 0.5, 8 + 5 - 1]);
    const wb = new Tensor('bf16', [2, 3], encodeBf16(w.f32()));
    expect([...be.linear(x, 2, wb)]).toEqual([-2, 4, -2, 13]);
  });
  it('matmul with and without a transposed B agree', () => {
    const a = Float32Array.of(1, 2, 3, 4, 5, 6); // [2, 3]
    const b = Float32Array.of(1, 2, 3, 4, 5, 6); // [3, 2]
    const bt = Float32Array.of(1, 3, 5, 2, 4, 6); // [2, 3]
    expect([...be.matmul(a, b, 2, 3, 2)]).toEqual([22, 28, 49, 64]);
    expect([...be.matmul(a, bt, 2, 3, 2, true)]).toEqual([22, 28, 49, 64]);
  });
  it('attention: causal offset, GQA head sharing and additive masks', () => {
    // 2 query heads share 1 kv head; 3 keys; queries at positions 1 and 2.
    const d = 2;
    const q = Float32Array.of(1, 0, 0, 1, 1, 1, 0, 0); // [2, 2, 2]
    const k = Float32Array.of(1, 0, 0, 1, 1, 1); // [3, 1, 2]
    const v = Float32Array.of(1, 0, 0, 1, 2, 2); // [3, 1, 2]
    const out = be.attention({ q, k, v, tq: 2, tk: 3, nHeads: 2, nKvHeads: 1, headDim: d, scale: 1, causalOffset: 1 });
    // query 0 (pos 1), head 0: keys 0,1 scores [1, 0] → softmax weights e/(e+1), 1/(e+1)
    const w0 = Math.E / (Math.E + 1);
    expect(out[0]).toBeCloseTo(w0, 6);
    expect(out[1]).toBeCloseTo(1 - w0, 6);
    // query 1 (pos 2), head 1: q = 0 → uniform over 3 keys
    expect(out[6]).toBeCloseTo(1, 6);
    expect(out[7]).toBeCloseTo(1, 6);
    const masked = be.attention({ q, k, v, tq: 2, tk: 3, nHeads: 2, nKvHeads: 1, headDim: d, scale: 1, mask: Float32Array.of(0, -1e30, -1e30, 0, 0, 0) });
    expect(masked[0]).toBeCloseTo(1, 6); // query 0 sees key 0 only
  });
});

describe('small ops', () => {
  it('erf-GELU matches known values to f32 precision', () => {
    // erfc(±1) and GELU(1) = 0.5·(1 + erf(1/√2)) are textbook values.
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 6);
    expect(erfc(-1)).toBeCloseTo(1.842700792949715, 6);
    expect(geluErf(Float32Array.of(1))[0]).toBeCloseTo(0.8413447460685429, 6);
    expect(geluTanh(Float32Array.of(1))[0]).toBeCloseTo(0.8411919906082768, 6);
  });
  it('norms and softmax', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    const r = rmsNorm(x, 1, 4, Float32Array.of(1, 1, 1, 2), 0);
    const rms = Math.sqrt(30 / 4);
    expect(r[3]).toBeCloseTo((2 * 4) / rms, 5);
    const l = layerNorm(x, 1, 4, Float32Array.of(1, 1, 1, 1), Float32Array.of(0, 0, 0, 1), 0);
    expect(l[0]).toBeCloseTo(-1.5 / Math.sqrt(1.25), 5);
    expect(l[3]).toBeCloseTo(1.5 / Math.sqrt(1.25) + 1, 5);
    const s = softmaxRows(Float32Array.of(0, Math.log(3)), 1, 2);
    expect(s[1]).toBeCloseTo(0.75, 6);
  });
  it('conv2d with stride/padding/groups, conv1d and avg pooling', () => {
    // 1 channel 3x3 image, 2x2 kernel of ones, stride 1, padding 0 → sums of 2x2 windows
    const img = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9);
    const c = conv2d(img, 1, 3, 3, Float32Array.of(1, 1, 1, 1), 1, 2, 2, Float32Array.of(1));
    expect([c.h, c.w]).toEqual([2, 2]);
    expect([...c.out]).toEqual([13, 17, 25, 29]);
    const cs = conv2d(img, 1, 3, 3, Float32Array.of(0, 0, 0, 0, 1, 0, 0, 0, 0), 1, 3, 3, null, { stride: 2, padding: 1 });
    expect([...cs.out]).toEqual([1, 3, 7, 9]);
    // depthwise (groups = channels) conv1d, padding 1
    const x1 = Float32Array.of(1, 2, 3, 10, 20, 30); // [2, 3]
    const d = conv1d(x1, 2, 3, Float32Array.of(1, 1, 0, 0, 1, 0), 2, 3, null, { padding: 1, groups: 2 });
    expect([...d.out]).toEqual([1, 3, 5, 10, 20, 30]);
    const p = avgPool2d(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), 1, 4, 4);
    expect([...p.out]).toEqual([3.5, 5.5, 11.5, 13.5]);
  });
});
