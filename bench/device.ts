// The native DeviceOps (src/tensor/native_device.ts) at Phi-4-mini shapes, 1 and 2 threads:
// - decode-step glue per layer (2 rmsNorm, rope on q and k, kvWrite, swiglu, 2 residual adds) at batch 1 and 8,
//   native against today's TypeScript loops (ops.ts rmsNorm, rope.ts applyRope, f16 encode, silu/add loops);
// - the LoRA delta of qkv_proj for decode rows (rank 256, bf16 A/B): one native call against two GEMMs + a TS add;
// - paged attention over 2,048 cached keys (f32, f16, q8_0 pools; 1 and 8 sequences) against the old contiguous
//   f32 attention kernel on the same shapes.
// Usage: npx tsx bench/device.ts [glue|lora|attention|all] [threads, e.g. 1,2]   (the last line: one JSON object, µs per call)
import { applyRope } from '../src/models/phi4mm/rope.js';
import { NativeBackend } from '../src/tensor/native.js';
import { HostBuf } from '../src/tensor/host_device.js';
import { rmsNorm } from '../src/tensor/ops.js';
import { encodeBf16, encodeF16 } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { KvDType, SeqRows } from '../src/tensor/device.js';

const HIDDEN = 3072, HEADS = 24, KV_HEADS = 8, HEAD_DIM = 128, ROTARY = 96, INTER = 8192, LORA_RANK = 256;
const QKV = (HEADS + 2 * KV_HEADS) * HEAD_DIM;
const CONTEXT = 2048;
const BLOCK = 16;
const RUNS = 15; // median of these
const ONLY = process.argv[2];
const THREADS = process.argv[3] ? process.argv[3].split(',').map(Number) : [1, 2];
const want = (part: string) => !ONLY || ONLY === 'all' || ONLY === part;

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  });
}

function timeUs(fn: () => void): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  ts.sort((a, b) => a - b);
  return Math.round(ts[ts.length >> 1]! * 10) / 10;
}

const be = NativeBackend.create();
const dev = be.device;
const results: Record<string, number> = {};
const report = (name: string, us: number) => {
  results[name] = us;
  console.log(`${name.padEnd(52)} ${us.toFixed(1).padStart(10)} µs`);
};

for (const threads of THREADS) {
  be.setThreads(threads);
  console.log(`-- ${threads} thread(s), ${be.isa}`);

  // ---- decode-step glue per layer ----
  for (const batch of want('glue') ? [1, 8] : []) {
    const x = rand(batch * HIDDEN, 1), w = rand(HIDDEN, 2).map((v) => 1 + v / 4);
    const qkv = rand(batch * QKV, 3), gu = rand(batch * 2 * INTER, 4), branch = rand(batch * HIDDEN, 5);
    const cos = rand(batch * ROTARY, 6), sin = rand(batch * ROTARY, 7);
    const kv = dev.allocKv({ layers: 1, numBlocks: batch * 4, blockSize: BLOCK, nKvHeads: KV_HEADS, headDim: HEAD_DIM, dtype: 'f16' });
    const seqs: SeqRows[] = Array.from({ length: batch }, (_, i) => ({ rowStart: i, rows: 1, start: 40, blockTable: Int32Array.from([4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]) }));
    const X = new HostBuf(x), N = dev.alloc(batch * HIDDEN), Q = new HostBuf(qkv), G = new HostBuf(gu), M = dev.alloc(batch * INTER);
    const B = new HostBuf(branch), C = new HostBuf(cos), S = new HostBuf(sin);
    report(`glue/layer native batch ${batch} (${threads}t)`, timeUs(() => {
      dev.rmsNorm(X, batch, HIDDEN, w, 1e-5, N);
      dev.rope(Q, batch, QKV, 0, HEADS, HEAD_DIM, ROTARY, C, S);
      dev.rope(Q, batch, QKV, HEADS * HEAD_DIM, KV_HEADS, HEAD_DIM, ROTARY, C, S);
      dev.kvWrite(kv, 0, Q, QKV, HEADS * HEAD_DIM, (HEADS + KV_HEADS) * HEAD_DIM, seqs);
      dev.add(X, B, batch * HIDDEN);
      dev.rmsNorm(X, batch, HIDDEN, w, 1e-5, N);
      dev.swiglu(G, batch, INTER, M);
      dev.add(X, B, batch * HIDDEN);
    }));
    // Today's TypeScript: the same work as host loops (K/V rows f16-encoded into a contiguous cache).
    const norm = new Float32Array(batch * HIDDEN), mlp = new Float32Array(batch * INTER);
    const q = new Float32Array(batch * HEADS * HEAD_DIM), k = new Float32Array(batch * KV_HEADS * HEAD_DIM);
    const cache = new Uint16Array(2 * batch * KV_HEADS * HEAD_DIM);
    report(`glue/layer TypeScript batch ${batch} (${threads}t)`, timeUs(() => {
      rmsNorm(x, batch, HIDDEN, w, 1e-5, norm);
      applyRope(q, batch, HEADS, HEAD_DIM, cos, sin, ROTARY);
      applyRope(k, batch, KV_HEADS, HEAD_DIM, cos, sin, ROTARY);
      encodeF16(k, cache.subarray(0, k.length));
      encodeF16(k, cache.subarray(k.length));
      for (let i = 0; i < x.length; i++) x[i]! += branch[i]!;
      rmsNorm(x, batch, HIDDEN, w, 1e-5, norm);
      for (let r = 0; r < batch; r++)
        for (let i = 0; i < INTER; i++) {
          const g = gu[r * 2 * INTER + i]!;
          mlp[r * INTER + i] = gu[r * 2 * INTER + INTER + i]! * (g / (1 + Math.exp(-g)));
        }
      for (let i = 0; i < x.length; i++) x[i]! += branch[i]!;
    }));
  }

  // ---- LoRA delta of qkv_proj for decode rows ----
  if (want('lora')) {
    const batch = 8;
    const A = new Tensor('bf16', [LORA_RANK, HIDDEN], encodeBf16(rand(LORA_RANK * HIDDEN, 8).map((v) => v / 50)));
    const Bm = new Tensor('bf16', [QKV, LORA_RANK], encodeBf16(rand(QKV * LORA_RANK, 9).map((v) => v / 50)));
    const x = rand(batch * HIDDEN, 10), out = new Float32Array(batch * QKV);
    const lib = (dev as unknown as { lib: import('../src/tensor/native_addon.js').NativeAddon }).lib;
    // The addon reads the factors column-major, as the loader places them (NativeBackend.columnMajor).
    const Ac = be.columnMajor(A), Bc = be.columnMajor(Bm);
    report(`lora qkv delta native, 8 rows (${threads}t)`, timeUs(() => {
      lib.loraAdd(x, batch, HIDDEN, out, QKV, [0, batch, LORA_RANK, Ac.data as Uint16Array, 1, 0, Bc.data as Uint16Array, 1, 0, 2]);
    }));
    report(`lora qkv delta GEMM+GEMM+TS add, 8 rows (${threads}t)`, timeUs(() => {
      const ax = be.linear(x, batch, A);
      const bax = be.linear(ax, batch, Bm);
      for (let i = 0; i < out.length; i++) out[i]! += 2 * bax[i]!;
    }));
  }

  // ---- attention over 2,048 cached keys ----
  for (const nseq of want('attention') ? [1, 8] : []) {
    const blocksPer = CONTEXT / BLOCK + 1;
    const q = rand(nseq * HEADS * HEAD_DIM, 11), out = dev.alloc(nseq * HEADS * HEAD_DIM);
    const seqs: SeqRows[] = Array.from({ length: nseq }, (_, i) => ({
      rowStart: i, rows: 1, start: CONTEXT - 1,
      blockTable: Int32Array.from({ length: blocksPer }, (_, b) => (b * 7 + i * blocksPer) % (nseq * blocksPer)),  // scattered
    }));
    for (const dtype of ['f32', 'f16', 'q8_0'] as KvDType[]) {
      const kv = dev.allocKv({ layers: 1, numBlocks: nseq * blocksPer, blockSize: BLOCK, nKvHeads: KV_HEADS, headDim: HEAD_DIM, dtype });
      const kvRows = rand(nseq * CONTEXT * 2 * KV_HEADS * HEAD_DIM, 12);
      const fill: SeqRows[] = seqs.map((s, i) => ({ ...s, rowStart: i * CONTEXT, rows: CONTEXT, start: 0 }));
      dev.kvWrite(kv, 0, new HostBuf(kvRows), 2 * KV_HEADS * HEAD_DIM, 0, KV_HEADS * HEAD_DIM, fill);
      report(`paged attention ${dtype}, ${nseq} seq × ${CONTEXT} keys (${threads}t)`, timeUs(() => {
        dev.pagedAttention(new HostBuf(q), HEADS * HEAD_DIM, 0, kv, 0, seqs, HEADS, HEAD_DIM ** -0.5, out);
      }));
    }
    // One K/V per sequence, as the paged pools hold: 8 sequences stream 8 caches, not one cache 8 times.
    const ks = Array.from({ length: nseq }, (_, i) => rand(CONTEXT * KV_HEADS * HEAD_DIM, 13 + 2 * i));
    const vs = Array.from({ length: nseq }, (_, i) => rand(CONTEXT * KV_HEADS * HEAD_DIM, 14 + 2 * i));
    const o = new Float32Array(HEADS * HEAD_DIM);
    report(`contiguous f32 attention, ${nseq} seq × ${CONTEXT} keys (${threads}t)`, timeUs(() => {
      for (let i = 0; i < nseq; i++) be.attention({ q: q.subarray(i * HEADS * HEAD_DIM, (i + 1) * HEADS * HEAD_DIM), k: ks[i]!, v: vs[i]!, tq: 1, tk: CONTEXT, nHeads: HEADS, nKvHeads: KV_HEADS, headDim: HEAD_DIM, scale: HEAD_DIM ** -0.5, causalOffset: CONTEXT - 1, out: o });
    }));
  }
}
console.log(JSON.stringify(results));
