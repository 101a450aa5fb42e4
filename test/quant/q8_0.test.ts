import { describe, expect, it } from 'vitest';
import {
  BLOCK_Q8_0_BYTES,
  dequantizeRowQ8_0,
  dotQ8_0F32,
  dotQ8_0Q8_0,
  quantizeRowQ8_0,
} from '../../src/quant/index.js';

function q8(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * BLOCK_Q8_0_BYTES);
  quantizeRowQ8_0(x, out);
  return out;
}

const F16_ONE = [0x00, 0x3c]; // 1.0 as little-endian f16

describe('q8_0 block bytes (hand-computed)', () => {
  it('all zeros → all-zero block (d = 0 gives id = 0, no division)', () => {
    expect(Array.from(q8(new Float32Array(32)))).toEqual(new Array(34).fill(0));
  });

  it('amax 127 → d = 1, and halves round away from zero like C roundf (not to even)', () => {
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = 2.5; // roundf → 3 (round-half-even would give 2)
    x[2] = -2.5; // → −3
    x[3] = 0.5; // → 1
    x[4] = -126.5; // → −127
    x[5] = 3.4999998; // → 3
    const b = q8(x);
    expect([b[0], b[1]]).toEqual(F16_ONE);
    const qs = Array.from(new Int8Array(b.buffer, 2, 32));
    expect(qs.slice(0, 6)).toEqual([127, 3, -3, 1, -127, 3]);
    expect(qs.slice(6)).toEqual(new Array(26).fill(0));
  });

  it('ramp −31..31 step 2 (amax 31 → d = 31/127, stored as f16 0x33d0): q = round(x·127/31)', () => {
    const x = new Float32Array(32).map((_, i) => 2 * i - 31);
    const b = q8(x);
    // d = fround(31/127) = 0.24409449…; f16 round-to-nearest-even of it is 0x33d0 (= 0.244140625).
    expect(b[0] | (b[1]! << 8)).toBe(0x33d0);
    const id = Math.fround(1 / Math.fround(31 / 127));
    const expected = Array.from(x, (v) => {
      const t = Math.fround(v * id);
      return Math.sign(t) * Math.floor(Math.abs(t) + 0.5);
    });
    expect(Array.from(new Int8Array(b.buffer, 2, 32))).toEqual(expected);
    expect(expected[0]).toBe(-127);
    expect(expected[31]).toBe(127);
    expect(expected[15]).toBe(-4); // −1·4.0968 → −4
  });

  it('dequantize is f16(d)·q', () => {
    const x = new Float32Array(64).map((_, i) => Math.sin(i) * 3);
    const b = q8(x);
    const y = new Float32Array(64);
    dequantizeRowQ8_0(b, y);
    for (let blk = 0; blk < 2; blk++) {
      const o = blk * 34;
      const h = b[o]! | (b[o + 1]! << 8);
      // f16 → f32 by hand for normal numbers.
      const d = (1 + (h & 0x3ff) / 1024) * 2 ** (((h >> 10) & 0x1f) - 15);
      for (let j = 0; j < 32; j++) expect(y[blk * 32 + j]).toBe(Math.fround(d * new Int8Array(b.buffer, o + 2, 32)[j]!));
    }
    // Quantization error of q8_0 is at most d/2 per element (plus the f16 rounding of d).
    for (let i = 0; i < 64; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThan(3 / 127 * 0.51 + 1e-3);
  });
});

describe('q8_0 dots', () => {
  it('dotRow equals the f64 dot of the dequantized row', () => {
    const x = new Float32Array(96).map((_, i) => Math.cos(i * 0.3));
    const a = new Float32Array(96).map((_, i) => Math.sin(i * 0.7));
    const b = q8(x);
    const y = new Float32Array(96);
    dequantizeRowQ8_0(b, y);
    let ref = 0;
    for (let i = 0; i < 96; i++) ref += y[i]! * a[i]!;
    // Both are f64 sums of the same products in different groupings: agree to ~1e-15 relative.
    expect(dotQ8_0F32(b, a)).toBeCloseTo(ref, 12);
  });

  it('q8_0·q8_0 of one block by hand: d = 1 on both sides → the integer dot', () => {
    const x = new Float32Array(32);
    const y = new Float32Array(32);
    x[0] = 127; y[0] = 127; // forces d = 1 on both sides
    x[1] = 3; y[1] = -2;
    x[31] = -5; y[31] = -7;
    expect(dotQ8_0Q8_0(q8(x), q8(y), 1)).toBe(127 * 127 - 6 + 35);
  });

  it('rejects short rows and bad block counts', () => {
    const b = q8(new Float32Array(32));
    expect(() => dotQ8_0Q8_0(b, b, 2)).toThrow(/2 blocks need 68 bytes/);
    expect(() => dotQ8_0Q8_0(b, b, 1.5)).toThrow(/bad block count/);
  });
});

describe('q8_0 bad input', () => {
  it('row length not a multiple of 32', () => {
    expect(() => quantizeRowQ8_0(new Float32Array(80), new Uint8Array(85))).toThrow(/80 is not a multiple of the block size 32/);
  });
  it('wrong destination size', () => {
    expect(() => quantizeRowQ8_0(new Float32Array(32), new Uint8Array(33))).toThrow(/expected 34 bytes, got 33/);
    expect(() => dequantizeRowQ8_0(new Uint8Array(33), new Float32Array(32))).toThrow(/expected 34 bytes/);
  });
  it('NaN and Inf are rejected with their index', () => {
    const x = new Float32Array(32);
    x[5] = NaN;
    expect(() => q8(x)).toThrow(/element 5 is NaN/);
    x[5] = -Infinity;
    expect(() => q8(x)).toThrow(/element 5 is -Infinity/);
  });
  it('a block scale beyond f16 range is an error, not an Inf scale', () => {
    const x = new Float32Array(32);
    x[0] = 1e7; // d = 1e7/127 ≈ 78740 > 65504
    expect(() => q8(x)).toThrow(/overflows f16/);
  });
});
