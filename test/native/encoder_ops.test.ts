// The encoders' native ops against the reference backend on odd shapes, for every ISA and 1 and 2 threads:
// GELU (tanh form), LayerNorm, and the bf16-compute linear (vdpbf16ps) against its TS oracle (activations
// rounded to bf16 in TS, then the reference's f32 products).
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16 } from '../../src/tensor/dtype.js';
import { roundToBf16, withComputePrecision } from '../../src/tensor/precision.js';
import { expectWithin, loadNative, NO_NATIVE, rng, U32 } from './util.js';

const { backend } = loadNative();
const ref = new ReferenceBackend();

describe('roundToBf16', () => {
  it('rounds to nearest with ties to even, keeps NaN, ±Inf and signed zero', () => {
    const bits = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0]!;
    const cases: Array<[number, number]> = [
      [0x3f800000, 0x3f800000], // 1: exact
      [0x3f808000, 0x3f800000], // 1 + 2^-8: a tie, the even neighbour is 1
      [0x3f818000, 0x3f820000], // 1 + 3·2^-8: a tie, the even neighbour is 1 + 2^-6
      [0x3f808001, 0x3f810000], // just above the tie: up
      [0x3f807fff, 0x3f800000], // just below the tie: down
      [0x7f7fffff, 0x7f800000], // the largest float rounds to +Inf, as a bf16 conversion does
      [0xff800000, 0xff800000], // -Inf
      [0x80000000, 0x80000000], // -0
    ];
    const out = roundToBf16(Float32Array.from(cases, ([u]) => bits(u)));
    const got = new Uint32Array(out.buffer);
    cases.forEach(([, want], i) => expect(got[i]!.toString(16), `case ${i}`).toBe(want.toString(16)));
    expect(Number.isNaN(roundToBf16(new Float32Array([NaN]))[0])).toBe(true);
  });
});

describe.skipIf(NO_NATIVE)('native encoder ops', () => {
  if (!backend) throw new Error('native addon did not load');
  const nb = backend;
  afterAll(() => nb.setThreads(2));
  for (const isa of nb.availableIsas()) {
    for (const threads of [1, 2]) {
      describe(`isa ${isa}, ${threads} thread(s)`, () => {
        const use = () => { nb.setIsa(isa); nb.setThreads(threads); };

        it('geluTanh: within 4 ulp + 1e-7 absolute of the float64 formula, in place too', () => {
          use();
          // Odd length (not a multiple of any vector width or pool task) with tails in both saturated ranges.
          const x = rng(11)(70_001, -12, 12);
          x[0] = 0; x[1] = -0.5; x[2] = 30; x[3] = -30;
          const want = ref.geluTanh(x);
          // The kernel's exp is ≤ 1 ulp; the sigmoid form adds a division and the cubic a few f32 roundings.
          const tol = Float64Array.from(want, (v) => 4 * U32 * Math.abs(v) + 1e-7);
          expectWithin(nb.geluTanh(x), want, tol, 'gelu');
          const inPlace = Float32Array.from(x);
          nb.geluTanh(inPlace, inPlace);
          expectWithin(inPlace, want, tol, 'gelu in place');
        });

        it('conv3x3s2 (depthwise and 1-channel broadcast, ± ReLU) and relu: as the reference within the f32 sum error', () => {
          use();
          const g = rng(16);
          for (const [h, w, c] of [[1, 1, 1], [7, 5, 3], [9, 80, 33], [16, 10, 130]] as const) {
            const wt = g(9 * c), b = g(c);
            for (const cin of [1, c]) {
              const x = g(h * w * cin, -2, 2);
              for (const relu of [false, true]) {
                const want = ref.conv3x3s2(x, h, w, c, cin, wt, b, relu);
                // ≤ 10 roundings of terms bounded by |b| + 9·max|x·w| ≤ 1 + 18: an absolute bound.
                expectWithin(nb.conv3x3s2(x, h, w, c, cin, wt, b, relu), want, new Float64Array(want.length).fill(10 * 19 * U32), `conv ${h}x${w}x${c} cin ${cin} relu ${relu}`);
              }
            }
          }
          const r = g(100_003, -1, 1), want = ref.relu(Float32Array.from(r));
          expect(Array.from(nb.relu(r))).toEqual(Array.from(want));
        });

        it('swishGate (with and without biases) and silu: the TypeScript ops bit for bit (f64 with Math.exp\'s port)', () => {
          use();
          const g = rng(18);
          for (const [rows, w] of [[1, 1], [3, 7], [5, 1537], [70, 33]] as const) {
            const x = g(rows * 2 * w, -30, 30), b1 = g(w), b2 = g(w);
            x[0] = -0;  // signed zero stays as the TypeScript expression leaves it
            for (const [p, q] of [[null, null], [b1, b2]] as const) {
              expect(nb.swishGate(x, rows, w, p, q), `swishGate ${rows}x${w} ${p ? 'biases' : 'none'}`).toEqual(ref.swishGate(x, rows, w, p, q));
            }
          }
          const x = g(200_003, -100, 100);
          x.set([0, -0, 1e-30, -745, 745, NaN, Infinity, -Infinity], 0);
          expect(nb.silu(x)).toEqual(ref.silu(x));
          const inPlace = Float32Array.from(x);
          nb.silu(inPlace, inPlace);
          expect(inPlace).toEqual(ref.silu(x));
          expect(() => nb.swishGate(g(6), 2, 2, null, null, new Float32Array(3))).toThrow(/swishGate x/);
          expect(() => nb.swishGate(g(8), 2, 2, g(1), null, new Float32Array(4))).toThrow(/swishGate b1/);
        });

        it('conv3x3s2Pair: the bits of its two native convs (ring of first-conv rows), the reference within the sum error', () => {
          use();
          const g = rng(17);
          // h 1, 2 and odd/even; 29 rows split over threads with one extra first-conv row per task edge.
          for (const [h, w, c] of [[1, 1, 1], [2, 3, 2], [7, 5, 3], [29, 80, 33], [16, 10, 130]] as const) {
            const w0 = g(9 * c), b0 = g(c), w1 = g(9 * c), b1 = g(c), x = g(h * w, -2, 2);
            const two = nb.conv3x3s2(nb.conv3x3s2(x, h, w, c, 1, w0, b0, true), Math.floor((h - 1) / 2) + 1, Math.floor((w - 1) / 2) + 1, c, c, w1, b1, false);
            const pair = nb.conv3x3s2Pair(x, h, w, c, w0, b0, w1, b1);
            expect(pair, `pair ${h}x${w}x${c}`).toEqual(two);
            const want = ref.conv3x3s2Pair(x, h, w, c, w0, b0, w1, b1);
            // The second conv's terms are bounded by |b1| + 9·19 (|first| ≤ 19, |w1| ≤ 1): 10 roundings of ≤ 172,
            // plus the first conv's error carried through 9 taps of |w1| ≤ 1.
            expectWithin(pair, want, new Float64Array(want.length).fill((10 * 172 + 9 * 10 * 19) * U32), `pair vs reference ${h}x${w}x${c}`);
          }
          expect(() => nb.conv3x3s2Pair(g(12), 4, 3, 2, g(18), g(2), g(18), g(2), new Float32Array(1))).toThrow(/conv3x3s2Pair out/);
        });

        it('layerNorm: same double-precision statistics as the reference (1 f32 ulp), with and without bias', () => {
          use();
          const g = rng(12);
          for (const [rows, dim] of [[1, 1], [3, 7], [37, 1152], [5, 81]] as const) {
            const x = g(rows * dim, -3, 5), w = g(dim), b = g(dim);
            for (const bias of [b, null]) {
              const want = ref.layerNorm(x, rows, dim, w, bias, 1e-6);
              expectWithin(nb.layerNorm(x, rows, dim, w, bias, 1e-6), want, Float64Array.from(want, (v) => U32 * Math.abs(v) + 1e-12), `ln ${rows}x${dim}`);
            }
          }
          expect(() => nb.layerNorm(new Float32Array(6), 2, 3, new Float32Array(2), null, 1e-5)).toThrow(/layerNorm: expected/);
        });
      });
    }
  }

  describe.runIf(nb.hasBf16Compute)('bf16-compute linear (AVX512-BF16)', () => {
    for (const threads of [1, 2]) {
      it(`matches the rounded-activation oracle on odd shapes, ${threads} thread(s), with a strided weight view`, () => {
        nb.setThreads(threads);
        const g = rng(13);
        for (const [m, n, k] of [[1, 1, 1], [1, 7, 33], [5, 13, 100], [9, 65, 4304], [17, 6, 32], [4, 12, 31]] as const) {
          const wf = g((n + 2) * k);
          const w = new Tensor('bf16', [n + 2, k], encodeBf16(wf)).narrow(0, 1, n); // rows 1..n: an offset view
          const x = g(m * k, -4, 4), bias = g(n);
          const want = withComputePrecision(ref, 'bf16').linear(x, m, w, bias);
          const got = withComputePrecision(nb, 'bf16').linear(x, m, w, bias);
          // Same rounded inputs and exact products: only the f32 summation order differs, (K + 3)·u·Σ|x̂·w| + |bias|.
          const xr = roundToBf16(x), wd = w.contiguous().f32();
          const tol = new Float64Array(m * n);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = Math.abs(bias[j]!);
              for (let t = 0; t < k; t++) s += Math.abs(xr[i * k + t]! * wd[j * k + t]!);
              tol[i * n + j] = (k + 3) * U32 * s + 1e-30;
            }
          expectWithin(got, want, tol, `bf16 linear ${m}x${n}x${k}`);
        }
      });
    }

    it('gives each row the same bits whatever else is in the batch', () => {
      const g = rng(14), k = 200, n = 9;
      const w = new Tensor('bf16', [n, k], encodeBf16(g(n * k))), x = g(11 * k);
      const all = nb.linearBf16(x, 11, w);
      for (const i of [0, 4, 10]) expect(Array.from(nb.linearBf16(x.subarray(i * k, (i + 1) * k), 1, w))).toEqual(Array.from(all.subarray(i * n, (i + 1) * n)));
    });

    it('rounds, so it differs from f32 compute by about the bf16 unit roundoff (and f32 precision is untouched)', () => {
      const g = rng(15), k = 512, n = 16;
      const w = new Tensor('bf16', [n, k], encodeBf16(g(n * k))), x = g(k);
      const exact = nb.linear(x, 1, w), fast = withComputePrecision(nb, 'bf16').linear(x, 1, w);
      const rel = Math.max(...Array.from(exact, (v, i) => Math.abs(v - fast[i]!))) / Math.max(...Array.from(exact, Math.abs));
      expect(rel).toBeGreaterThan(0);
      expect(rel).toBeLessThan(2 ** -8 * 4);
      expect(withComputePrecision(nb, 'f32')).toBe(nb);
      expect(() => withComputePrecision(nb, 'f16' as never)).toThrow(/'f32' or 'bf16'/);
    });
  });
});
