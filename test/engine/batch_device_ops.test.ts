// Backend v2 on host memory (src/tensor/host_device.ts): every op against a plain per-row loop on odd shapes,
// and paged attention (f32, f16, q8_0 storage) against the v1 attention on contiguous K/V. Run on the reference
// backend's device and on the native backend's (GEMMs native, the rest shared).
import { describe, expect, it } from 'vitest';
import { ReferenceBackend, referenceAttention } from '../../src/tensor/reference.js';
import { NativeBackend } from '../../src/tensor/native.js';
import type { Backend } from '../../src/tensor/backend.js';
import type { Buf, KvDType, LoraSegment, SeqRows } from '../../src/tensor/device.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, f32ToF16, f16ToF32 } from '../../src/tensor/dtype.js';
import { quantizeMatrix, quantizeRowQ8_0, dequantizeRowQ8_0 } from '../../src/quant/index.js';
import { weightRow } from '../../src/tensor/weight_row.js';
import { kvRowBytes } from '../../src/tensor/host_kv.js';
import { rng, NO_NATIVE } from '../native/util.js';

const backends: Backend[] = [new ReferenceBackend()];
if (!NO_NATIVE) backends.push(NativeBackend.create(2));
const r = rng(11);

/** Plain f32 dot products, accumulated in double and rounded once (the reference linear's arithmetic). */
function plainLinear(x: Float32Array, m: number, w: Tensor): Float32Array {
  const [n, k] = w.shape as [number, number];
  const y = new Float32Array(m * n), row = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    weightRow(w, j, k, row);
    for (let i = 0; i < m; i++) { let s = 0; for (let t = 0; t < k; t++) s += x[i * k + t]! * row[t]!; y[i * n + j] = s; }
  }
  return y;
}

function weight(dtype: 'f32' | 'bf16' | 'q8_0' | 'q4_k', n: number, k: number): Tensor {
  const f = r(n * k, -0.5, 0.5);
  if (dtype === 'f32') return new Tensor('f32', [n, k], f);
  if (dtype === 'bf16') return new Tensor('bf16', [n, k], encodeBf16(f));
  return new Tensor(dtype, [n, k], quantizeMatrix(f, n, k, dtype));
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!)); return d; };

for (const be of backends) {
  const dev = be.device;
  const up = (a: Float32Array): Buf => { const b = dev.alloc(a.length); dev.upload(a, b); return b; };
  const down = (b: Buf, n?: number) => dev.download(b, 0, n);
  // The host device is the oracle: exact arithmetic and its own error texts. The native device (its own
  // kernels, src/tensor/native_device.ts) is held to f32 rounding and to throwing at all.
  const host = be.name === 'reference';
  const throws = (f: () => void, msg: RegExp) => (host ? expect(f).toThrow(msg) : expect(f).toThrow());
  const same = (a: number, b: number, what: string) => (host ? expect(a, what).toBe(b) : expect(Math.abs(a - b), what).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(b))));

  describe(`host device ops (${be.name} backend)`, () => {
    it('alloc/upload/download/gatherRows', () => {
      const b = dev.alloc(10);
      expect(Array.from(down(b))).toEqual(new Array(10).fill(0));
      dev.upload(Float32Array.of(1, 2, 3), b, 4);
      expect(Array.from(dev.download(b, 3, 5))).toEqual([0, 1, 2, 3, 0]);
      const x = up(r(7 * 3)), o = dev.alloc(9);
      dev.gatherRows(x, 3, Int32Array.of(6, 0, 4), o);
      const xs = down(x);
      expect(Array.from(down(o))).toEqual([...xs.subarray(18, 21), ...xs.subarray(0, 3), ...xs.subarray(12, 15)]);
      throws(() => dev.gatherRows(x, 3, Int32Array.of(7), o), /row 7 is outside/);
      throws(() => dev.upload(new Float32Array(11), b), /too small/);
    });

    it('embedding of every weight dtype = the decoded rows; bad ids are named', () => {
      for (const dt of ['f32', 'bf16', 'q8_0', 'q4_k'] as const) {
        const t = weight(dt, 13, 256), ids = Int32Array.of(12, 0, 5, 5), o = dev.alloc(4 * 256);
        dev.embedding(t, ids, o);
        const want = new Float32Array(4 * 256);
        ids.forEach((id, i) => weightRow(t, id, 256, want.subarray(i * 256, (i + 1) * 256)));
        expect(down(o)).toEqual(want);
        throws(() => dev.embedding(t, Int32Array.of(13), o), /token id 13 at 0 is outside the vocabulary \[0, 13\)/);
      }
    });

    it('rmsNorm, swiglu and add equal per-row loops (odd dims)', () => {
      const rows = 5, dim = 37, inter = 29, w = r(dim), eps = 1e-5;
      const x = r(rows * dim, -3, 3), xb = up(x), o = dev.alloc(rows * dim);
      dev.rmsNorm(xb, rows, dim, w, eps, o);
      const got = down(o);
      for (let i = 0; i < rows; i++) {
        const row = x.subarray(i * dim, (i + 1) * dim);
        // Σx² over 16 partial sums (value j into j mod 16) combined pairwise, as the device ops define it.
        const p = new Float64Array(16);
        row.forEach((v, j) => { p[j % 16] += v * v; });
        for (let h = 8; h >= 1; h /= 2) for (let j = 0; j < h; j++) p[j] += p[j + h]!;
        const inv = 1 / Math.sqrt(p[0]! / dim + eps);
        row.forEach((v, j) => same(got[i * dim + j]!, Math.fround(w[j]! * Math.fround(v * inv)), 'rmsNorm'));
      }
      const gu = r(rows * 2 * inter, -6, 6), so = dev.alloc(rows * inter);
      dev.swiglu(up(gu), rows, inter, so);
      const sg = down(so);
      for (let i = 0; i < rows; i++) for (let j = 0; j < inter; j++) {
        const g = gu[i * 2 * inter + j]!, u = gu[i * 2 * inter + inter + j]!;
        same(sg[i * inter + j]!, Math.fround(u * (g / (1 + Math.exp(-g)))), 'swiglu');
      }
      const a = r(23), b = r(23), ab = up(a);
      dev.add(ab, up(b), 20); // only the first n
      const s = down(ab);
      for (let i = 0; i < 23; i++) expect(s[i]).toBe(i < 20 ? Math.fround(a[i]! + b[i]!) : a[i]);
    });

    it('rope rotates the first rotaryDim dims of each head at an offset, per-row tables', () => {
      const rows = 3, H = 3, d = 10, rd = 6, stride = 41, off = 7;
      const x = r(rows * stride), cos = r(rows * rd), sin = r(rows * rd), xb = up(x);
      dev.rope(xb, rows, stride, off, H, d, rd, up(cos), up(sin));
      const got = down(xb), want = x.slice();
      for (let i = 0; i < rows; i++) for (let h = 0; h < H; h++) for (let k = 0; k < rd / 2; k++) {
        const o = i * stride + off + h * d, x1 = x[o + k]!, x2 = x[o + k + rd / 2]!;
        want[o + k] = x1 * cos[i * rd + k]! - x2 * sin[i * rd + k]!;
        want[o + k + rd / 2] = x2 * cos[i * rd + k + rd / 2]! + x1 * sin[i * rd + k + rd / 2]!;
      }
      got.forEach((v, i) => same(v, want[i]!, 'rope'));
      throws(() => dev.rope(xb, rows, stride, 40, H, d, rd, up(cos), up(sin)), /do not fit rows of 41/);
    });

    it('linear with LoRA segments: base rows plus each segment\'s scale·B·(A·x), untouched rows get none', () => {
      for (const dt of ['f32', 'bf16', 'q8_0', 'q4_k'] as const) {
        const m = 7, n = 19, k = 256, rank = 5;
        const w = weight(dt, n, k), x = r(m * k);
        const A1 = weight('bf16', rank, k), B1 = weight('bf16', n, rank), A2 = weight('f32', 3, k), B2 = weight('f32', n, 3);
        const lora: LoraSegment[] = [{ rowStart: 1, rows: 2, a: A1, b: B1, scale: 0.5 }, { rowStart: 4, rows: 3, a: A2, b: B2, scale: 2 }];
        const o = dev.alloc(m * n);
        dev.linear(up(x), m, w, o, lora);
        const got = down(o);
        // Per row: the device's own 1-row base linear (bit-exact: batch invariance) plus the delta.
        const base = dev.alloc(n);
        for (let i = 0; i < m; i++) {
          dev.linear(up(x.slice(i * k, (i + 1) * k)), 1, w, base);
          const want = down(base);
          const seg = lora.find((s) => i >= s.rowStart && i < s.rowStart + s.rows);
          if (seg) {
            const ax = plainLinear(x.subarray(i * k, (i + 1) * k), 1, seg.a), bax = plainLinear(ax, 1, seg.b);
            for (let j = 0; j < n; j++) want[j] = Math.fround(want[j]! + seg.scale * bax[j]!);
            // LoRA GEMMs of the native backend round differently from plain loops: f32 sums of ≤ 256 terms.
            const tol = be.name === 'reference' ? 0 : 1e-5;
            expect(maxDiff(got.subarray(i * n, (i + 1) * n), want), `${dt} row ${i}`).toBeLessThanOrEqual(tol);
          } else {
            expect(got.subarray(i * n, (i + 1) * n), `${dt} row ${i}`).toEqual(want);
          }
          if (be.name === 'reference' && !seg) expect(got.subarray(i * n, (i + 1) * n)).toEqual(plainLinear(x.subarray(i * k, (i + 1) * k), 1, w));
        }
      }
      const w = weight('f32', 4, 8);
      throws(() => dev.linear(up(r(16)), 2, w, dev.alloc(8), [{ rowStart: 1, rows: 2, a: weight('f32', 2, 8), b: weight('f32', 4, 2), scale: 1 }]), /LoRA rows \[1, 3\) outside the 2 rows/);
      throws(() => dev.linear(up(r(16)), 2, w, dev.alloc(8), [{ rowStart: 0, rows: 2, a: weight('f32', 2, 6), b: weight('f32', 4, 2), scale: 1 }]), /do not fit/);
    });
  });

  describe(`paged KV and attention (${be.name} backend)`, () => {
    const H = 6, KV = 2, layers = 2, blockSize = 4, numBlocks = 24;
    /** Three sequences of a ragged batch: (cached, new rows). Block tables interleave and run backwards. */
    const shapes = [[0, 5], [9, 1], [3, 7]] as const;
    function batch(): SeqRows[] {
      const free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i).filter((b) => b % 3 !== 1);
      let row = 0;
      return shapes.map(([start, rows]) => {
        const blocks = Math.ceil((start + rows) / blockSize);
        const s: SeqRows = { rowStart: row, rows, start, blockTable: Int32Array.from(free.splice(0, blocks)) };
        row += rows;
        return s;
      });
    }
    /** K/V as stored: exact for f32; f16-rounded; q8_0 per group of 32 (ggml's quantizer on whole groups). */
    function stored(x: Float32Array, dtype: KvDType, d: number): Float32Array {
      if (dtype === 'f32') return x;
      if (dtype === 'f16') return x.map((v) => f16ToF32(f32ToF16(v)));
      const y = new Float32Array(x.length), q = new Uint8Array(34);
      for (let h = 0; h < x.length; h += d) for (let g = 0; g < d; g += 32) {
        const n = Math.min(32, d - g), blk = new Float32Array(32);
        blk.set(x.subarray(h + g, h + g + n));
        quantizeRowQ8_0(blk, q);
        dequantizeRowQ8_0(q, blk);
        y.set(blk.subarray(0, n), h + g);
      }
      return y;
    }

    for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
      for (const d of [16, 40, 64]) {
        // The native q8_0 pool takes whole ggml blocks of 32 per head (headDim % 32 = 0).
        it(`${dtype} store, headDim ${d}: ragged paged attention = v1 attention on the sequence's contiguous K/V`, () => {
          const seqs = batch(), qkvRow = (H + 2 * KV) * d, stride = qkvRow + 3; // a padded row, like a fused qkv
          const kv = dev.allocKv({ layers, numBlocks, blockSize, nKvHeads: KV, headDim: d, dtype });
          expect(kv.bytes).toBe(2 * layers * numBlocks * blockSize * kvRowBytes(dtype, KV, d));
          const oracleTol = be.name === 'reference' ? 1e-6 : 2e-6; // native softmax/exp: f32 rounding
          // Each sequence's full history [0, start + rows) of K/V per layer; the cached part written first.
          const hist = shapes.map(([s, n]) => ({ k: r((s + n) * KV * d), v: r((s + n) * KV * d) }));
          const rowsTotal = shapes.reduce((a, [, n]) => a + n, 0);
          for (let layer = 0; layer < layers; layer++) {
            seqs.forEach((s, i) => {
              if (s.start === 0) return;
              const src = new Float32Array(s.start * 2 * KV * d);
              for (let p = 0; p < s.start; p++) {
                src.set(hist[i]!.k.subarray(p * KV * d, (p + 1) * KV * d), p * 2 * KV * d);
                src.set(hist[i]!.v.subarray(p * KV * d, (p + 1) * KV * d), p * 2 * KV * d + KV * d);
              }
              dev.kvWrite(kv, layer, up(src), 2 * KV * d, 0, KV * d, [{ rowStart: 0, rows: s.start, start: 0, blockTable: s.blockTable }]);
            });
            const qkv = r(rowsTotal * stride);
            seqs.forEach((s, i) => {
              for (let j = 0; j < s.rows; j++) {
                const o = (s.rowStart + j) * stride, p = s.start + j;
                qkv.set(hist[i]!.k.subarray(p * KV * d, (p + 1) * KV * d), o + H * d);
                qkv.set(hist[i]!.v.subarray(p * KV * d, (p + 1) * KV * d), o + (H + KV) * d);
              }
            });
            const qb = up(qkv), out = dev.alloc(rowsTotal * H * d);
            dev.kvWrite(kv, layer, qb, stride, H * d, (H + KV) * d, seqs);
            dev.pagedAttention(qb, stride, 0, kv, layer, seqs, H, 1 / Math.sqrt(d), out);
            const got = down(out);
            seqs.forEach((s, i) => {
              const q = new Float32Array(s.rows * H * d);
              for (let j = 0; j < s.rows; j++) q.set(qkv.subarray((s.rowStart + j) * stride, (s.rowStart + j) * stride + H * d), j * H * d);
              const tk = s.start + s.rows;
              const p = { q, tq: s.rows, tk, nHeads: H, nKvHeads: KV, headDim: d, scale: 1 / Math.sqrt(d), causalOffset: s.start };
              const g = got.subarray(s.rowStart * H * d, (s.rowStart + s.rows) * H * d);
              // Against attention over the values as stored (f16-rounded, q8_0 round trip): same arithmetic.
              const want = referenceAttention({ ...p, k: stored(hist[i]!.k, dtype, d), v: stored(hist[i]!.v, dtype, d) });
              expect(maxDiff(g, want), `seq ${i} layer ${layer} vs stored values`).toBeLessThanOrEqual(oracleTol);
              // Against the exact values: f32 within 1e-6; f16 rounds each K/V value by ≤ 2^-11 relative
              // (|x| < 1 here: ≤ 4.9e-4 absolute) and q8_0 by ≤ d/2 = amax/254 (≤ 3.9e-3): the outputs (convex
              // combinations of V, scores moved by ≤ |q|·|ΔK|·scale) move by at most a few of those.
              const exact = referenceAttention({ ...p, k: hist[i]!.k, v: hist[i]!.v });
              const tol = dtype === 'f32' ? oracleTol : dtype === 'f16' ? 2e-3 : 2e-2;
              expect(maxDiff(g, exact), `seq ${i} layer ${layer} vs exact`).toBeLessThanOrEqual(tol);
            });
          }
        });
      }
    }

    it('kvCopyBlocks copies every layer\'s K and V of whole blocks; bad tables and ids are named', () => {
      const d = 16, kv = dev.allocKv({ layers, numBlocks: 6, blockSize, nKvHeads: KV, headDim: d, dtype: 'f16' });
      const src = up(r(7 * 2 * KV * d));
      for (let l = 0; l < layers; l++) dev.kvWrite(kv, l, src, 2 * KV * d, 0, KV * d, [{ rowStart: 0, rows: 7, start: 0, blockTable: Int32Array.of(3, 1) }]);
      dev.kvCopyBlocks(kv, Int32Array.of(3, 1), Int32Array.of(0, 5));
      const q = up(r(H * d));
      const att = (table: Int32Array, l: number) => { const o = dev.alloc(H * d); dev.pagedAttention(q, H * d, 0, kv, l, [{ rowStart: 0, rows: 1, start: 6, blockTable: table }], H, 0.25, o); return down(o); };
      // Position 6 (the query) is read from the table's block too: both tables see the same 7 positions.
      for (let l = 0; l < layers; l++) expect(att(Int32Array.of(0, 5), l)).toEqual(att(Int32Array.of(3, 1), l));
      throws(() => dev.kvCopyBlocks(kv, Int32Array.of(6), Int32Array.of(0)), /block id 6 is outside the pool \[0, 6\)/);
      const seq = (t: Int32Array): SeqRows[] => [{ rowStart: 0, rows: 1, start: 4, blockTable: t }];
      throws(() => dev.kvWrite(kv, 0, src, 2 * KV * d, 0, KV * d, seq(Int32Array.of(1))), /block table has 1 blocks; positions \[0, 5\) need 2/);
      throws(() => dev.kvWrite(kv, 0, src, 2 * KV * d, 0, KV * d, seq(Int32Array.of(1, 9))), /block id 9 \(entry 1\) is outside the pool/);
      throws(() => dev.kvWrite(kv, 2, src, 2 * KV * d, 0, KV * d, seq(Int32Array.of(1, 2))), /layer 2 outside \[0, 2\)/);
      throws(() => dev.allocKv({ layers, numBlocks: 0, blockSize, nKvHeads: KV, headDim: d, dtype: 'f16' }), /numBlocks must be a positive integer/);
      throws(() => dev.allocKv({ layers, numBlocks: 2, blockSize, nKvHeads: KV, headDim: d, dtype: 'bf16' as KvDType }), /'bf16' is not one of f32, f16, q8_0/);
    });

    it('f16 storage is half of f32 (128 KiB per token at Phi-4-mini size), q8_0 about a quarter', () => {
      const perToken = (dtype: KvDType) => 2 * 32 * kvRowBytes(dtype, 8, 128); // K+V, 32 layers, 8 kv heads of 128
      expect(perToken('f32')).toBe(256 * 1024);
      expect(perToken('f16')).toBe(128 * 1024);
      expect(perToken('q8_0')).toBe(68 * 1024);
    });
  });
}
