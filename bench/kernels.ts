// Kernel throughput of the native backend: Q4_K and Q8_0 GEMV (decode: M = 1) in effective GB/s of weights
// streamed from DRAM, fp32 GEMM (prefill-like) in GFLOPS, and attention (a SigLIP layer, an LM decode step)
// in ms per call, at 1 and 2 threads.
// Quantized GEMM (prefill, batched decode: M ≥ 2) in GOPS (2·M·N·K per call, activation quantization included),
// with an M sweep that shows where the tile GEMM takes over from the row kernels.
// Usage: npm run bench:kernels   (the last line of output is one JSON object with all figures)
//        BENCH_ONLY=qgemm,gemv,f32,attn selects sections.
import { NativeBackend } from '../src/tensor/native.js';
import { Tensor } from '../src/tensor/tensor.js';
import { f32ToF16 } from '../src/tensor/dtype.js';
import { BLOCK_Q4_K_BYTES, BLOCK_Q8_0_BYTES, QK8_0, QK_K } from '../src/quant/index.js';

const GEMV_K = 3072;
const GEMV_N = 8192;
const GEMM = { m: 64, k: 3072, n: 3072 };
const QGEMM = { m: 512, k: 3072, n: 3072 };
const QGEMM_SWEEP_M = [1, 2, 4, 8, 16, 32, 64];
const ONLY = process.env.BENCH_ONLY?.split(',');
const want = (s: string) => !ONLY || ONLY.includes(s);
/** Distinct weight copies cycled per run add up to at least this, so no cache level can hold them. */
const STREAM_BYTES = 300e6;
const RUNS = 7; // median of these
const THREADS = [1, 2];

/** Deterministic pseudo-random bytes (xorshift32); quantized blocks need no meaningful values to be timed. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const u32 = new Uint32Array(out.buffer, 0, n >> 2);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < u32.length; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    u32[i] = s;
  }
  return out;
}

/** A [n, k] quantized weight of random quants with small finite f16 scales at each block's scale fields. */
function randomQuantWeight(dtype: 'q4_k' | 'q8_0', n: number, k: number, seed: number): Tensor {
  const [bs, bb] = dtype === 'q4_k' ? [QK_K, BLOCK_Q4_K_BYTES] : [QK8_0, BLOCK_Q8_0_BYTES];
  // In weight memory as the loader allocates it (2 MiB-aligned, huge pages); BENCH_THP=0: a plain array.
  const size = (n * k / bs) * bb;
  const bytes = process.env.BENCH_THP === '0' ? new Uint8Array(size) : backend.allocWeights(size);
  bytes.set(randomBytes(bytes.length, seed));
  const scale = f32ToF16(1e-3);
  const scaleFields = dtype === 'q4_k' ? [0, 2] : [0]; // d (and dmin)
  for (let o = 0; o < bytes.length; o += bb) {
    for (const f of scaleFields) { bytes[o + f] = scale & 0xff; bytes[o + f + 1] = scale >> 8; }
  }
  return new Tensor(dtype, [n, k], bytes);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/**
 * Median seconds per call. BENCH_CLOCK=cpu times process CPU seconds instead of wall time: on a loaded
 * machine that is the steadier figure for 1-thread runs (for 2 threads it sums both threads).
 */
const CPU_CLOCK = process.env.BENCH_CLOCK === 'cpu';
function timeRuns(fn: () => void): number {
  fn(); // warm-up (page faults, pool start)
  const ts: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    fn();
    const c = process.cpuUsage(c0);
    ts.push(CPU_CLOCK ? (c.user + c.system) / 1e6 : Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(ts);
}

const backend = NativeBackend.create();
const results: Record<string, number | string> = { isa: backend.isa };
const rows: string[][] = [];

/**
 * The weight in the given row order: ggml rows, or x16 (interleaved by 16, as the loader stores weights for the
 * AVX-512 VNNI kernels; on other ISAs preferredLayout keeps rows and the x16 rows repeat the ggml figures).
 */
function inLayout(w: Tensor, layout: Layout): Tensor {
  return layout === 'x16' ? backend.preferredLayout(w) : w;
}
type Layout = 'rows' | 'x16';
const LAYOUTS: Layout[] = ['rows', 'x16'];
const tag = (dtype: string, layout: Layout) => (layout === 'x16' ? `${dtype}_x16` : dtype);

for (const [dtype, layout] of want('gemv') ? (['q4_k', 'q8_0'] as const).flatMap((d) => LAYOUTS.map((l) => [d, l] as const)) : []) {
  const one = inLayout(randomQuantWeight(dtype, GEMV_N, GEMV_K, 1), layout);
  const bytesPer = one.data.byteLength;
  const copies = Math.ceil(STREAM_BYTES / bytesPer);
  const ws = [one, ...Array.from({ length: copies - 1 }, (_, i) => inLayout(randomQuantWeight(dtype, GEMV_N, GEMV_K, i + 2), layout))];
  const x = Float32Array.from({ length: GEMV_K }, (_, i) => Math.sin(i));
  const y = new Float32Array(GEMV_N);
  for (const t of THREADS) {
    backend.setThreads(t);
    const s = timeRuns(() => { for (const w of ws) backend.linear(x, 1, w, null, y); });
    const gbs = (bytesPer * copies) / s / 1e9;
    results[`${tag(dtype, layout)}_gemv_gbs_t${t}`] = +gbs.toFixed(2);
    rows.push([`${tag(dtype, layout)} GEMV K=${GEMV_K} N=${GEMV_N}`, `${t}`, `${gbs.toFixed(1)} GB/s`, `${((s / copies) * 1e3).toFixed(3)} ms/call (${copies} copies, ${((bytesPer * copies) / 1e6).toFixed(0)} MB)`]);
  }
}

for (const [dtype, layout] of want('qgemm') ? (['q4_k', 'q8_0'] as const).flatMap((d) => LAYOUTS.map((l) => [d, l] as const)) : []) {
  const { m, k, n } = QGEMM;
  const w = inLayout(randomQuantWeight(dtype, n, k, 99), layout);
  const name = tag(dtype, layout);
  const x = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i) * 0.5);
  const y = new Float32Array(m * n);
  for (const t of THREADS) {
    backend.setThreads(t);
    const s = timeRuns(() => backend.linear(x, m, w, null, y));
    const gops = (2 * m * n * k) / s / 1e9;
    results[`${name}_gemm_gops_t${t}`] = +gops.toFixed(1);
    rows.push([`${name} GEMM M=${m} K=${k} N=${n}`, `${t}`, `${gops.toFixed(1)} GOPS`, `${(s * 1e3).toFixed(2)} ms/call`]);
  }
  backend.setThreads(1);
  for (const ms of QGEMM_SWEEP_M) {
    const s = timeRuns(() => backend.linear(x.subarray(0, ms * k), ms, w, null, y));
    const gops = (2 * ms * n * k) / s / 1e9;
    results[`${name}_gemm_gops_m${ms}_t1`] = +gops.toFixed(1);
    rows.push([`${name} GEMM M=${ms} K=${k} N=${n} (L2-resident weights)`, '1', `${gops.toFixed(1)} GOPS`, `${(s * 1e3).toFixed(3)} ms/call`]);
  }
}

if (want('f32')) {
  const { m, k, n } = GEMM;
  const x = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i) * 0.5);
  const w = Tensor.f32(Float32Array.from({ length: n * k }, (_, i) => Math.cos(i) * 0.5), [n, k]);
  const y = new Float32Array(m * n);
  for (const t of THREADS) {
    backend.setThreads(t);
    const s = timeRuns(() => backend.linear(x, m, w, null, y));
    const gflops = (2 * m * n * k) / s / 1e9;
    results[`f32_gemm_gflops_t${t}`] = +gflops.toFixed(1);
    rows.push([`f32 GEMM M=${m} K=${k} N=${n}`, `${t}`, `${gflops.toFixed(1)} GFLOPS`, `${(s * 1e3).toFixed(2)} ms/call`]);
  }
}

// Attention: a SigLIP layer (bidirectional, T = 1024, 16 heads of 72) and one decode step of the LM
// (1 query over 2048 cached keys, 24 heads on 8 kv heads of 128), in ms per call (= per layer).
const ATTENTION = [
  { key: 'attn_siglip', label: 'attention T=1024 H=16 D=72', tq: 1024, tk: 1024, h: 16, hkv: 16, d: 72, causalOffset: undefined as number | undefined },
  { key: 'attn_decode', label: 'attention decode Tk=2048 H=24 KV=8 D=128', tq: 1, tk: 2048, h: 24, hkv: 8, d: 128, causalOffset: 2047 },
];
for (const c of want('attn') ? ATTENTION : []) {
  const q = Float32Array.from({ length: c.tq * c.h * c.d }, (_, i) => Math.sin(i) * 0.5);
  const k = Float32Array.from({ length: c.tk * c.hkv * c.d }, (_, i) => Math.cos(i) * 0.5);
  const v = Float32Array.from({ length: c.tk * c.hkv * c.d }, (_, i) => Math.sin(0.7 * i));
  const out = new Float32Array(c.tq * c.h * c.d);
  const p = { q, k, v, tq: c.tq, tk: c.tk, nHeads: c.h, nKvHeads: c.hkv, headDim: c.d, scale: c.d ** -0.5, causalOffset: c.causalOffset, out };
  const flops = 4 * c.tq * c.tk * c.h * c.d; // Q·Kᵀ and P·V
  for (const t of THREADS) {
    backend.setThreads(t);
    const s = timeRuns(() => backend.attention(p));
    results[`${c.key}_ms_t${t}`] = +(s * 1e3).toFixed(3);
    rows.push([c.label, `${t}`, `${(flops / s / 1e9).toFixed(1)} GFLOPS`, `${(s * 1e3).toFixed(3)} ms/call`]);
  }
}

const header = ['kernel', 'threads', 'throughput', 'detail'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`native kernels, isa=${backend.isa}, median of ${RUNS} runs`);
console.log(fmt(header));
for (const r of rows) console.log(fmt(r));
console.log(JSON.stringify(results));
