// forwardBatch's contract beyond exactness: logits order, bad batches rejected before anything is written,
// the KV layout helpers, and the research cache growing by replay without changing a bit.
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import type { BatchSeq } from '../../src/models/phi4mm/decoder.js';
import { loadDecoder } from '../lm/load.js';

const be = new ReferenceBackend();
const lm = loadDecoder('orig');
const V = lm.cfg.vocab_size;
const ids = Int32Array.of(200022, 3575, 553, 261, 200020, 200021, 12194, 200020, 200019);

describe('Phi4MiniDecoder.forwardBatch', () => {
  it('returns the last-row logits of the sequences that ask, in batch order', () => {
    const kv = be.device.allocKv(lm.kvSpec(8, 4, 'f32'));
    const a: BatchSeq = { ids: ids.subarray(0, 5), mode: 'language', long: false, start: 0, blockTable: Int32Array.of(0, 1), logits: true };
    const b: BatchSeq = { ids: ids.subarray(0, 3), mode: 'speech', long: false, start: 0, blockTable: Int32Array.of(2), logits: false };
    const c: BatchSeq = { ids, mode: 'vision', long: false, start: 0, blockTable: Int32Array.of(5, 3, 4), logits: true };
    const out = lm.forwardBatch(be, kv, [a, b, c]);
    expect(out.length).toBe(2 * V);
    expect(Array.from(out.subarray(0, V))).toEqual(Array.from(lm.forward(be, ids.subarray(0, 5)).logits));
    expect(Array.from(out.subarray(V))).toEqual(Array.from(lm.forward(be, ids, { mode: 'vision' }).logits));
    expect(lm.forwardBatch(be, kv, [{ ...b, logits: false }]).length).toBe(0);
  });

  it('rejects a bad batch before writing anything', () => {
    const kv = be.device.allocKv(lm.kvSpec(4, 4, 'f16'));
    const ok: BatchSeq = { ids: ids.subarray(0, 4), mode: 'language', long: false, start: 0, blockTable: Int32Array.of(0), logits: true };
    const before = lm.forwardBatch(be, kv, [ok]);
    const bad: Array<[Partial<BatchSeq>, RegExp]> = [
      [{ blockTable: Int32Array.of(4) }, /block id 4 \(entry 0\) is outside the pool \[0, 4\)/],
      [{ start: 2 }, /block table has 1 blocks; positions \[0, 6\) need 2 of 4 tokens/],
      [{ ids: Int32Array.of(1, V) }, /token id 200064 at 1 is outside the vocabulary/],
      [{ embeds: new Float32Array(5) }, /embeds has 5 values, expected 4 rows x 32/],
      [{ mode: 'audio' as never }, /unknown input mode 'audio'/],
      [{ ids: new Int32Array(0) }, /ids must be a non-empty Int32Array/],
      [{ start: lm.cfg.max_position_embeddings - 2 }, /exceed max_position_embeddings/],
    ];
    for (const [patch, err] of bad) {
      // The bad sequence comes second: the good one must not have run either (its K/V would be rewritten).
      expect(() => lm.forwardBatch(be, kv, [{ ...ok, blockTable: Int32Array.of(1) }, { ...ok, ...patch }])).toThrow(err);
    }
    expect(() => lm.forwardBatch(be, kv, [])).toThrow(/no sequences/);
    expect(() => lm.forwardBatch(be, be.device.allocKv({ ...lm.kvSpec(4, 4, 'f16'), headDim: 8 }), [ok])).toThrow(/made for another model; use decoder.kvSpec\(\)/);
    // Block 1 (the good sequence's) was never written: a continuation that reads positions 0-3 from it sees
    // the same (zero) K/V as one reading them from block 3, which nothing touched.
    const next = (b: number) => lm.forwardBatch(be, kv, [{ ...ok, ids: Int32Array.of(7), start: 4, blockTable: Int32Array.of(b, 2) }]);
    const fromBlock1 = next(1), fromBlock3 = next(3), fromBlock0 = next(0);
    expect(Array.from(fromBlock1)).toEqual(Array.from(fromBlock3));
    expect(Array.from(fromBlock0)).not.toEqual(Array.from(fromBlock3)); // block 0 was written: the check can tell
    expect(before.length).toBe(V);
  });

  it('KV layout helpers: kvSpec and bytes per token (f16 = half of f32)', () => {
    expect(lm.kvSpec(10, 16, 'f16')).toEqual({ layers: 2, numBlocks: 10, blockSize: 16, nKvHeads: 1, headDim: 16, dtype: 'f16' });
    expect(lm.kvBytesPerToken('f32')).toBe(2 * 2 * 16 * 4);
    expect(lm.kvBytesPerToken('f16')).toBe(lm.kvBytesPerToken('f32') / 2);
  });

  it('a research cache that grows (replay into a larger store) gives the same logits, bit for bit', () => {
    const small = lm.newCache(4), big = lm.newCache(64);
    for (const [a, b] of [[0, 3], [3, 4], [4, 9]] as const) {
      const x = lm.forward(be, ids.subarray(a, b), { cache: small, mode: 'speech' }).logits;
      const y = lm.forward(be, ids.subarray(a, b), { cache: big, mode: 'speech' }).logits;
      expect(Array.from(x)).toEqual(Array.from(y));
    }
    expect(small.capacity).toBeGreaterThanOrEqual(9);
    expect(small.length).toBe(9);
  });
});
