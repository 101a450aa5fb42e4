// The native DeviceOps' glue ops (rmsNorm, rope, swiglu, add, embedding, gatherRows; LoRA: lora.test.ts) against
// the host device over the reference backend (the TypeScript oracle), on odd shapes, for every ISA at 1 and 2
// threads.
import { afterAll, describe, expect, it } from 'vitest';
import type { NativeDevice } from '../../src/tensor/native_device.js';
import type { Buf } from '../../src/tensor/device.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, encodeF16 } from '../../src/tensor/dtype.js';
import { quantizeMatrix } from '../../src/quant/index.js';
import { hbuf as buf, oracle } from './device_oracle.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend, error } = loadNative();

describe.skipIf(NO_NATIVE)('native device glue ops', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;
  const dev: NativeDevice = nb.device;
  /** Runs an op on the oracle and returns the host array of its output buffer. */
  const want = (n: number, op: (out: Buf) => void) => {
    const out = oracle.alloc(n);
    op(out);
    return oracle.download(out);
  };
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

      it.skipIf(!has)(`${tag}: rmsNorm bit-identical with the host device`, () => {
        setup();
        const r = rng(11);
        for (const [rows, dim] of [[5, 3073], [3, 7], [70, 1000]] as const) {
          const x = r(rows * dim, -3, 3), w = r(dim, 0.5, 1.5);
          const ref = want(rows * dim, (o) => oracle.rmsNorm(buf(x), rows, dim, w, 1e-5, o));
          const out = dev.alloc(rows * dim);
          dev.rmsNorm(buf(x), rows, dim, w, 1e-5, out);
          // The same operations in the same order (f64 sum over 16 partials, f64 inverse, fround, ·w in f32).
          expect(out.data, `${tag} rmsNorm ${rows}x${dim}`).toEqual(ref);
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
        const ref = buf(x);
        oracle.rope(ref, rows, stride, off, nh, hd, rd, buf(cos), buf(sin));
        const xb = buf(x);
        dev.rope(xb, rows, stride, off, nh, hd, rd, buf(cos), buf(sin));
        expect(xb.data).toEqual(ref.data);
        expect(() => dev.rope(xb, rows, stride, 240, nh, hd, rd, buf(cos), buf(sin))).toThrow(/5 heads of 40 \(rotary 24\) at column 240 do not fit rows of 260/);
      });

      it.skipIf(!has)(`${tag}: swiglu equals the host device's f64 formula (a dense sweep: ≤ 1 ulp, ≥ 99.999% exact)`, () => {
        setup();
        const r = rng(13);
        // Both evaluate up·(g/(1 + e^−g)) in f64 and round once to f32. The native f64 exp is within ~1 ulp of
        // e^x, as V8's is, so the f32 results can differ only where an f32 rounding boundary falls between the
        // two f64 values (~2^-28 of values), and then by 1 ulp.
        for (const [rows, inter] of [[3, 1001], [1, 8192], [9, 5], [2, 100_003]] as const) {
          const gu = r(rows * 2 * inter, -12, 12);
          if (inter > 10_000) for (let i = 0; i < inter; i++) gu[i] = -715 + (775 * i) / inter;  // e^−g: overflow … underflow
          gu[0] = -100; gu[1] = 95; gu[2] = 0; gu[3] = -0; gu[4] = 709.7; gu[5] = -709.7; gu[6] = -720; gu[7] = 40.5;
          const ref = want(rows * inter, (o) => oracle.swiglu(buf(gu), rows, inter, o));
          const out = dev.alloc(rows * inter);
          dev.swiglu(buf(gu), rows, inter, out);
          let differ = 0;
          for (let i = 0; i < ref.length; i++) {
            if (Object.is(out.data[i], ref[i])) continue;
            differ++;
            const ulp = ref[i] === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(Math.abs(ref[i]!))) - 23);
            expect(Math.abs(out.data[i]! - ref[i]!), `${tag} swiglu [${i}] gate ${gu[(Math.floor(i / inter)) * 2 * inter + (i % inter)]}`).toBeLessThanOrEqual(ulp);
          }
          expect(differ / ref.length, `${tag} swiglu ${rows}x${inter}: ${differ} values differ`).toBeLessThanOrEqual(1e-5);
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
        expect(() => dev.gatherRows(buf(x), dim, Int32Array.from([11]), g)).toThrow(/row 11 is outside the buffer \(11 rows of 37\)/);

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
          expect(out.data, `embedding ${t.dtype}`).toEqual(want(ids.length * hid, (o) => oracle.embedding(t, ids, o)));
        }
        expect(() => dev.embedding(tables[0]!, Int32Array.from([vocab]), dev.alloc(hid))).toThrow(/token id 13 at 0 is outside the vocabulary \[0, 13\)/);
      });
    }
  }
});
