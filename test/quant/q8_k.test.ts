import { describe, expect, it } from 'vitest';
import {
  BLOCK_Q4_K_BYTES,
  BLOCK_Q8_K_BYTES,
  dequantizeRowQ4_K,
  dequantizeRowQ8_K,
  dotQ4KQ8K,
  q8KRowBytes,
  quantizeRowQ4_K,
  quantizeRowQ8_K,
} from '../../src/quant/index.js';
import { signal } from './signal.js';

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

describe('q8_K block bytes', () => {
  it('layout is 292 bytes per 256 values', () => {
    expect(BLOCK_Q8_K_BYTES).toBe(292);
    expect(q8KRowBytes(512)).toBe(584);
  });

  it('all zeros → d = 0, qs = 0, bsums = 0', () => {
    expect(Array.from(quantizeRowQ8_K(new Float32Array(256)))).toEqual(new Array(292).fill(0));
  });

  it('sign convention by hand: iscale = −127/max, so a positive max quantizes to −127 with d < 0', () => {
    const x = new Float32Array(256);
    x[0] = 2; // max = 2 → iscale = −63.5
    x[1] = 1; // −63.5 → nearest_int (half to even) = −64
    x[2] = -0.5; // 31.75 → 32
    x[17] = 1.5; // −95.25 → −95, lands in bsums[1]
    x[255] = -2; // ties in |x| keep the first maximum
    const b = quantizeRowQ8_K(x);
    const dv = view(b);
    expect(dv.getFloat32(0, true)).toBe(Math.fround(1 / -63.5));
    const qs = new Int8Array(b.buffer, 4, 256);
    expect([qs[0], qs[1], qs[2], qs[17], qs[255]]).toEqual([-127, -64, 32, -95, 127]);
    expect(dv.getInt16(260, true)).toBe(-127 - 64 + 32);
    expect(dv.getInt16(262, true)).toBe(-95);
    expect(dv.getInt16(260 + 2 * 15, true)).toBe(127);
    const y = new Float32Array(256);
    dequantizeRowQ8_K(b, y);
    expect(y[0]).toBe(Math.fround(Math.fround(1 / -63.5) * -127));
    expect(Math.abs(y[0]! - 2)).toBeLessThan(1e-6);
  });

  it('bsums are the sums of each 16 quants', () => {
    const b = quantizeRowQ8_K(signal('outliers', 7, 512));
    for (let blk = 0; blk < 2; blk++) {
      const o = blk * 292;
      const qs = new Int8Array(b.buffer, o + 4, 256);
      for (let j = 0; j < 16; j++) {
        let s = 0;
        for (let i = 0; i < 16; i++) s += qs[16 * j + i]!;
        expect(view(b).getInt16(o + 260 + 2 * j, true)).toBe(s);
      }
    }
  });

  it('rejects bad input', () => {
    expect(() => quantizeRowQ8_K(new Float32Array(100))).toThrow(/100 is not a multiple of the block size 256/);
    expect(() => quantizeRowQ8_K(new Float32Array(256), new Uint8Array(291))).toThrow(/expected 292 bytes/);
    const x = new Float32Array(256);
    x[3] = NaN;
    expect(() => quantizeRowQ8_K(x)).toThrow(/element 3 is NaN/);
  });
});

describe('q4_K · q8_K reference dot', () => {
  it('equals Σ dequant(q4)·dequant(q8) up to float32 accumulation', () => {
    const n = 1024;
    const w = signal('irwin-hall', 50, n);
    const a = signal('outliers', 51, n);
    const q4 = new Uint8Array((n / 256) * BLOCK_Q4_K_BYTES);
    quantizeRowQ4_K(w, q4);
    const q8 = quantizeRowQ8_K(a);
    const wd = new Float32Array(n);
    const ad = new Float32Array(n);
    dequantizeRowQ4_K(q4, wd);
    dequantizeRowQ8_K(q8, ad);
    let ref = 0;
    let mag = 0;
    for (let i = 0; i < n; i++) {
      ref += wd[i]! * ad[i]!;
      mag += Math.abs(wd[i]! * ad[i]!);
    }
    // The integer part is exact; the float32 scale products and the 8-lane float32 sums each round at
    // 2^-24 relative, a few dozen roundings in all → 1e-5 of Σ|terms| is a loose but falsifiable bound.
    expect(Math.abs(dotQ4KQ8K(q4, q8, n / 256) - ref)).toBeLessThan(1e-5 * mag);
  });

  it('zero activations give exactly 0, and short buffers are rejected', () => {
    const q4 = new Uint8Array(BLOCK_Q4_K_BYTES);
    quantizeRowQ4_K(signal('positive', 1, 256), q4);
    expect(dotQ4KQ8K(q4, quantizeRowQ8_K(new Float32Array(256)), 1)).toBe(0);
    expect(() => dotQ4KQ8K(q4, new Uint8Array(292), 2)).toThrow(/2 blocks need 288 \+ 584 bytes/);
  });
});
