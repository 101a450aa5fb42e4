// The addon's weight quantizers (ISQ at load time) and Q8_K / Q8_0 activation quantizers, per ISA, against the
// TypeScript ports in src/quant, which were checked byte-for-byte against ggml: every output byte must be
// equal (tolerance: none; both evaluate the same float32 operations in the same order without FMA contraction).
import { afterAll, describe, expect, it } from 'vitest';
import { BLOCK_Q8_0_BYTES, BLOCK_Q8_K_BYTES, QK8_0, QK_K, quantizeMatrix, quantizeRowQ8_0, quantizeRowQ8_K } from '../../src/quant/index.js';
import { StrictWeights, memoryProvider } from '../../src/nn/weights.js';
import { nativeRowQuantizer } from '../../src/tensor/native.js';
import { signal, cosSignal } from '../quant/signal.js';
import { loadNative, NO_NATIVE, rng } from './util.js';

const { backend, error } = loadNative();

/** Row-major [rows, k] test matrices that reach the quantizers' corner cases. */
function matrices(k: number): Array<{ name: string; rows: number; x: Float32Array }> {
  const r = rng(31);
  const out: Array<{ name: string; rows: number; x: Float32Array }> = [];
  for (const [i, kind] of (['irwin-hall', 'outliers', 'positive', 'ties'] as const).entries()) {
    out.push({ name: kind, rows: 5, x: signal(kind, 100 + i, 5 * k) });
  }
  out.push({ name: 'cos', rows: 3, x: cosSignal(0.5, 3 * k) });
  // Zeros: whole rows, single 32-weight sub-blocks, and a block that is all zero but for one value.
  const zeros = r(7 * k, -1, 1);
  zeros.fill(0, 0, k);
  for (let j = 0; j < zeros.length; j += 96) zeros.fill(0, k + j, k + j + 32);
  zeros.fill(0, 3 * k, 3 * k + 256);
  zeros[3 * k + 77] = -0.5;
  out.push({ name: 'zeros', rows: 7, x: zeros });
  // Constant sub-blocks (max == min), negative-only values, tiny (subnormal-scale) and large magnitudes.
  const special = new Float32Array(6 * k);
  for (let i = 0; i < k; i++) special[i] = 0.25;
  for (let i = 0; i < k; i++) special[k + i] = -1 - (i % 5) * 0.125;
  const tiny = r(k, -1e-6, 1e-6);
  special.set(tiny, 2 * k);
  special.set(r(k, -3e4, 3e4), 3 * k);
  special.set(r(k, -1e-30, 1e-30), 4 * k);
  const outl = r(k, -0.01, 0.01);
  for (let i = 5; i < k; i += 37) outl[i] = i % 2 ? 80 : -120;
  special.set(outl, 5 * k);
  out.push({ name: 'special', rows: 6, x: special });
  out.push({ name: 'uniform, 1 row', rows: 1, x: r(k, -2, 2) });
  out.push({ name: 'uniform, 13 rows', rows: 13, x: r(13 * k, -0.05, 0.05) });
  return out;
}

/** One QK_K-value Q8_K block per corner case of the activation quantizer. */
function q8kBlocks(): Array<{ name: string; x: Float32Array }> {
  const r = rng(57);
  const fill = (f: (i: number) => number) => Float32Array.from({ length: QK_K }, (_, i) => f(i));
  const out = [
    { name: 'uniform', x: r(QK_K, -3, 3) },
    { name: 'zeros', x: new Float32Array(QK_K) },
    { name: 'signed zeros', x: fill((i) => (i % 3 ? -0 : 0)) },
    { name: 'one value', x: fill((i) => (i === 201 ? -2.5e-3 : 0)) },
    { name: 'ties', x: fill((i) => ((i % 9) - 4) * 0.25) },
    // Alternating signs: the first and the last element of largest magnitude differ in sign.
    { name: 'equal magnitudes, first negative', x: fill((i) => (i % 2 ? 0.7 : -0.7)) },
    { name: 'equal magnitudes, first positive', x: fill((i) => (i % 2 ? -1.5 : 1.5)) },
    { name: 'max in the last lane', x: fill((i) => (i === QK_K - 1 ? -9 : ((i * 37) % 17) - 8)) },
    { name: 'max twice, later one negative', x: fill((i) => (i === 13 ? 4 : i === 250 ? -4 : (i % 7) * 0.5 - 1.5)) },
    { name: 'tiny', x: r(QK_K, -1e-30, 1e-30) },
    { name: 'huge', x: r(QK_K, -3e37, 3e37) },
    { name: 'outliers', x: signal('outliers', 77, QK_K) },
    { name: 'positive', x: signal('positive', 78, QK_K) },
    { name: 'signal ties', x: signal('ties', 79, QK_K) },
  ];
  for (let i = 0; i < 6; i++) out.push({ name: `irwin-hall ${i}`, x: signal('irwin-hall', 80 + i, QK_K) });
  return out;
}

// Q8_0 blocks whose scaled values fall on the rounding corners: with a block maximum of 127, d = 1 and x·id = x,
// so ±k.5 must round away from zero (std::round; half-to-even would give 2 for 2.5 and 0 for ±0.5).
function q80Blocks(): Array<{ name: string; x: Float32Array }> {
  const r = rng(58);
  const fill = (f: (i: number) => number) => Float32Array.from({ length: QK8_0 }, (_, i) => f(i));
  return [
    { name: 'uniform', x: r(QK8_0, -3, 3) },
    { name: 'zeros', x: new Float32Array(QK8_0) },
    { name: 'signed zeros', x: fill((i) => (i % 3 ? -0 : 0)) },
    { name: 'halves', x: fill((i) => (i === 0 ? 127 : i === 1 ? -127 : ((i % 2 ? -1 : 1) * (i % 8)) + (i % 2 ? -0.5 : 0.5))) },
    { name: 'just below a half', x: fill((i) => (i === 31 ? -127 : (i % 2 ? -1 : 1) * Math.fround(0.49999997 + (i % 5)))) },
    { name: 'one value', x: fill((i) => (i === 17 ? -2.5e-3 : 0)) },
    { name: 'tiny', x: r(QK8_0, -1e-30, 1e-30) },
    { name: 'near the f16 scale limit', x: r(QK8_0, -8e6, 8e6) },
    { name: 'outliers', x: signal('outliers', 87, QK8_0) },
    { name: 'signal ties', x: signal('ties', 89, QK8_0) },
  ];
}

describe.skipIf(NO_NATIVE)('native ISQ (weight and activation quantizers)', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;
  afterAll(() => nb.setThreads(2));

  afterAll(() => nb.setIsa(nb.availableIsas()[0]!));
  // Q4_K under the avx512 and avx2 ISAs runs the vectorized quantizer (native/src/quantize_fast_impl.h, 16 or 8
  // lanes), under 'scalar' the scalar port; all must give src/quant's bytes. k = 3072 is a real row length
  // (Phi-4-mini's hidden); 768 = 24 sub-blocks leaves a partly padded last vector of sub-blocks at 16 lanes.
  for (const isa of ['avx512', 'avx2', 'scalar'] as const)
    for (const dtype of ['q4_k', 'q8_0'] as const) {
      it.skipIf(!nb.availableIsas().includes(isa))(`${isa} ${dtype}: byte-identical to src/quant on varied signals, 1 and 2 threads`, () => {
        nb.setIsa(isa);
        for (const k of dtype === 'q4_k' ? [256, 768, 3072] : [256, 768]) {
          for (const { name, rows, x } of matrices(k)) {
            const expected = quantizeMatrix(x, rows, k, dtype);
            for (const t of [1, 2]) {
              nb.setThreads(t);
              const got = nb.quantizeRows(dtype, x, rows, k);
              // Compare as a whole, then locate the first mismatch for a readable failure.
              if (!Buffer.from(got).equals(Buffer.from(expected))) {
                const i = got.findIndex((v, j) => v !== expected[j]);
                throw new Error(`${isa} ${dtype} ${name} k=${k} threads=${t}: byte ${i} differs (got ${got[i]}, expected ${expected[i]})`);
              }
            }
          }
        }
      });
    }

  // The activation quantizer of each ISA (vectorized under avx512 / avx2, native/src/quantize_fast_impl.h)
  // against src/quant, on blocks that reach its corner cases: the signed max is the first element of largest
  // magnitude, so blocks of equal magnitudes with mixed signs (first one negative, or positive) pin it down.
  for (const isa of ['avx512', 'avx2', 'scalar'] as const)
    it.skipIf(!nb.availableIsas().includes(isa))(`${isa} q8_0 activations: byte-identical to src/quant, halves rounded away from zero`, () => {
      nb.setIsa(isa);
      const blocks = q80Blocks();
      const x = new Float32Array(blocks.length * QK8_0);
      blocks.forEach((b, i) => x.set(b.x, i * QK8_0));
      const expected = new Uint8Array(blocks.length * BLOCK_Q8_0_BYTES);
      quantizeRowQ8_0(x, expected);
      const got = nb.quantizeQ80(x, new Uint8Array(blocks.length * BLOCK_Q8_0_BYTES));
      const i = got.findIndex((v, j) => v !== expected[j]);
      if (i >= 0) throw new Error(`${isa} q8_0 block ${Math.floor(i / BLOCK_Q8_0_BYTES)} (${blocks[Math.floor(i / BLOCK_Q8_0_BYTES)]!.name}): byte ${i % BLOCK_Q8_0_BYTES} differs (got ${got[i]}, expected ${expected[i]})`);
      // The corner block really has halves: 2.5 → 3 and −0.5 → −1 (as int8 bytes after the 2-byte scale).
      const h = 3 * BLOCK_Q8_0_BYTES + 2;
      expect([got[h + 2], got[h + 3]]).toEqual([3, 256 - 4]); // x[2] = 2.5, x[3] = −3.5
    });

  for (const isa of ['avx512', 'avx2', 'scalar'] as const)
    it.skipIf(!nb.availableIsas().includes(isa))(`${isa} q8_K activations: byte-identical to src/quant on varied blocks`, () => {
      nb.setIsa(isa);
      const blocks = q8kBlocks();
      const x = new Float32Array(blocks.length * QK_K);
      blocks.forEach((b, i) => x.set(b.x, i * QK_K));
      const expected = quantizeRowQ8_K(x);
      const got = nb.quantizeQ8K(x, new Uint8Array(blocks.length * BLOCK_Q8_K_BYTES));
      if (!Buffer.from(got).equals(Buffer.from(expected))) {
        const i = got.findIndex((v, j) => v !== expected[j]);
        const b = Math.floor(i / BLOCK_Q8_K_BYTES);
        throw new Error(`${isa} q8_K block ${b} (${blocks[b]!.name}): byte ${i % BLOCK_Q8_K_BYTES} differs (got ${got[i]}, expected ${expected[i]})`);
      }
    });

  it('quantizeRowsBf16 (raw bf16 bits, widened per row in the workers) equals quantizeRows on the widened values', () => {
    const r = rng(41);
    const k = 768, rows = 9;
    const bits = Uint16Array.from(r(rows * k, -1, 1), (v) => (new Uint32Array(Float32Array.of(v).buffer)[0]! >>> 16));
    const widened = nb.bf16ToF32(bits);
    for (const dtype of ['q4_k', 'q8_0'] as const)
      for (const t of [1, 2]) {
        nb.setThreads(t);
        expect(Buffer.from(nb.quantizeRowsBf16(dtype, bits, rows, k)).equals(Buffer.from(nb.quantizeRows(dtype, widened, rows, k))), `${dtype} threads=${t}`).toBe(true);
      }
    const bad = bits.slice();
    bad[2 * k + 3] = 0x7fc0; // a bf16 NaN
    expect(() => nb.quantizeRowsBf16('q4_k', bad, rows, k)).toThrow(/row 2 element 3 is not finite/);
    expect(() => nb.quantizeRowsBf16('q4_k', bits, rows, 100)).toThrow(/do not form/);
    // StrictWeights takes the bf16 path for BF16 checkpoint tensors and stores the same bytes as via f32.
    const provider = {
      where: 'bf16 memory', names: () => ['w'], info: () => ({ dtype: 'BF16' as const, shape: [rows, k] }),
      readRaw: () => new Uint8Array(bits.buffer.slice(0)), readF32: () => widened.slice(),
    };
    const quantize = nativeRowQuantizer()!;
    let viaBf16 = 0;
    const fast = new StrictWeights(provider, () => 'q4_k', { quantize, quantizeBf16: (d, b, r2, k2) => { viaBf16++; return nb.quantizeRowsBf16(d, b, r2, k2); } });
    const slow = new StrictWeights(provider, () => 'q4_k', { quantize });
    const a = fast.take('w', [rows, k]), b = slow.take('w', [rows, k]);
    expect(viaBf16).toBe(1);
    expect(Buffer.from(a.data as Uint8Array).equals(Buffer.from(b.data as Uint8Array))).toBe(true);
  });

  it('q8_0 rows shorter than a Q4_K block, and empty matrices', () => {
    const x = rng(5)(3 * 96, -1, 1);
    expect(nb.quantizeRows('q8_0', x, 3, 96)).toEqual(quantizeMatrix(x, 3, 96, 'q8_0'));
    expect(nb.quantizeRows('q4_k', new Float32Array(0), 0, 256).length).toBe(0);
  });

  it('rejects bad input with clear errors', () => {
    const x = rng(6)(4 * 256, -1, 1);
    x[2 * 256 + 9] = NaN;
    expect(() => nb.quantizeRows('q4_k', x, 4, 256)).toThrow(/row 2 element 9 is not finite/);
    expect(() => nb.quantizeRows('q8_0', x, 4, 256)).toThrow(/row 2 element 9 is not finite/);
    const big = new Float32Array(256).fill(1e38);
    big[3] = -1e38;
    expect(() => nb.quantizeRows('q4_k', big, 1, 256)).toThrow(/overflows f16/);
    expect(() => nb.quantizeRows('q8_0', big, 1, 256)).toThrow(/overflows f16/);
    expect(() => quantizeMatrix(big, 1, 256, 'q8_0')).toThrow(/overflows f16/); // same contract as src/quant
    expect(() => nb.quantizeRows('q4_k', new Float32Array(100), 1, 100)).toThrow(/not a multiple of the block size 256/);
    expect(() => nb.quantizeRows('q4_k', new Float32Array(512), 1, 256)).toThrow(/do not form a \[1, 256\] matrix/);
    expect(() => nb.quantizeRows('f16' as 'q4_k', new Float32Array(256), 1, 256)).toThrow(/unknown dtype 'f16'/);
  });

  it('bf16ToF32 widens exactly', () => {
    const bits = Uint16Array.from({ length: 70001 }, (_, i) => (i * 2654435761) >>> 16);
    const got = nb.bf16ToF32(bits);
    const u32 = new Uint32Array(got.buffer);
    for (let i = 0; i < bits.length; i++) if (u32[i] !== bits[i]! << 16 >>> 0) throw new Error(`element ${i}: ${u32[i]} vs ${bits[i]! << 16}`);
  });

  it('StrictWeights with the native quantizer stores the same bytes as the TypeScript default', () => {
    const x = signal('outliers', 9, 12 * 512);
    const tensors = { 'a.weight': { shape: [12, 512], data: x }, 'b.weight': { shape: [12, 512], data: x } };
    const policy = (name: string) => (name.startsWith('a') ? 'q4_k' : 'q8_0') as 'q4_k' | 'q8_0';
    const quantize = nativeRowQuantizer();
    expect(quantize).toBeDefined();
    const fast = new StrictWeights(memoryProvider(tensors), policy, { quantize });
    const slow = new StrictWeights(memoryProvider(tensors), policy);
    for (const name of ['a.weight', 'b.weight']) {
      const f = fast.take(name, [12, 512]), s = slow.take(name, [12, 512]);
      expect(f.dtype).toBe(s.dtype);
      expect(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength).equals(Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength))).toBe(true);
    }
  });
});
