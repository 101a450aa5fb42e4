import { describe, expect, it } from 'vitest';
import {
  BLOCK_Q4_K_BYTES,
  dequantizeRowQ4_K,
  dotQ4_KF32,
  nearestInt,
  quantizeRowQ4_K,
  roundHalfAwayFromZero,
} from '../../src/quant/index.js';
import { signal, type SignalKind } from './signal.js';

function q4k(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * BLOCK_Q4_K_BYTES);
  quantizeRowQ4_K(x, out);
  return out;
}

function deq(b: Uint8Array): Float32Array {
  const y = new Float32Array((b.length / BLOCK_Q4_K_BYTES) * 256);
  dequantizeRowQ4_K(b, y);
  return y;
}

function f16(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  return e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Independent decoder of one block: the 12 scale bytes read as a 96-bit little-endian integer
 * (bit-field view of get_scale_min_k4), returning per sub-block (sc, m) and the 256 quants in weight order.
 */
function decodeBlock(b: Uint8Array, o: number): { d: number; dmin: number; sc: number[]; m: number[]; q: number[] } {
  const s = b.subarray(o + 4, o + 16);
  const sc: number[] = [];
  const m: number[] = [];
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      sc.push(s[j]! & 0x3f);
      m.push(s[j + 4]! & 0x3f);
    } else {
      // low 4 bits in byte 8+(j−4) (scale: low nibble, min: high nibble); high 2 bits are the top bits of
      // bytes j−4 (scale) and j (min).
      sc.push((s[j + 4]! & 0x0f) + 16 * (s[j - 4]! >> 6));
      m.push((s[j + 4]! >> 4) + 16 * (s[j]! >> 6));
    }
  }
  const q: number[] = new Array(256);
  for (let i = 0; i < 256; i++) {
    const chunk = Math.floor(i / 64);
    const within = i % 64;
    const byte = b[o + 16 + chunk * 32 + (within % 32)]!;
    q[i] = within < 32 ? byte % 16 : Math.floor(byte / 16);
  }
  return { d: f16(b[o]! | (b[o + 1]! << 8)), dmin: f16(b[o + 2]! | (b[o + 3]! << 8)), sc, m, q };
}

describe('rounding primitives', () => {
  it('nearestInt rounds half to even (ggml nearest_int), roundHalfAwayFromZero like roundf', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 7.5000005].map((v) => nearestInt(Math.fround(v)))).toEqual([0, 2, 2, 0, -2, -2, 2, 8]);
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5].map(roundHalfAwayFromZero)).toEqual([1, 2, 3, -1, -2, -3]);
  });
  it('nearestInt beyond ggml’s asserted range reproduces the C bit trick (mantissa wrap)', () => {
    // 5e6 + 1.5·2^23 = 17582912 (float32, ≥ 2^24): mantissa field 402848, minus 2^22 → −3791456.
    expect(nearestInt(5e6)).toBe(402848 - 4194304);
  });
});

describe('q4_K block bytes', () => {
  it('all zeros → all-zero block', () => {
    expect(Array.from(q4k(new Float32Array(256)))).toEqual(new Array(144).fill(0));
  });

  it('a constant positive block: min clamps to 0, every weight quantizes to 15 at scale c/15', () => {
    // make_qkx2_quants: min = 0, max = c → iscale = 15/c, all L = 15; every trial gives D = 0, so the first
    // fit stands: scale = c/15, theMin = 0. All 8 scales equal → ls = 63, lm = 0, d = f16(c/15/63).
    const c = 0.75;
    const b = q4k(new Float32Array(256).fill(c));
    const blk = decodeBlock(b, 0);
    expect(blk.sc).toEqual(new Array(8).fill(63));
    expect(blk.m).toEqual(new Array(8).fill(0));
    expect(blk.dmin).toBe(0);
    expect(blk.q).toEqual(new Array(256).fill(15));
    // f16(0.75/15/63 = 7.9365e-4) = 0x1280 = (1 + 640/1024)·2^-11 = 7.9346e-4
    expect(b[0]! | (b[1]! << 8)).toBe(0x1280);
    const y = deq(b);
    expect(Math.abs(y[0]! - c)).toBeLessThan(c * 1e-3);
  });

  it('a constant negative block is stored through the min: value = −dmin·m with quants 0', () => {
    const b = q4k(new Float32Array(256).fill(-2));
    const blk = decodeBlock(b, 0);
    expect(blk.q).toEqual(new Array(256).fill(0)); // max = min = −2 → L = 0, scale 0
    expect(blk.d).toBe(0);
    expect(blk.m).toEqual(new Array(8).fill(63));
    const y = deq(b);
    for (const v of y) expect(v).toBe(y[0]);
    // dmin = f16(2/63) = 0x2810 = (1 + 16/1024)·2^-5 = 0.0317383; ·63 = 1.99951
    expect(Math.abs(y[0]! + 2)).toBeLessThan(2e-3);
  });

  it.each<[SignalKind, number]>([
    ['irwin-hall', 11],
    ['outliers', 12],
    ['positive', 13],
    ['ties', 14],
  ])('%s: structure of the block (grid, scale normalisation, nibble order)', (kind, seed) => {
    const x = signal(kind, seed, 512);
    const b = q4k(x);
    const y = deq(b);
    for (let blkIdx = 0; blkIdx < 2; blkIdx++) {
      const blk = decodeBlock(b, blkIdx * BLOCK_Q4_K_BYTES);
      // ls = nearest_int(63·scale/max_scale): the largest sub-block scale always maps to 63.
      expect(Math.max(...blk.sc)).toBe(63);
      for (let i = 0; i < 256; i++) {
        const j = i >> 5;
        const grid = Math.fround(Math.fround(blk.d * blk.sc[j]!) * blk.q[i]!) - Math.fround(blk.dmin * blk.m[j]!);
        expect(y[blkIdx * 256 + i]).toBe(Math.fround(grid));
      }
    }
    // Per-weight error bound: half a quantization step of its sub-block, plus the slack of the 6-bit/f16
    // scale and min rounding (weights near the clamped ends of a sub-block's range). Generous bound: one step.
    for (let i = 0; i < 512; i++) {
      const blk = decodeBlock(b, (i >> 8) * BLOCK_Q4_K_BYTES);
      const step = blk.d * blk.sc[(i & 255) >> 5]!;
      expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(Math.max(step, 1e-6) * 1.01 + blk.dmin);
    }
  });

  it.each<SignalKind>(['irwin-hall', 'positive', 'ties'])(
    '%s: re-quantizing the dequantized values reproduces the bytes (grid values are a fixed point)',
    (kind) => {
      // Not a theorem of the algorithm (it fails for the `outliers` signal, where the refit moves a min);
      // it holds for these signals at these seeds and catches packing / rounding drift.
      for (let seed = 20; seed < 30; seed++) {
        const b = q4k(signal(kind, seed, 256));
        expect(Buffer.from(q4k(deq(b))).equals(Buffer.from(b))).toBe(true);
      }
    },
  );

  it('dotRow equals the f64 dot of the dequantized row', () => {
    const x = signal('irwin-hall', 40, 512);
    const a = signal('outliers', 41, 512);
    const b = q4k(x);
    const y = deq(b);
    let ref = 0;
    for (let i = 0; i < 512; i++) ref += y[i]! * a[i]!;
    // Same products, different f64 grouping (per sub-block d·sc·Σq·a − dmin·m·Σa): ~1e-15 relative; the
    // dequantized y carries one f32 rounding per element (~6e-8 relative), hence 1e-6 absolute.
    expect(Math.abs(dotQ4_KF32(b, a) - ref)).toBeLessThan(1e-6);
  });
});

describe('q4_K bad input', () => {
  it('row length not a multiple of 256', () => {
    expect(() => quantizeRowQ4_K(new Float32Array(32), new Uint8Array(18))).toThrow(/32 is not a multiple of the block size 256/);
  });
  it('wrong buffer sizes', () => {
    expect(() => quantizeRowQ4_K(new Float32Array(256), new Uint8Array(143))).toThrow(/expected 144 bytes, got 143/);
    expect(() => dequantizeRowQ4_K(new Uint8Array(144), new Float32Array(512))).toThrow(/expected 288 bytes/);
  });
  it('NaN and Inf are rejected', () => {
    const x = new Float32Array(256);
    x[200] = Infinity;
    expect(() => q4k(x)).toThrow(/element 200 is Infinity/);
    x[200] = NaN;
    expect(() => q4k(x)).toThrow(/element 200 is NaN/);
  });
  it('a super-block scale beyond f16 range is an error', () => {
    const x = new Float32Array(256);
    x[0] = 1e9;
    expect(() => q4k(x)).toThrow(/overflows f16/);
  });
});
