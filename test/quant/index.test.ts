import { describe, expect, it } from 'vitest';
import {
  FORMATS,
  canQuantize,
  dequantizeMatrix,
  formatOf,
  quantizeMatrix,
  rowBytes,
} from '../../src/quant/index.js';
import type { QuantDType } from '../../src/tensor/dtype.js';
import { signal } from './signal.js';

describe('traits table', () => {
  it('block geometry matches ggml', () => {
    expect([FORMATS.q4_k.blockSize, FORMATS.q4_k.bytesPerBlock]).toEqual([256, 144]);
    expect([FORMATS.q8_0.blockSize, FORMATS.q8_0.bytesPerBlock]).toEqual([32, 34]);
    expect(formatOf('q4_k')).toBe(FORMATS.q4_k);
    expect(() => formatOf('q5_k' as QuantDType)).toThrow(/unknown quantized dtype 'q5_k'/);
  });

  it('rowBytes and canQuantize for Phi-4-mini and golden-model widths', () => {
    expect(rowBytes(FORMATS.q4_k, 3072)).toBe(12 * 144);
    expect(rowBytes(FORMATS.q8_0, 8192)).toBe(256 * 34);
    expect(() => rowBytes(FORMATS.q8_0, 80)).toThrow(/80 is not a multiple of the block size 32/);
    expect(canQuantize('q4_k', 3072)).toBe(true);
    expect(canQuantize('q4_k', 8192)).toBe(true);
    expect(canQuantize('q4_k', 32)).toBe(false);
    expect(canQuantize('q8_0', 32)).toBe(true);
    expect(canQuantize('q8_0', 80)).toBe(false);
    expect(canQuantize('q8_0', 0)).toBe(false);
  });
});

describe('quantizeMatrix / dequantizeMatrix', () => {
  it.each<QuantDType>(['q4_k', 'q8_0'])('%s: rows are independent and match per-row quantization', (dt) => {
    const rows = 3;
    const cols = 512;
    const w = signal('irwin-hall', 9, rows * cols);
    const q = quantizeMatrix(w, rows, cols, dt);
    const f = formatOf(dt);
    const rb = rowBytes(f, cols);
    expect(q.length).toBe(rows * rb);
    for (let r = 0; r < rows; r++) {
      const one = new Uint8Array(rb);
      f.quantizeRow(w.slice(r * cols, (r + 1) * cols), one);
      expect(Buffer.from(q.subarray(r * rb, (r + 1) * rb)).equals(Buffer.from(one))).toBe(true);
    }
    const back = dequantizeMatrix(q, rows, cols, dt);
    expect(back.length).toBe(rows * cols);
    // Gaussian σ = 0.05 weights: Q4_K error ≲ 0.05·(range/15)/2 per element, Q8_0 much less; 0.02 is a
    // bound neither format should approach, while a row mix-up would exceed it.
    let maxErr = 0;
    for (let i = 0; i < w.length; i++) maxErr = Math.max(maxErr, Math.abs(back[i]! - w[i]!));
    expect(maxErr).toBeLessThan(0.02);
  });

  it('rejects bad shapes and sizes', () => {
    expect(() => quantizeMatrix(new Float32Array(100), 2, 64, 'q8_0')).toThrow(/100 values do not form a \[2, 64\] matrix/);
    expect(() => quantizeMatrix(new Float32Array(160), 2, 80, 'q8_0')).toThrow(/80 is not a multiple/);
    expect(() => quantizeMatrix(new Float32Array(64), -1, -64, 'q8_0')).toThrow(/bad shape/);
    expect(() => dequantizeMatrix(new Uint8Array(67), 2, 32, 'q8_0')).toThrow(/expected 68 bytes for \[2, 32\], got 67/);
  });

  it('an empty matrix is fine', () => {
    expect(quantizeMatrix(new Float32Array(0), 0, 256, 'q4_k').length).toBe(0);
  });
});
