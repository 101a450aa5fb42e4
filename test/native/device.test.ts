// The native DeviceOps' glue ops (rmsNorm, rope, swiglu, add, embedding, gatherRows, LoRA row segments) against
// the TypeScript statement of their semantics (device_oracle.ts), on odd shapes, for every ISA at 1 and 2 threads.
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native.js';
import { HostBuf, type NativeDevice } from '../../src/tensor/native_device.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, encodeF16 } from '../../src/tensor/dtype.js';
import { quantizeMatrix } from '../../src/quant/index.js';
import type { LoraSegment } from '../../src/tensor/device.js';
import * as O from './device_oracle.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend, error } = loadNative();

function rel(want: Float32Array, k: number, abs = 0): Float64Array {
  return Float64Array.from(want, (v) => k * Math.abs(v) + abs);
}

describe.skipIf(NO_NATIVE)('native device glue ops', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;
  const dev: NativeDevice = nb.device();
  const buf = (a: Float32Array) => new HostBuf(a.slice());
  afterAll(() => {
    nb.setThreads(2);
    nb.setIsa(nb.availableIsas()[0]!);
  });

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const threads of [1, 2]) {
      const has = nb.availableIsas().includes(isa);
      const tag = `${isa} ${threads}t`;
      const setup = () => {
        nb.setIsa(isa);
        nb.setThreads(threads);
      };

      it.skipIf(!has)(`${tag}: rmsNorm within 1 ulp of ops.ts, most values bit-identical`, () => {
        setup();
        const r = rng(11);
        for (const [rows, dim] of [[5, 3073], [3, 7], [70, 1000]] as const) {
          const x = r(rows * dim, -3, 3), w = r(dim, 0.5, 1.5);
          const want = O.rmsNorm(x, rows, dim, w, 1e-5);
          const out = dev.alloc(rows * dim);
          dev.rmsNorm(buf(x), rows, dim, w, 1e-5, out);
          // Both sum x² in f64 (only the order differs, ~1e-16 relative), so 1/rms agrees far below f32
          // resolution; fround(x·inv) can differ only at a rounding tie boundary, then ·w: ≤ 1 ulp (2^-23 rel).
          expectWithin(out.data, want, rel(want, 2 * U32), `${tag} rmsNorm ${rows}x${dim}`);
          const same = out.data.reduce((n, v, i) => n + (v === want[i] ? 1 : 0), 0);
          expect(same / want.length).toBeGreaterThan(0.999);
          // In place (out = x) gives the same values.
          const xb = buf(x);
          dev.rmsNorm(xb, rows, dim, w, 1e-5, xb);
          expect(xb.data).toEqual(out.data);
        }
      });

      it.skipIf(!has)(`${tag}: rope bit-identical with the TS formula (strided rows, partial rotary, odd heads)`, () => {
        setup();
        const r = rng(12);
        // qkv-like rows: 5 heads of 40 at column 24 of rows of 260, rotary on the first 24 dims.
        const rows = 7, stride = 260, off = 24, nh = 5, hd = 40, rd = 24;
        const x = r(rows * stride, -2, 2), cos = r(rows * rd), sin = r(rows * rd);
        const want = x.slice();
        O.rope(want, rows, stride, off, nh, hd, rd, cos, sin);
        const xb = buf(x);
        dev.rope(xb, rows, stride, off, nh, hd, rd, buf(cos), buf(sin));
        expect(xb.data).toEqual(want);
        expect(() => dev.rope(xb, rows, stride, 240, nh, hd, rd, buf(cos), buf(sin))).toThrow(/past the row stride/);
      });

      it.skipIf(!has)(`${tag}: swiglu within 8·2^-24 relative of up·silu(gate) in f64`, () => {
        setup();
        const r = rng(13);
        for (const [rows, inter] of [[3, 1001], [1, 8192], [9, 5]] as const) {
          const gu = r(rows * 2 * inter, -12, 12);
          gu[0] = -100; gu[1] = 95; gu[2] = 0;  // exp overflow to Inf (silu → −0), underflow, zero
          const want = O.swiglu(gu, rows, inter);
          const out = dev.alloc(rows * inter);
          dev.swiglu(buf(gu), rows, inter, out);
          // e^x ≤ 2 ulp (4·2^-24 relative), then 1 + e, the division and ·up round once each (≤ 2^-24 each);
          // silu's sensitivity to e's error is e/(1+e) ≤ 1, and the oracle rounds once more: ≤ 8·2^-24.
          expectWithin(out.data, want, rel(want, 8 * U32, 1e-37), `${tag} swiglu ${rows}x${inter}`);
        }
      });

      it.skipIf(!has)(`${tag}: add, gatherRows and embedding are exact`, () => {
        setup();
        const r = rng(14);
        const n = 100_003;
        const a = r(n), b = r(n);
        const ab = buf(a);
        dev.add(ab, buf(b), n);
        expect(ab.data).toEqual(Float32Array.from(a, (v, i) => v + b[i]!));

        const dim = 37, x = r(11 * dim), rows = Int32Array.from([10, 0, 3, 3]);
        const g = dev.alloc(rows.length * dim);
        dev.gatherRows(buf(x), dim, rows, g);
        rows.forEach((row, i) => expect(g.data.subarray(i * dim, (i + 1) * dim)).toEqual(x.subarray(row * dim, (row + 1) * dim)));
        expect(() => dev.gatherRows(buf(x), dim, Int32Array.from([11]), g)).toThrow(/outside the buffer's 11 rows/);

        const vocab = 13, hid = 512, table = r(vocab * hid, -2, 2);
        const ids = Int32Array.from([12, 0, 5, 5, 7]);
        const tables = [
          new Tensor('f32', [vocab, hid], table),
          new Tensor('bf16', [vocab, hid], encodeBf16(table)),
          new Tensor('f16', [vocab, hid], encodeF16(table)),
          new Tensor('q8_0', [vocab, hid], quantizeMatrix(table, vocab, hid, 'q8_0')),
          new Tensor('q4_k', [vocab, hid], quantizeMatrix(table, vocab, hid, 'q4_k')),
          new Tensor('f32', [vocab + 2, hid], r((vocab + 2) * hid)).narrow(0, 2, vocab),  // a view at an offset
        ];
        for (const t of tables) {
          const out = dev.alloc(ids.length * hid);
          dev.embedding(t, ids, out);
          expect(out.data, `embedding ${t.dtype}`).toEqual(O.embedding(t, ids));
        }
        expect(() => dev.embedding(tables[0]!, Int32Array.from([vocab]), dev.alloc(hid))).toThrow(/token id 13 at 0 is outside \[0, 13\)/);
      });

      it.skipIf(!has)(`${tag}: linear with LoRA row segments (bf16/f16/f32 A and B, rows without adapter)`, () => {
        setup();
        const r = rng(15);
        const m = 9, k = 70, n = 37;
        const w = new Tensor('f32', [n, k], r(n * k));
        const x = r(m * k, -2, 2);
        const ad1 = { a: new Tensor('bf16', [5, k], encodeBf16(r(5 * k))), b: new Tensor('bf16', [n, 5], encodeBf16(r(n * 5))) };
        const ad2 = { a: new Tensor('f32', [3, k], r(3 * k)), b: new Tensor('f16', [n, 3], encodeF16(r(n * 3))) };
        const segs: LoraSegment[] = [
          { rowStart: 0, rows: 2, ...ad1, scale: 2 },
          // rows 2..3 use no adapter
          { rowStart: 4, rows: 4, ...ad2, scale: 0.75 },
          { rowStart: 8, rows: 1, ...ad1, scale: 2 },
        ];
        const want = O.linear(x, m, w, segs);
        // Error bound from the magnitudes: each product sums K terms in f32, |err| ≤ ~K·2^-24·Σ|terms|.
        const abs = (t: Tensor) => new Tensor('f32', t.shape, Float32Array.from(t.f32(), Math.abs));
        const mag = O.linear(x.map(Math.abs), m, abs(w), segs.map((s) => ({ ...s, a: abs(s.a), b: abs(s.b) })));
        const out = dev.alloc(m * n);
        dev.linear(buf(x), m, w, out, segs);
        expectWithin(out.data, want, Float64Array.from(mag, (v) => 2 * (k + 8) * U32 * v), `${tag} linear+lora`);
        // Batch invariance of the LoRA delta: each row alone gives the same bits as inside its segment.
        const lib = loadAddon();
        const flat = (s: LoraSegment, row0: number, rows: number) => [row0, rows, s.a.shape[0]!, s.a.data as Uint16Array, s.a.dtype === 'f32' ? 0 : s.a.dtype === 'bf16' ? 1 : 2, 0, s.b.data as Uint16Array, s.b.dtype === 'f32' ? 0 : s.b.dtype === 'bf16' ? 1 : 2, 0, s.scale];
        const all = new Float32Array(m * n);
        lib.loraAdd(x, m, k, all, n, segs.flatMap((s) => flat(s, s.rowStart, s.rows)));
        for (const s of segs)
          for (let i = s.rowStart; i < s.rowStart + s.rows; i++) {
            const one = new Float32Array(n);
            lib.loraAdd(x.subarray(i * k, (i + 1) * k), 1, k, one, n, flat(s, 0, 1));
            expect(one, `row ${i}`).toEqual(all.subarray(i * n, (i + 1) * n));
          }
        expect(() => dev.linear(buf(x), m, w, out, [{ rowStart: 8, rows: 2, ...ad1, scale: 1 }])).toThrow(/outside the 9 rows/);
      });
    }
  }
});
