// The native device at Phi-4-mini shapes (decode linears raw and through the device), and the paged attention of the native device against the host device's (K/V gathered to
// f32, the v1 kernel one query row per call):
// - decode linears: a raw 1-row native call against the device's (bf16 LoRA A);
// - prefill attention over T rows: the v1 kernel on contiguous K/V against the device's paged attention;
// - one decode step's paged attention per layer at a long context: f32 vs f16 store.
// Usage: npx tsx bench/device_ops.ts [threads]   (medians of a few runs; the machine's load shows in them)
import { NativeBackend } from '../src/tensor/native.js';
import { Tensor } from '../src/tensor/tensor.js';
import { encodeBf16 } from '../src/tensor/dtype.js';
import type { Buf, DeviceOps, KvDType } from '../src/tensor/device.js';
import { HostDevice } from '../src/tensor/host_device.js';
import type { AttentionParams } from '../src/tensor/backend.js';

const HIDDEN = 3072, HEADS = 24, KV_HEADS = 8, HEAD_DIM = 128, LORA_RANK = 320;
const PREFILL_ROWS = 512;
const DECODE_CONTEXT = 2048;
const RUNS = 5;

const be = NativeBackend.create(Number(process.argv[2] ?? 2));
const dev = be.device;
const hostDev = new HostDevice(be, { attention: rowByRowAttention((p) => be.attention(p)) });

function median(f: () => void): number {
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) { const s = performance.now(); f(); t.push(performance.now() - s); }
  return t.sort((a, b) => a - b)[RUNS >> 1]!;
}
const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
const up = (a: Float32Array): Buf => { const b = dev.alloc(a.length); dev.upload(a, b); return b; };
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

const report: Record<string, string> = {};
{
  const n = 2 * 8192; // gate_up
  const q = new Tensor('q4_k', [n, HIDDEN], be.quantizeRows('q4_k', rand(n * HIDDEN), n, HIDDEN));
  const x = rand(HIDDEN), y = new Float32Array(n), xb = up(x), yb = dev.alloc(n);
  report['q4_k gate_up decode, raw M=1'] = fmt(median(() => be.linear(x, 1, q, null, y)));
  report['q4_k gate_up decode, device'] = fmt(median(() => dev.linear(xb, 1, q, yb)));
  const a = new Tensor('bf16', [LORA_RANK, HIDDEN], encodeBf16(rand(LORA_RANK * HIDDEN)));
  const ya = new Float32Array(LORA_RANK), yab = dev.alloc(LORA_RANK);
  report['bf16 LoRA A decode, raw M=1'] = fmt(median(() => be.linear(x, 1, a, null, ya)));
  report['bf16 LoRA A decode, device'] = fmt(median(() => dev.linear(xb, 1, a, yab)));
}
{
  const T = PREFILL_ROWS, d = HEAD_DIM;
  const q = rand(T * HEADS * d), k = rand(T * KV_HEADS * d), v = rand(T * KV_HEADS * d);
  const p = { q, k, v, tq: T, tk: T, nHeads: HEADS, nKvHeads: KV_HEADS, headDim: d, scale: 1 / Math.sqrt(d), causalOffset: 0 };
  report[`prefill attention ${T} rows, native all rows`] = fmt(median(() => be.attention(p)));
  const w = (HEADS + 2 * KV_HEADS) * d, qkv = rand(T * w);
  const kv = dev.allocKv({ layers: 1, numBlocks: T / 16, blockSize: 16, nKvHeads: KV_HEADS, headDim: d, dtype: 'f16' });
  const seqs = [{ rowStart: 0, rows: T, start: 0, blockTable: Int32Array.from({ length: T / 16 }, (_, i) => i) }];
  const qb = up(qkv), out = dev.alloc(T * HEADS * d);
  dev.kvWrite(kv, 0, qb, w, HEADS * d, (HEADS + KV_HEADS) * d, seqs);
  report[`prefill attention ${T} rows, native device paged (f16 store)`] = fmt(median(() => dev.pagedAttention(qb, w, 0, kv, 0, seqs, HEADS, 1 / Math.sqrt(d), out)));
}
for (const [name, dv] of [['native', dev], ['host', hostDev]] as [string, DeviceOps][])
for (const dtype of ['f32', 'f16'] as KvDType[]) {
  const dev = dv;
  const up = (a: Float32Array): Buf => { const b = dev.alloc(a.length); dev.upload(a, b); return b; };
  const C = DECODE_CONTEXT, d = HEAD_DIM, w = (HEADS + 2 * KV_HEADS) * d;
  const kv = dev.allocKv({ layers: 1, numBlocks: C / 16, blockSize: 16, nKvHeads: KV_HEADS, headDim: d, dtype });
  const table = Int32Array.from({ length: C / 16 }, (_, i) => i);
  const fill = up(rand(C * w));
  dev.kvWrite(kv, 0, fill, w, HEADS * d, (HEADS + KV_HEADS) * d, [{ rowStart: 0, rows: C, start: 0, blockTable: table }]);
  const qb = up(rand(w)), out = dev.alloc(HEADS * d);
  const seqs = [{ rowStart: 0, rows: 1, start: C - 1, blockTable: table }];
  report[`decode paged attention, ${name} device, context ${C}, ${dtype}, per layer`] = fmt(median(() => dev.pagedAttention(qb, w, 0, kv, 0, seqs, HEADS, 1 / Math.sqrt(d), out)));
}
console.log(`threads ${be.threads}, isa ${be.isa}`);
for (const [k, v] of Object.entries(report)) console.log(`${k.padEnd(62)} ${v}`);
console.log(JSON.stringify(report));

/**
 * The v1 native attention kernel tiles queries (score tiles of 6 queries, P·V tiles of 4, packed K for long
 * blocks), so a query's result depends on how many share the call (measured: ≤ 1.5e-7 apart). Calling it one
 * query row at a time (each row over its own causal prefix) makes every row independent of the batch; for a
 * HostDevice over the native backend (the native device has its own paged attention).
 */
export function rowByRowAttention(attention: (p: AttentionParams) => Float32Array): (p: AttentionParams) => Float32Array {
  return (p) => {
    if (p.causalOffset === undefined || p.mask || p.bias) return attention(p); // not the decoder's shape
    const { tq, nHeads, nKvHeads, headDim: d, causalOffset: off } = p;
    const qRow = nHeads * d, kvRow = nKvHeads * d;
    const out = p.out ?? new Float32Array(tq * qRow);
    for (let i = 0; i < tq; i++) {
      const tk = off + i + 1;
      attention({
        ...p, q: p.q.subarray(i * qRow, (i + 1) * qRow), k: p.k.subarray(0, tk * kvRow), v: p.v.subarray(0, tk * kvRow),
        tq: 1, tk, causalOffset: off + i, out: out.subarray(i * qRow, (i + 1) * qRow),
      });
    }
    return out;
  };
}
