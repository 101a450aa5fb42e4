// A deterministic stand-in for the decoder with the BatchModel contract: every row's "K/V" is one number
// written into its paged slot, and a row's logits fold over the sequence's slots read back through its block
// table, so any paging mistake (wrong block, stale block, missed copy) changes the ids. The regime and the
// mode are mixed into every slot, like LongRoPE and the LoRA adapter change every key.
import type { AudioBatchInput, BatchModel, BatchSeq, ImageBatchInput, InputMode } from '../../src/engine/types.js';

const MOD = 1_000_000_007;
const MODE_CODE: Record<InputMode, number> = { language: 1, vision: 2, speech: 3, vision_speech: 4 };

export class FakeModel implements BatchModel {
  readonly vocabSize: number;
  readonly hidden = 4;
  readonly kvBytesPerToken = 8;
  store = new Float64Array(0);
  blockSize = 0;
  /** Every forward's shape: per sequence [start, rows, long, logits]. */
  readonly forwards: Array<Array<{ start: number; rows: number; long: boolean; logits: boolean }>> = [];
  encodes = 0;

  constructor(readonly maxPositions = 400, readonly longAfter = 1 << 30, vocab = 64) {
    this.vocabSize = vocab;
  }

  useLong(total: number): boolean {
    return total > this.longAfter;
  }

  allocKv(numBlocks: number, blockSize: number): void {
    this.blockSize = blockSize;
    this.store = new Float64Array(numBlocks * blockSize).fill(NaN);
  }

  forwardBatch(seqs: BatchSeq[]): Float32Array {
    this.forwards.push(seqs.map((s) => ({ start: s.start, rows: s.ids.length, long: s.long, logits: s.logits })));
    const out: number[][] = [];
    for (const s of seqs) {
      for (let r = 0; r < s.ids.length; r++) {
        const x = s.embeds ? s.embeds.subarray(r * this.hidden, (r + 1) * this.hidden).reduce((a, b) => a + b, 0) : s.ids[r]!;
        this.store[this.slot(s.blockTable, s.start + r)] = slotValue(x, s.start + r, s.mode, s.long);
      }
      if (!s.logits) continue;
      const vals: number[] = [];
      for (let p = 0; p < s.start + s.ids.length; p++) vals.push(this.store[this.slot(s.blockTable, p)]!);
      out.push(logitsOf(vals, this.vocabSize));
    }
    return Float32Array.from(out.flat());
  }

  copyBlocks(src: Int32Array, dst: Int32Array): void {
    const bs = this.blockSize;
    src.forEach((s, i) => this.store.copyWithin(dst[i]! * bs, s * bs, (s + 1) * bs));
  }

  embed(ids: Int32Array): Float32Array {
    const out = new Float32Array(ids.length * this.hidden);
    ids.forEach((id, i) => (out[i * this.hidden] = id));
    return out;
  }

  encodeImages(x: ImageBatchInput): Float32Array[] {
    this.encodes++;
    return x.numImgTokens.map((rows, i) => Float32Array.from({ length: rows * this.hidden }, (_, j) => (j % this.hidden === 0 ? 1000 + 100 * x.pixelValues[i]! + j : 0)));
  }

  encodeAudio(x: AudioBatchInput): Float32Array[] {
    this.encodes++;
    return x.frames.map((f, i) => Float32Array.from({ length: Math.ceil(f / 8) * this.hidden }, (_, j) => (j % this.hidden === 0 ? 5000 + x.features[i]! + j : 0)));
  }

  private slot(table: Int32Array, p: number): number {
    const b = table[Math.floor(p / this.blockSize)];
    if (b === undefined) throw new Error(`position ${p} has no block (table of ${table.length})`);
    return b * this.blockSize + (p % this.blockSize);
  }
}

export function slotValue(x: number, pos: number, mode: InputMode, long: boolean): number {
  return (Math.round(x) * 7919 + pos * 104729 + MODE_CODE[mode] * 1299709 + (long ? 15485863 : 0)) % MOD;
}

export function logitsOf(vals: number[], vocab: number): number[] {
  let h = 17;
  for (const v of vals) h = (h * 31 + v) % MOD;
  return Array.from({ length: vocab }, (_, j) => ((h * (j + 7)) % 1009) / 1009);
}

/** One-at-a-time greedy reference, no paging: the whole sequence recomputed each step in its current regime. */
export function referenceGreedy(m: FakeModel, prompt: number[], maxTokens: number, stopIds: number[] = [], mode: InputMode = 'language', rowValue?: (pos: number, id: number) => number): number[] {
  const toks = [...prompt], out: number[] = [];
  while (out.length < maxTokens) {
    const long = m.useLong(toks.length);
    const vals = toks.map((id, p) => slotValue(rowValue && p < prompt.length ? rowValue(p, id) : id, p, mode, long));
    const l = logitsOf(vals, m.vocabSize);
    const id = l.indexOf(Math.max(...l));
    out.push(id);
    if (stopIds.includes(id) || toks.length + 1 >= m.maxPositions) break;
    toks.push(id);
  }
  return out;
}
