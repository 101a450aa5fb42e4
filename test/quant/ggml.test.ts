// Byte-compatibility with ggml (committed oracle data) and ggml's own error budgets from
// tests/test-quantize-fns.cpp.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  dotQ4KQ8K,
  dotQ8_0Q8_0,
  formatOf,
  quantizeMatrix,
  dequantizeMatrix,
  quantizeRowQ8_K,
} from '../../src/quant/index.js';
import type { QuantDType } from '../../src/tensor/dtype.js';
import { cosSignal, signal, type SignalKind } from './signal.js';

interface OracleCase {
  kind: SignalKind;
  seed: number;
  n: number;
  q4_k: { sha256: string; firstBlockHex: string };
  q8_0: { sha256: string; firstBlockHex: string };
  q8_k: { sha256: string };
  activationSeed: number;
  dotQ4KQ8KBits: number;
  dotQ8_0Q8_0Bits: number;
}

const oracle: { cases: OracleCase[] } = JSON.parse(
  readFileSync(new URL('./data/ggml_oracle.json', import.meta.url), 'utf8'),
);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const f32Bits = (v: number) => {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v, true);
  return dv.getUint32(0, true);
};

describe('bit-exact against ggml reference code (data/ggml_oracle.json)', () => {
  it('has cases', () => expect(oracle.cases.length).toBeGreaterThanOrEqual(5));

  for (const c of oracle.cases) {
    it(`${c.kind} seed ${c.seed}: q4_K, q8_0, q8_K bytes and both dot products`, () => {
      const x = signal(c.kind, c.seed, c.n);
      const y = signal('irwin-hall', c.activationSeed, c.n);
      const q4 = quantizeMatrix(x, 1, c.n, 'q4_k');
      expect(hex(q4.subarray(0, 144))).toBe(c.q4_k.firstBlockHex);
      expect(sha(q4)).toBe(c.q4_k.sha256);
      const q8 = quantizeMatrix(x, 1, c.n, 'q8_0');
      expect(hex(q8.subarray(0, 34))).toBe(c.q8_0.firstBlockHex);
      expect(sha(q8)).toBe(c.q8_0.sha256);
      expect(sha(quantizeRowQ8_K(x))).toBe(c.q8_k.sha256);
      // Exact float32 equality: the dots mirror ggml's scalar accumulation order.
      expect(f32Bits(dotQ4KQ8K(q4, quantizeRowQ8_K(y), c.n / 256))).toBe(c.dotQ4KQ8KBits);
      expect(f32Bits(dotQ8_0Q8_0(q8, quantizeMatrix(y, 1, c.n, 'q8_0'), c.n / 32))).toBe(c.dotQ8_0Q8_0Bits);
    });
  }
});

describe('ggml test-quantize-fns error budgets', () => {
  // test-quantize-fns.cpp: test_size = 32·128, data 0.1 + 2·cos(i + offset) with offsets 0 and 1.
  const TEST_SIZE = 32 * 128;
  const MAX_QUANTIZATION_TOTAL_ERROR = 0.002; // Q4_K and Q8_0 use the default budget
  const MAX_DOT_PRODUCT_ERROR = 0.02;
  const data1 = cosSignal(0, TEST_SIZE);
  const data2 = cosSignal(1, TEST_SIZE);

  /** ggml's array_rmse: sqrt(Σ diff²) / n (sic: not sqrt of the mean). */
  function arrayRmse(a: Float32Array, b: Float32Array): number {
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
    return Math.sqrt(sum) / a.length;
  }

  /** ggml's dot_product: float products summed in double. */
  function dotRef(a: Float32Array, b: Float32Array): number {
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.fround(a[i]! * b[i]!);
    return sum;
  }

  it.each<QuantDType>(['q4_k', 'q8_0'])('%s total quantization error', (dt) => {
    const back = dequantizeMatrix(quantizeMatrix(data1, 1, TEST_SIZE, dt), 1, TEST_SIZE, dt);
    const err = arrayRmse(data1, back);
    expect(err).toBeLessThan(MAX_QUANTIZATION_TOTAL_ERROR);
    expect(err).toBeGreaterThan(0); // a lossless round trip would mean quantization did nothing
  });

  it('q4_k dot product error through q8_K activations', () => {
    const q4 = quantizeMatrix(data1, 1, TEST_SIZE, 'q4_k');
    const got = dotQ4KQ8K(q4, quantizeRowQ8_K(data2), TEST_SIZE / 256);
    expect(Math.abs(got - dotRef(data1, data2)) / TEST_SIZE).toBeLessThan(MAX_DOT_PRODUCT_ERROR);
  });

  it('q8_0 dot product error through q8_0 activations', () => {
    const a = quantizeMatrix(data1, 1, TEST_SIZE, 'q8_0');
    const b = quantizeMatrix(data2, 1, TEST_SIZE, 'q8_0');
    const got = dotQ8_0Q8_0(a, b, TEST_SIZE / 32);
    expect(Math.abs(got - dotRef(data1, data2)) / TEST_SIZE).toBeLessThan(MAX_DOT_PRODUCT_ERROR);
  });

  it.each<QuantDType>(['q4_k', 'q8_0'])('%s dotRow (f32 activations) within the same budget', (dt) => {
    const q = quantizeMatrix(data1, 1, TEST_SIZE, dt);
    const got = formatOf(dt).dotRow(q, data2);
    expect(Math.abs(got - dotRef(data1, data2)) / TEST_SIZE).toBeLessThan(MAX_DOT_PRODUCT_ERROR);
  });
});
