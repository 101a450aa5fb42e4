// The x16 weight layout (rows interleaved by 16, native/src/interleave.h): the native in-place conversion
// equals the TypeScript reference byte for byte and round-trips, and the GEMM over x16 weights is bit-exact
// with the plain reference kernel on the ggml rows for every ISA, thread count and M (same exact int32 block
// dots and float combination order as qgemm.test.ts, so no tolerance). Readers of x16 tensors (embedding,
// toF32, narrow, save's rowMajor) give what the ggml rows give.
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native_addon.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { quantizeMatrix, QK_K, QK8_0 } from '../../src/quant/index.js';
import { deinterleaveX16, interleaveX16, x16Row } from '../../src/quant/interleave.js';
import { loadNative, NO_NATIVE, rng } from './util.js';

const { backend } = loadNative();

interface XAddon {
  linearQ(x: Float32Array, m: number, w: Uint8Array, format: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  linearQRef(x: Float32Array, m: number, w: Uint8Array, format: number, n: number, k: number, bias: Float32Array | null, out: Float32Array): void;
  interleaveX16(data: Uint8Array, format: number, rows: number, k: number): void;
}

const FORMATS = [
  { dtype: 'q4_k', fmt: 0, ks: [256, 768] },
  { dtype: 'q8_0', fmt: 1, ks: [32, 64, 96, 544] },
] as const;

/** [n, k] quantized weights whose rows differ in scale and sign (varied block scales and Q4_K mins). */
function weights(dtype: 'q4_k' | 'q8_0', n: number, k: number, seed: number): Uint8Array {
  const w = rng(seed)(n * k).map((v, i) => {
    const row = Math.floor(i / k);
    return row % 11 === 5 ? 0 : row % 7 === 3 ? -Math.abs(v) * 3 : v * (1 + (row % 5));
  });
  return quantizeMatrix(w, n, k, dtype);
}

describe('x16 layout: the TypeScript reference', () => {
  for (const f of FORMATS) {
    it(`${f.dtype}: interleave then de-interleave gives the rows back; x16Row reads any row`, () => {
      const n = 48;
      for (const k of f.ks) {
        const rows = weights(f.dtype, n, k, 5);
        const x = interleaveX16(f.dtype, rows, n, k);
        expect(x.length).toBe(rows.length);
        expect(Buffer.from(x).equals(Buffer.from(rows))).toBe(false); // really reordered
        expect(deinterleaveX16(f.dtype, x, n, k)).toEqual(rows);
        const rb = rows.length / n, one = new Uint8Array(rb);
        for (const r of [0, 15, 16, 33, 47]) {
          x16Row(f.dtype, x, n, k, r, one);
          expect(one, `row ${r} K=${k}`).toEqual(rows.subarray(r * rb, (r + 1) * rb));
        }
        expect(() => interleaveX16(f.dtype, rows.subarray(0, 40 * rb), 40, k)).toThrow(/40 rows is not a multiple of 16/);
      }
    });
  }

  it('q8_0 blocks sit in pairs (qs, qs, d, d), so every 64-byte quant chunk of a group is one cache line', () => {
    const n = 16, k = 96; // 3 blocks: a pair, then an odd last block (qs, d)
    const rows = weights('q8_0', n, k, 7), rb = rows.length / n;
    const x = interleaveX16('q8_0', rows, n, k);
    // row r's block b: d at ggml bytes 0..1, weight 4c..4c+3 at 2 + 4c
    const at = (r: number, b: number, o: number) => rows[r * rb + b * 34 + o]!;
    for (const r of [0, 9, 15]) {
      for (const [b, qs, d] of [[0, 0, 1024], [1, 512, 1056], [2, 1088, 1600]] as const) {
        for (let c = 0; c < 8; c++) expect(x[qs + 64 * c + 4 * r], `row ${r} block ${b} chunk ${c}`).toBe(at(r, b, 2 + 4 * c));
        expect([x[d + 2 * r], x[d + 2 * r + 1]], `row ${r} block ${b} d`).toEqual([at(r, b, 0), at(r, b, 1)]);
      }
    }
  });

  it('x16 tensors read like their rows: toF32, narrow (aligned and not), rowMajor', () => {
    const n = 32, k = 256;
    const rows = weights('q4_k', n, k, 6);
    const plain = new Tensor('q4_k', [n, k], rows);
    const x = new Tensor('q4_k', [n, k], interleaveX16('q4_k', rows, n, k), undefined, 0, 'x16');
    expect(x.toF32().data).toEqual(plain.toF32().data);
    expect(x.narrow(0, 16, 16).layout).toBe('x16');
    expect(x.narrow(0, 16, 16).toF32().data).toEqual(plain.narrow(0, 16, 16).toF32().data);
    expect(x.narrow(0, 3, 9).layout).toBe('rows');
    expect(x.narrow(0, 3, 9).toF32().data).toEqual(plain.narrow(0, 3, 9).toF32().data);
    expect(x.rowMajor().data).toEqual(rows);
    expect(() => new Tensor('q4_k', [8, k], rows.subarray(0, 8 * 144), undefined, 0, 'x16')).toThrow(/multiple of 16 rows/);
    expect(() => new Tensor('f32', [2], new Float32Array(2), undefined, 0, 'x16')).toThrow(/quantized tensors only/);
  });
});

describe.skipIf(NO_NATIVE)('x16 layout: native conversion and GEMM', () => {
  if (!backend) return;
  const nb = backend;
  const lib = loadAddon() as unknown as XAddon;

  for (const f of FORMATS) {
    it(`${f.dtype}: the native in-place conversion equals the reference; preferredLayout and rowMajorOf round-trip`, () => {
      const n = 64;
      for (const k of f.ks) {
        const rows = weights(f.dtype, n, k, 7);
        const data = rows.slice();
        lib.interleaveX16(data, f.fmt, n, k);
        expect(data, `K=${k}`).toEqual(interleaveX16(f.dtype, rows, n, k));
      }
      const k = f.ks[0], rows = weights(f.dtype, n, k, 7), data = rows.slice();
      for (const isa of nb.availableIsas()) { // x16 where the AVX-512 VNNI or AVX2 kernels run; ggml rows on scalar
        nb.setIsa(isa);
        const t = nb.preferredLayout(new Tensor(f.dtype, [n, k], rows.slice()));
        expect(t.layout, isa).toBe(isa === 'scalar' ? 'rows' : 'x16');
        expect(nb.rowMajorOf(t).data).toEqual(rows);
      }
      nb.setIsa(nb.availableIsas()[0]!);
      expect(() => lib.interleaveX16(data.subarray(0, 24 * (data.length / n)), f.fmt, 24, k)).toThrow(/24 rows is not a multiple of 16/);
    });
  }

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const f of FORMATS) {
      it.skipIf(!nb.availableIsas().includes(isa))(`${isa} ${f.dtype} x16: bit-exact with the reference on the rows, M = 1..33, 1 and 2 threads`, () => {
        nb.setIsa(isa);
        const r = rng(f.fmt === 0 ? 31 : 32);
        for (const k of f.ks) {
          // 1072 rows = 67 groups: at 2 threads each takes its half in claims of several groups, then takes from
          // the back of the other's (native/src/addon.cc, parallel_split); a row lost or written twice shows here.
          for (const n of [16, 48, 80, 1072]) {
            const rows = weights(f.dtype, n, k, n + k);
            const x16 = interleaveX16(f.dtype, rows, n, k);
            const mMax = 33;
            const x = r(mMax * k, -2, 2);
            for (let i = 0; i < k; i++) x[5 * k + i] = 0; // an all-zero activation row
            const bias = n === 48 ? r(n) : null;
            const want = new Float32Array(mMax * n);
            lib.linearQRef(x, mMax, rows, f.fmt, n, k, bias, want);
            const viaRef = new Float32Array(mMax * n);
            lib.linearQRef(x, mMax, x16, f.fmt + 2, n, k, bias, viaRef);
            expect(viaRef).toEqual(want);
            for (const m of [1, 2, 3, 4, 7, 8, 9, 16, 17, 33])
              for (const t of n === 1072 && m <= 8 ? [1, 2, 2, 2, 2, 2] : [1, 2]) {
                nb.setThreads(t);
                const got = new Float32Array(m * n).fill(NaN);
                lib.linearQ(x, m, x16, f.fmt + 2, n, k, bias, got);
                expect(got, `${isa} ${f.dtype} x16 M=${m} N=${n} K=${k} threads=${t}`).toEqual(want.subarray(0, m * n));
              }
          }
        }
      });
    }
  }

  it('an x16 weight whose rows are not a multiple of 16 is refused', () => {
    const k = 256, rows = weights('q4_k', 16, k, 9);
    expect(() => lib.linearQ(new Float32Array(k), 1, rows.subarray(0, 8 * 144), 2, 8, k, null, new Float32Array(8))).toThrow(/multiple of 16 rows, got 8/);
  });

  it('the device embedding of an x16 table equals that of its rows (q4_k and q8_0)', () => {
    nb.setIsa(nb.availableIsas()[0]!);
    for (const f of FORMATS) {
      const n = 32, k = f.ks[0];
      const rows = weights(f.dtype, n, k, 11);
      const plain = new Tensor(f.dtype, [n, k], rows);
      const x = new Tensor(f.dtype, [n, k], interleaveX16(f.dtype, rows, n, k), undefined, 0, 'x16');
      const ids = Int32Array.from([0, 31, 17, 16, 5]);
      const dev = nb.device;
      const a = dev.alloc(ids.length * k), b = dev.alloc(ids.length * k);
      dev.embedding(plain, ids, a);
      dev.embedding(x, ids, b);
      expect(dev.download(b)).toEqual(dev.download(a));
      expect(dev.download(a).subarray(0, k)).toEqual(plain.toF32().data.subarray(0, k));
    }
  });
});
