// A ragged batch of sequences for one decoder forward: validated up front (nothing reaches the device before
// every sequence is known to be well formed, so a bad request cannot leave a half-written KV), then laid out as
// rows: each sequence's new rows are contiguous, in the given order.
import type { KvSpec, SeqRows } from '../../tensor/device.js';
import type { AdapterRun } from '../../nn/device_layers.js';
import type { TextConfig } from './config.js';
import type { LongRope } from './rope.js';
import { loraAdapterFor, type InputMode } from './multimodal.js';

const MODES: readonly InputMode[] = ['language', 'vision', 'speech', 'vision_speech'];

/** One sequence's part of a forward (the engine's unit of work). */
export interface BatchSeq {
  /** Token ids of the new rows (placeholder ids where `embeds` supplies the rows). */
  ids: Int32Array;
  /** [rows, hidden] host rows that replace the embedding lookup (media merged in). */
  embeds?: Float32Array;
  /** Picks the LoRA adapter of these rows. */
  mode: InputMode;
  /** LongRoPE regime of the whole sequence (long factors once it has grown past original_max_position_embeddings). */
  long: boolean;
  /** Position of the first new row = tokens of this sequence already in the KV store. */
  start: number;
  /** Block ids covering positions [0, start + rows). */
  blockTable: Int32Array;
  /** Whether this sequence wants the logits of its last new row. */
  logits: boolean;
}

export interface BatchPlan {
  /** Rows in the batch. */
  t: number;
  seqs: SeqRows[];
  /** Adapter per run of rows (adjacent sequences with the same adapter merged). */
  runs: AdapterRun[];
  /** [t] token ids of every row. */
  ids: Int32Array;
  /** Rows that come from `embeds` instead of the lookup: [row offset, data]. */
  embeds: Array<[number, Float32Array]>;
  /** cos/sin [t, rotaryDim]: each sequence's positions under its own LongRoPE regime. */
  cos: Float32Array;
  sin: Float32Array;
  /** The last row of each sequence that asked for logits, in order. */
  logitRows: Int32Array;
}

export function planBatch(cfg: TextConfig, rope: LongRope, kv: KvSpec, hasAdapter: (name: string) => boolean, batch: readonly BatchSeq[]): BatchPlan {
  if (batch.length === 0) throw new Error('forwardBatch: no sequences');
  const hd = cfg.hidden_size, rd = rope.rotaryDim;
  let t = 0;
  batch.forEach((s, i) => {
    const what = `forwardBatch: sequence ${i}`;
    if (!(s.ids instanceof Int32Array) || s.ids.length === 0) throw new Error(`${what}: ids must be a non-empty Int32Array`);
    const rows = s.ids.length;
    if (!Number.isInteger(s.start) || s.start < 0) throw new Error(`${what}: start must be a non-negative integer, got ${s.start}`);
    if (s.start + rows > cfg.max_position_embeddings) throw new Error(`${what}: positions up to ${s.start + rows} exceed max_position_embeddings ${cfg.max_position_embeddings}`);
    if (!MODES.includes(s.mode)) throw new Error(`${what}: unknown input mode '${s.mode}' (expected ${MODES.join(', ')})`);
    const adapter = loraAdapterFor(s.mode);
    if (adapter && !hasAdapter(adapter)) throw new Error(`no "${adapter}" LoRA adapter is loaded: the checkpoint config declares none; use mode 'language'`);
    if (typeof s.long !== 'boolean') throw new Error(`${what}: long must be a boolean`);
    if (s.embeds) {
      if (s.embeds.length !== rows * hd) throw new Error(`${what}: embeds has ${s.embeds.length} values, expected ${rows} rows x ${hd}`);
    } else {
      for (let j = 0; j < rows; j++) {
        const id = s.ids[j]!;
        if (!(id >= 0 && id < cfg.vocab_size)) throw new Error(`token id ${id} at ${j} is outside the vocabulary [0, ${cfg.vocab_size})`);
      }
    }
    const need = Math.ceil((s.start + rows) / kv.blockSize);
    if (!(s.blockTable instanceof Int32Array) || s.blockTable.length < need) throw new Error(`${what}: the block table has ${s.blockTable?.length} blocks; positions [0, ${s.start + rows}) need ${need} of ${kv.blockSize} tokens`);
    for (let b = 0; b < need; b++) {
      const id = s.blockTable[b]!;
      if (!(id >= 0 && id < kv.numBlocks)) throw new Error(`${what}: block id ${id} (entry ${b}) is outside the pool [0, ${kv.numBlocks})`);
    }
    t += rows;
  });

  const ids = new Int32Array(t), cos = new Float32Array(t * rd), sin = new Float32Array(t * rd);
  const seqs: SeqRows[] = [], runs: AdapterRun[] = [], embeds: Array<[number, Float32Array]> = [], logitRows: number[] = [];
  let row = 0;
  for (const s of batch) {
    const rows = s.ids.length;
    seqs.push({ rowStart: row, rows, start: s.start, blockTable: s.blockTable });
    ids.set(s.embeds ? new Int32Array(rows) : s.ids, row); // rows from embeds look up id 0 (then overwritten)
    if (s.embeds) embeds.push([row, s.embeds]);
    rope.tables(s.start, rows, s.long, { cos: cos.subarray(row * rd, (row + rows) * rd), sin: sin.subarray(row * rd, (row + rows) * rd) });
    const adapter = loraAdapterFor(s.mode), last = runs[runs.length - 1];
    if (last && last.adapter === adapter) last.rows += rows;
    else runs.push({ rowStart: row, rows, adapter });
    row += rows;
    if (s.logits) logitRows.push(row - 1);
  }
  return { t, seqs, runs, ids, embeds, cos, sin, logitRows: Int32Array.from(logitRows) };
}
