// Batch invariance of the native backend's device ops (device.ts: row r's result depends only on row r): a row
// computed among M rows equals the same row computed alone, bit for bit, for every weight type, ISA and thread
// count, and through attention for rows of one sequence computed in one chunk or one at a time. This is what
// makes batched generation give the same ids as one-at-a-time.
import { describe, expect, it } from 'vitest';
import { NativeBackend } from '../../src/tensor/native.js';
import type { Buf, LoraSegment } from '../../src/tensor/device.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { encodeBf16, encodeF16 } from '../../src/tensor/dtype.js';
import { quantizeMatrix } from '../../src/quant/index.js';
import { rng, NO_NATIVE } from '../native/util.js';

const r = rng(5);
const DTYPES = ['f32', 'bf16', 'f16', 'q8_0', 'q4_k'] as const;

function weight(dtype: (typeof DTYPES)[number], n: number, k: number): Tensor {
  const f = r(n * k, -0.5, 0.5);
  if (dtype === 'f32') return new Tensor('f32', [n, k], f);
  if (dtype === 'bf16') return new Tensor('bf16', [n, k], encodeBf16(f));
  if (dtype === 'f16') return new Tensor('f16', [n, k], encodeF16(f));
  return new Tensor(dtype, [n, k], quantizeMatrix(f, n, k, dtype));
}

describe.skipIf(NO_NATIVE)('native device ops are batch invariant', () => {
  const be = NativeBackend.create();
  const dev = be.device;
  const up = (a: Float32Array): Buf => { const b = dev.alloc(a.length); dev.upload(a, b); return b; };

  for (const isa of be.availableIsas()) {
    for (const threads of [1, 2]) {
      it(`linear (+ LoRA segments), ${isa}, ${threads} thread(s): rows of M = 1..33 equal the 1-row results`, () => {
        be.setIsa(isa);
        be.setThreads(threads);
        // K = 3072 and 1024 exceed the f32 GEMM's K slice (512); 256 does not.
        for (const dt of DTYPES) for (const [n, k] of [[37, 256], [21, 1024], [11, 3072]] as const) {
          const w = weight(dt, n, k), a = weight('bf16', 8, k), b = weight('bf16', n, 8);
          const x = r(33 * k);
          const single = new Float32Array(33 * n), o1 = dev.alloc(n);
          const lora = (rows: number): LoraSegment[] => [{ rowStart: 0, rows, a, b, scale: 0.75 }];
          for (let i = 0; i < 33; i++) {
            dev.linear(up(x.slice(i * k, (i + 1) * k)), 1, w, o1, lora(1));
            single.set(dev.download(o1), i * n);
          }
          for (const m of [2, 3, 4, 5, 8, 9, 13, 33]) {
            const o = dev.alloc(m * n);
            dev.linear(up(x.subarray(0, m * k)), m, w, o, lora(m));
            expect(dev.download(o), `${dt} N=${n} K=${k} M=${m}`).toEqual(single.subarray(0, m * n));
          }
        }
      });
    }
  }

  it('paged attention: a chunk of rows equals the rows one at a time', () => {
    const H = 8, KV = 2, d = 64, bs = 16, start = 37, rows = 29, w = (H + 2 * KV) * d;
    const kv = dev.allocKv({ layers: 1, numBlocks: 8, blockSize: bs, nKvHeads: KV, headDim: d, dtype: 'f16' });
    const table = Int32Array.of(5, 2, 7, 0, 1);
    const qkv = up(r((start + rows) * w));
    dev.kvWrite(kv, 0, qkv, w, H * d, (H + KV) * d, [{ rowStart: 0, rows: start + rows, start: 0, blockTable: table }]);
    const all = dev.alloc((start + rows) * H * d);
    // The last `rows` rows as one chunk (they sit at rows start.. of the qkv buffer).
    dev.pagedAttention(qkv, w, 0, kv, 0, [{ rowStart: start, rows, start, blockTable: table }], H, 0.125, all);
    const chunk = dev.download(all, start * H * d, rows * H * d);
    const one = dev.alloc((start + rows) * H * d);
    for (let i = 0; i < rows; i++) dev.pagedAttention(qkv, w, 0, kv, 0, [{ rowStart: start + i, rows: 1, start: start + i, blockTable: table }], H, 0.125, one);
    expect(dev.download(one, start * H * d, rows * H * d)).toEqual(chunk);
  });
});
