// The native paged KV pool: kvWrite's stored bytes (f32, f16, q8_0) against the TS codecs, kvCopyBlocks, and
// pagedAttention over ragged sequences with shuffled block tables and partly filled last blocks against the
// host device over the reference backend (the TS oracle: its own paged store, the reference attention); batch invariance (a sequence alone or with
// others, each row alone as a decode step, 1 or 2 threads: the same bits); every ISA at 1 and 2 threads; batches
// larger than the sequence arrays the device reuses; bad block tables get clear errors.
import { afterAll, describe, expect, it } from 'vitest';
import type { NativeDevice, NativeKvStore } from '../../src/tensor/native_device.js';
import { HostBuf } from '../../src/tensor/host_device.js';
import type { KvDType, KvSpec, SeqRows } from '../../src/tensor/device.js';
import { oracle, storedBytes } from './device_oracle.js';
import { expectWithin, loadNative, NO_NATIVE, rng } from './util.js';

const { backend, error } = loadNative();

/** A permutation of 0..n-1 (seeded), so block tables come in shuffled order. */
function shuffled(n: number, seed: number): number[] {
  const r = rng(seed)(n);
  return Array.from({ length: n }, (_, i) => i).sort((a, b) => r[a]! - r[b]!);
}

interface Case {
  dtype: KvDType;
  nHeads: number;
  nKv: number;
  headDim: number;
  blockSize: number;
}

const CASES: Case[] = [
  { dtype: 'f32', nHeads: 9, nKv: 3, headDim: 40, blockSize: 16 },  // group 3, head dim not a multiple of 16
  { dtype: 'f16', nHeads: 6, nKv: 2, headDim: 24, blockSize: 5 },   // small blocks: many block boundaries
  { dtype: 'f16', nHeads: 5, nKv: 5, headDim: 128, blockSize: 16 }, // MHA, the real head dim
  { dtype: 'q8_0', nHeads: 12, nKv: 4, headDim: 96, blockSize: 16 },
  { dtype: 'q8_0', nHeads: 6, nKv: 2, headDim: 40, blockSize: 5 },  // a short last q8_0 group
];

// Sequences: [start (cached positions), new rows]: a prefill chunk, decode rows, a continued chunk, one that
// starts exactly on a block boundary, and a chunk whose rows see 59–68 keys (the native P·V runs over keys in
// passes of 64: its row groups end on both sides of a pass boundary).
const SEQS: [number, number][] = [[0, 21], [37, 1], [5, 4], [80, 1], [16, 3], [58, 10]];

describe.skipIf(NO_NATIVE)('native paged KV and attention', () => {
  it('loads the addon', () => {
    expect(error?.message ?? null).toBeNull();
  });
  if (!backend) return;
  const nb = backend;
  const dev: NativeDevice = nb.device;
  afterAll(() => {
    nb.setThreads(2);
    nb.setIsa(nb.availableIsas()[0]!);
  });

  /** Pool + oracle with every sequence's history written (a prior step), block tables shuffled. */
  function setup(c: Case, seed: number) {
    const layers = 2;
    const blocksPer = SEQS.map(([s, n]) => Math.ceil((s + n) / c.blockSize));
    const numBlocks = blocksPer.reduce((a, b) => a + b, 0) + 3;
    const spec: KvSpec = { layers, numBlocks, blockSize: c.blockSize, nKvHeads: c.nKv, headDim: c.headDim, dtype: c.dtype };
    const kv = dev.allocKv(spec) as NativeKvStore;
    const okv = oracle.allocKv(spec);
    const perm = shuffled(numBlocks, seed);
    let o = 0;
    const tables = blocksPer.map((n) => Int32Array.from(perm.slice(o, (o += n))));
    const kvw = c.nKv * c.headDim, stride = c.nHeads * c.headDim + 2 * kvw + 3;  // [q | k | v | pad] rows
    const r = rng(seed + 1);
    for (let layer = 0; layer < layers; layer++) {
      // History: every sequence's positions [0, start) in one ragged write.
      let row = 0;
      const hist: SeqRows[] = SEQS.map(([start], i) => ({ rowStart: (row += start) - start, rows: start, start: 0, blockTable: tables[i]! }));
      const src = r(row * stride, -2, 2);
      dev.kvWrite(kv, layer, new HostBuf(src), stride, c.nHeads * c.headDim, c.nHeads * c.headDim + kvw, hist);
      oracle.kvWrite(okv, layer, new HostBuf(src), stride, c.nHeads * c.headDim, c.nHeads * c.headDim + kvw, hist);
    }
    let row = 0;
    const seqs: SeqRows[] = SEQS.map(([start, n], i) => ({ rowStart: (row += n) - n, rows: n, start, blockTable: tables[i]! }));
    return { spec, kv, okv, seqs, rows: row, stride, kvw, r };
  }

  for (const isa of ['avx512', 'avx2', 'scalar'] as const) {
    const has = nb.availableIsas().includes(isa);
    for (const c of CASES) {
      it.skipIf(!has)(`${isa} ${c.dtype} ${c.nHeads}/${c.nKv} heads × ${c.headDim}, blocks of ${c.blockSize}: kvWrite bytes, attention, invariance`, () => {
        nb.setIsa(isa);
        const { spec, kv, okv, seqs, rows, stride, kvw, r } = setup(c, 100 + c.headDim);
        const qw = c.nHeads * c.headDim;
        const outs: Float32Array[] = [];
        for (const threads of [1, 2]) {
          nb.setThreads(threads);
          for (let layer = 0; layer < spec.layers; layer++) {
            const src = r(rows * stride, -2, 2);
            const x = new HostBuf(src);
            dev.kvWrite(kv, layer, x, stride, qw, qw + kvw, seqs);
            oracle.kvWrite(okv, layer, x, stride, qw, qw + kvw, seqs);
            // Stored bytes equal the TS codecs' (f32 copy, encodeF16, quantizeRowQ8_0) at every new position.
            seqs.forEach((s) => {
              for (let i = 0; i < s.rows; i++) {
                const pos = s.start + i, blk = s.blockTable[Math.floor(pos / c.blockSize)]!, slot = pos % c.blockSize;
                for (const [which, off] of [[0, qw], [1, qw + kvw]] as const) {
                  const bytes = dev.kvReadBlock(kv, layer, which, blk);
                  const rb = bytes.length / (c.blockSize * c.nKv);
                  for (let h = 0; h < c.nKv; h++) {
                    const at = (s.rowStart + i) * stride + off + h * c.headDim;
                    const want = storedBytes(c.dtype, src.subarray(at, at + c.headDim));
                    const got = bytes.subarray((h * c.blockSize + slot) * rb, (h * c.blockSize + slot + 1) * rb); // head-major block
                    expect(got, `${c.dtype} layer ${layer} pos ${pos} kv head ${h} ${which ? 'V' : 'K'}`).toEqual(want);
                  }
                }
              }
            });
            const scale = c.headDim ** -0.5;
            const out = dev.alloc(rows * qw);
            dev.pagedAttention(x, stride, 0, kv, layer, seqs, c.nHeads, scale, out);
            // As test/native/attention.test.ts: outputs are convex combinations of stored v (|v| ≤ 2 here),
            // scores |q·k|·scale ≲ 40; f32 dot products (relative ~d·2^-24) and the ≤ 2 ulp exp keep every
            // weight within ~1e-6 relative of the f64 reference over the same stored (dequantized) values.
            const ref = oracle.alloc(rows * qw);
            oracle.pagedAttention(x, stride, 0, okv, layer, seqs, c.nHeads, scale, ref);
            const want = oracle.download(ref);
            expectWithin(out.data, want, new Float64Array(want.length).fill(4e-5), `${isa} ${threads}t layer ${layer}`);
            outs.push(out.data);
            // Batch invariance: each sequence alone, its rows at row 0, gives the same bits.
            seqs.forEach((s) => {
              const alone = dev.alloc(s.rows * qw);
              const q = new HostBuf(src.slice(s.rowStart * stride, (s.rowStart + s.rows) * stride));
              dev.pagedAttention(q, stride, 0, kv, layer, [{ ...s, rowStart: 0 }], c.nHeads, scale, alone);
              expect(alone.data, `sequence at row ${s.rowStart} alone`).toEqual(out.data.subarray(s.rowStart * qw, (s.rowStart + s.rows) * qw));
              // Row invariance: each row as a one-row step at its own position (the decode path: a single row
              // group reads the keys from the store) gives the bits it had inside its chunk (several row groups
              // read converted keys), so a re-prefilled or chunked sequence continues exactly.
              for (let i = 0; i < s.rows; i++) {
                const one = dev.alloc(qw);
                const qi = new HostBuf(src.slice((s.rowStart + i) * stride, (s.rowStart + i + 1) * stride));
                dev.pagedAttention(qi, stride, 0, kv, layer, [{ ...s, rowStart: 0, rows: 1, start: s.start + i }], c.nHeads, scale, one);
                expect(one.data, `row ${i} of the sequence at row ${s.rowStart} as a one-row step`).toEqual(out.data.subarray((s.rowStart + i) * qw, (s.rowStart + i + 1) * qw));
              }
            });
          }
        }
        // The thread count does not change a bit (the second pass rewrote the same positions with new values,
        // so compare a fresh 1-thread run against the 2-thread one on the final contents).
        nb.setThreads(1);
        const last = dev.alloc(rows * qw);
        const q = new HostBuf(rng(5)(rows * stride));
        dev.pagedAttention(q, stride, 0, kv, 1, seqs, c.nHeads, 0.1, last);
        nb.setThreads(2);
        const last2 = dev.alloc(rows * qw);
        dev.pagedAttention(q, stride, 0, kv, 1, seqs, c.nHeads, 0.1, last2);
        expect(last2.data).toEqual(last.data);
        expect(outs.length).toBe(4);
      });
    }
  }

  it('kvCopyBlocks copies whole blocks of every layer, K and V', () => {
    const c = CASES[3]!;
    const { kv, seqs } = setup(c, 7);
    // From blocks the history filled (sequences at 37 and 80) into the empty ones of the sequence at 0.
    const src = Int32Array.from([seqs[3]!.blockTable[0]!, seqs[1]!.blockTable[1]!]);
    const dst = Int32Array.from([seqs[0]!.blockTable[0]!, seqs[0]!.blockTable[1]!]);
    const before = (l: number, w: 0 | 1, b: number) => dev.kvReadBlock(kv, l, w, b);
    const want = [...src].map((b) => [0, 1].map((l) => [before(l, 0, b), before(l, 1, b)]));
    dev.kvCopyBlocks(kv, src, dst);
    dst.forEach((b, i) => {
      for (const l of [0, 1]) {
        expect(before(l, 0, b)).toEqual(want[i]![l]![0]);
        expect(before(l, 1, b)).toEqual(want[i]![l]![1]);
      }
    });
    expect(want.every((w) => w[0]![0]!.some((v) => v !== 0))).toBe(true);  // the copied blocks held data
  });

  it('batches larger than the arrays the device reuses for them (9 sequences, 1,350 block-table entries)', () => {
    // The device encodes each batch into arrays it keeps (room for 8 sequences and 1,024 table entries at first)
    // and grows them; a smaller batch afterwards must read only its own entries.
    const spec: KvSpec = { layers: 1, numBlocks: 1400, blockSize: 1, nKvHeads: 1, headDim: 8, dtype: 'f32' };
    const kv = dev.allocKv(spec), okv = oracle.allocKv(spec);
    const lens = [150, 149, 151, 148, 150, 152, 147, 150, 150];  // positions per sequence, one block each
    const perm = shuffled(spec.numBlocks, 3);
    let o = 0;
    const tables = lens.map((n) => Int32Array.from(perm.slice(o, (o += n))));
    const stride = 2 * 8 + 2 * 8, kOff = 16, vOff = 24;  // [q: 2 heads | k | v]
    let row = 0;
    const hist: SeqRows[] = lens.map((n, i) => ({ rowStart: (row += n - 1) - (n - 1), rows: n - 1, start: 0, blockTable: tables[i]! }));
    const src = rng(11)(row * stride, -2, 2);
    dev.kvWrite(kv, 0, new HostBuf(src), stride, kOff, vOff, hist);
    oracle.kvWrite(okv, 0, new HostBuf(src), stride, kOff, vOff, hist);
    const steps: SeqRows[] = lens.map((n, i) => ({ rowStart: i, rows: 1, start: n - 1, blockTable: tables[i]! }));
    const x = new HostBuf(rng(12)(lens.length * stride, -2, 2));
    dev.kvWrite(kv, 0, x, stride, kOff, vOff, steps);
    oracle.kvWrite(okv, 0, x, stride, kOff, vOff, steps);
    const out = dev.alloc(lens.length * 16), ref = oracle.alloc(lens.length * 16);
    dev.pagedAttention(x, stride, 0, kv, 0, steps, 2, 0.35, out);
    oracle.pagedAttention(x, stride, 0, okv, 0, steps, 2, 0.35, ref);
    // Tolerance as in the cases above: f32 dot products and exp against the f64 reference.
    expectWithin(out.data, oracle.download(ref), new Float64Array(lens.length * 16).fill(4e-5), 'nine sequences');
    // The last sequence alone afterwards: the same bits as inside the batch.
    const alone = dev.alloc(16);
    dev.pagedAttention(new HostBuf(x.data.slice(8 * stride)), stride, 0, kv, 0, [{ ...steps[8]!, rowStart: 0 }], 2, 0.35, alone);
    expect(alone.data).toEqual(out.data.subarray(8 * 16));
  });

  it('bad input gets a clear error', () => {
    const c = CASES[0]!;
    const { kv, spec, stride } = setup(c, 9);
    const x = new HostBuf(new Float32Array(4 * stride));
    const kOff = c.nHeads * c.headDim, vOff = kOff + c.nKv * c.headDim;
    const seq = (blockTable: Int32Array, start = 0, rows = 2): SeqRows[] => [{ rowStart: 0, rows, start, blockTable }];
    expect(() => dev.kvWrite(kv, 0, x, stride, kOff, vOff, seq(Int32Array.from([spec.numBlocks])))).toThrow(/block id \d+ \(entry 0\) is outside the pool \[0, \d+\)/);
    expect(() => dev.kvWrite(kv, 0, x, stride, kOff, vOff, seq(Int32Array.from([1]), 15, 2))).toThrow(/block table has 1 blocks; positions \[0, 17\) need 2 of 16 tokens/);
    expect(() => dev.kvWrite(kv, 2, x, stride, kOff, vOff, seq(Int32Array.from([1])))).toThrow(/layer 2 outside \[0, 2\)/);
    expect(() => dev.pagedAttention(x, stride, 0, kv, 0, seq(Int32Array.from([1])), 8, 1, dev.alloc(2 * 8 * c.headDim))).toThrow(/not a multiple/);
    expect(() => dev.kvCopyBlocks(kv, Int32Array.from([0]), Int32Array.from([-1]))).toThrow(/block id -1 is outside the pool/);
    expect(() => dev.allocKv({ ...spec, numBlocks: 0 })).toThrow(/numBlocks must be a positive integer/);
    expect(() => dev.pagedAttention(x, stride, 0, { spec, bytes: 0 }, 0, seq(Int32Array.from([1])), c.nHeads, 1, x)).toThrow(/not allocated by the native backend/);
  });
});
