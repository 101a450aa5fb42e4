// LoRA row segments through the native device (native/src/lora_napi.cc, device_gemm_cols.h) against the host
// device over the reference backend, for every ISA at 1 and 2 threads; the column-major placement of the factors
// and its way back to rows for saving.
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/tensor/native_addon.js';
import { isColumnMajor, Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, encodeF16 } from '../../src/tensor/dtype.js';
import type { LoraSegment } from '../../src/tensor/device.js';
import { hbuf as buf, oracle } from './device_oracle.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend } = loadNative();
const WTYPE = { f32: 0, bf16: 1, f16: 2 } as const;

describe.skipIf(NO_NATIVE || !backend)('native LoRA segments', () => {
  const nb = backend!;
  const dev = nb.device;
  afterAll(() => {
    nb.setThreads(2);
    nb.setIsa(nb.availableIsas()[0]!);
  });
  // k = 1100: three K chunks of the first product (512, 512, 76), the first two in passes of 128; n = 601: a
  // masked last vector; segments of 2, 13 and 2 rows: the 13 take the tile path (6 + 6 + 1 rows), the others
  // and every row alone the few-rows path (K chunks over threads, streamed columns).
  const m = 20, k = 1100, n = 601;
  const r = rng(15);
  const w = new Tensor('f32', [n, k], r(n * k));
  const x = r(m * k, -2, 2);
  const ad1 = { a: new Tensor('bf16', [5, k], encodeBf16(r(5 * k))), b: new Tensor('bf16', [n, 5], encodeBf16(r(n * 5))) };
  const ad2 = { a: new Tensor('f32', [3, k], r(3 * k)), b: new Tensor('f16', [n, 3], encodeF16(r(n * 3))) };
  const segs: LoraSegment[] = [
    { rowStart: 0, rows: 2, ...ad1, scale: 2 },
    // rows 2..3 and 17 use no adapter
    { rowStart: 4, rows: 13, ...ad2, scale: 0.75 },
    { rowStart: 18, rows: 2, ...ad1, scale: 2 },
  ];
  const want = (op: (o: ReturnType<typeof oracle.alloc>) => void) => {
    const out = oracle.alloc(m * n);
    op(out);
    return oracle.download(out);
  };
  const ref = want((o) => oracle.linear(buf(x), m, w, o, segs));
  // Error bound from the magnitudes: each product sums K terms in f32, |err| ≤ ~K·2^-24·Σ|terms|.
  const abs = (t: Tensor) => new Tensor('f32', t.shape, Float32Array.from(t.f32(), Math.abs));
  const mag = want((o) => oracle.linear(buf(x.map(Math.abs)), m, abs(w), o, segs.map((s) => ({ ...s, a: abs(s.a), b: abs(s.b) }))));
  const tol = Float64Array.from(mag, (v) => 2 * (k + 8) * U32 * v);

  /** The addon's flat segment fields with the factors placed column-major. */
  const placed = new Map<Tensor, Tensor>();
  const cm = (t: Tensor) => placed.get(t) ?? placed.set(t, nb.columnMajor(t)).get(t)!;
  const flat = (s: LoraSegment, row0: number, rows: number) => {
    const a = cm(s.a), b = cm(s.b);
    return [row0, rows, s.a.shape[0]!, a.data as Uint16Array, WTYPE[a.dtype as 'f32'], a.offset, b.data as Uint16Array, WTYPE[b.dtype as 'f32'], b.offset, s.scale];
  };

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    for (const threads of [1, 2]) {
      const tag = `${isa} ${threads}t`;
      it.skipIf(!nb.availableIsas().includes(isa))(`${tag}: linear with LoRA segments matches the oracle; a row's delta is the same bits alone or in any batch`, () => {
        nb.setIsa(isa);
        nb.setThreads(threads);
        const out = dev.alloc(m * n);
        dev.linear(buf(x), m, w, out, segs);  // row-major factors: transposed by the device
        expectWithin(out.data, ref, tol, `${tag} linear+lora`);
        // Factors placed column-major give the same bits as the device's own transposed copies.
        const again = dev.alloc(m * n);
        dev.linear(buf(x), m, w, again, segs.map((s) => ({ ...s, a: cm(s.a), b: cm(s.b) })));
        expect(again.data).toEqual(out.data);

        const lib = loadAddon();
        const all = new Float32Array(m * n);
        lib.loraAdd(x, m, k, all, n, segs.flatMap((s) => flat(s, s.rowStart, s.rows)));
        for (const s of segs) {
          for (let i = s.rowStart; i < s.rowStart + s.rows; i++) {
            const one = new Float32Array(n);
            lib.loraAdd(x.subarray(i * k, (i + 1) * k), 1, k, one, n, flat(s, 0, 1));
            expect(one, `${tag} row ${i} alone`).toEqual(all.subarray(i * n, (i + 1) * n));
          }
        }
        // The 13-row segment cut at other places (7 + 6 rows: few-rows path and tile path) gives the same bits.
        const cut = new Float32Array(m * n);
        const s2 = segs[1]!;
        lib.loraAdd(x, m, k, cut, n, [...flat(s2, 4, 7), ...flat(s2, 11, 6)]);
        expect(cut.subarray(4 * n, 17 * n)).toEqual(all.subarray(4 * n, 17 * n));
        expect(() => dev.linear(buf(x), m, w, out, [{ rowStart: 19, rows: 2, ...ad1, scale: 1 }])).toThrow(/LoRA rows \[19, 21\) outside the 20 rows/);
      });
    }
  }

  it('places factors column-major and turns them back into rows', () => {
    for (const t of [ad1.a, ad1.b, ad2.a, ad2.b, new Tensor('f32', [4, 6], r(24)).narrow(1, 1, 4)]) {
      const c = nb.columnMajor(t);
      expect(isColumnMajor(c), `${t.dtype}${JSON.stringify(t.shape)}`).toBe(true);
      expect(c.shape).toEqual(t.shape);
      expect(c.contiguous().data).toEqual(t.contiguous().data);  // same values through the strides
      expect(nb.columnMajor(c)).toBe(c);
      const rows = nb.rowMajorOf(c);
      expect(rows.isContiguous()).toBe(true);
      expect(rows.data).toEqual(t.contiguous().data);
    }
    expect(() => nb.columnMajor(new Tensor('f32', [2, 3, 4], r(24)))).toThrow(/columnMajor: needs a 2-D f32\/bf16\/f16 tensor, got f32\[2,3,4\]/);
    const lib = loadAddon();
    const u = new Uint16Array(12);
    expect(() => lib.transpose16(u, 3, 4, u)).toThrow(/transpose: src and dst must not be the same buffer/);
    expect(() => lib.transpose16(u, 4, 4, new Uint16Array(16))).toThrow(/transpose src/);
    const a = cm(ad1.a);
    expect(() => lib.loraAdd(x, m, k + 1, new Float32Array(m * n), n, [0, 1, 5, a.data as Uint16Array, 1, 0, cm(ad1.b).data as Uint16Array, 1, 0, 1])).toThrow(/lora x|lora A/);
  });
});
