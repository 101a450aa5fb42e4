// A minimal continuous-batching loop over forwardBatch for the exactness tests (the real scheduler is
// src/engine's): a shared paged KV pool, sequences that arrive at different steps, chunked prefill next to
// other sequences' decode rows, greedy sampling, and the LongRoPE switch of generateTokens (the first time a
// sequence grows past original_max_position_embeddings, its whole history is prefilled again with long=true).
import type { Backend } from '../../src/tensor/backend.js';
import type { KvDType } from '../../src/tensor/device.js';
import type { BatchSeq, Phi4MiniDecoder } from '../../src/models/phi4mm/decoder.js';
import type { InputMode } from '../../src/models/phi4mm/lora.js';
import { argmax } from '../../src/text/sampling.js';

export interface Request {
  prompt: Int32Array;
  /** [prompt, hidden] rows replacing the lookup (media merged in). */
  embeds?: Float32Array;
  mode: InputMode;
  maxNewTokens: number;
  /** Step at which the request joins the batch. */
  arrival: number;
}

export interface Generated {
  ids: number[];
  /** A copy of the logits each id was picked from. */
  logits: Float32Array[];
  /** Whether the sequence ran its history again with the long factors. */
  switched: boolean;
}

interface Seq {
  req: Request;
  tokens: number[]; // prompt + generated
  pos: number; // tokens in the KV store
  long: boolean;
  blocks: number[];
  out: Generated;
}

export interface DriverOptions {
  kvDtype: KvDType;
  blockSize: number;
  /** Most prefill rows one sequence contributes to a step. */
  chunk: number;
}

export function generateBatched(be: Backend, lm: Phi4MiniDecoder, reqs: Request[], o: DriverOptions): { results: Generated[]; maxRows: number; steps: number } {
  const hidden = lm.cfg.hidden_size;
  const maxTokens = Math.max(...reqs.map((r) => r.prompt.length + r.maxNewTokens));
  const numBlocks = reqs.length * Math.ceil(maxTokens / o.blockSize);
  const kv = be.device.allocKv(lm.kvSpec(numBlocks, o.blockSize, o.kvDtype));
  // Hand out blocks from the top down, interleaved between sequences: tables are anything but contiguous.
  const free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  const seqs: Seq[] = [];
  const done: Seq[] = [];
  let step = 0, maxRows = 0;
  while (done.length < reqs.length) {
    reqs.forEach((req) => {
      if (req.arrival !== step) return;
      const out: Generated = { ids: [], logits: [], switched: false };
      seqs.push({ req, tokens: Array.from(req.prompt), pos: 0, long: lm.rope.useLong(req.prompt.length), blocks: [], out });
    });
    const batch: BatchSeq[] = [], owners: Seq[] = [];
    for (const s of seqs) {
      const rows = Math.min(o.chunk, s.tokens.length - s.pos);
      while (s.blocks.length * o.blockSize < s.pos + rows) s.blocks.push(free.pop()!);
      const ids = Int32Array.from(s.tokens.slice(s.pos, s.pos + rows));
      const seq: BatchSeq = { ids, mode: s.req.mode, long: s.long, start: s.pos, blockTable: Int32Array.from(s.blocks), logits: s.pos + rows === s.tokens.length };
      const n = s.req.prompt.length;
      if (s.req.embeds && s.pos < n) {
        // Prompt rows from the media-merged embeddings, generated rows (after a LongRoPE re-prefill) looked up.
        const e = new Float32Array(rows * hidden);
        const fromPrompt = Math.min(rows, n - s.pos);
        e.set(s.req.embeds.subarray(s.pos * hidden, (s.pos + fromPrompt) * hidden));
        if (rows > fromPrompt) e.set(lm.embed(ids.subarray(fromPrompt)), fromPrompt * hidden);
        seq.embeds = e;
      }
      batch.push(seq);
      owners.push(s);
      s.pos += rows;
    }
    step++;
    if (batch.length === 0) continue;
    maxRows = Math.max(maxRows, batch.reduce((a, b) => a + b.ids.length, 0));
    const logits = lm.forwardBatch(be, kv, batch);
    const V = lm.cfg.vocab_size;
    let li = 0;
    owners.forEach((s, i) => {
      if (!batch[i]!.logits) return;
      const l = logits.slice(li * V, (li + 1) * V);
      li++;
      const id = argmax(l);
      s.out.ids.push(id);
      s.out.logits.push(l);
      s.tokens.push(id);
      if (s.out.ids.length >= s.req.maxNewTokens) {
        seqs.splice(seqs.indexOf(s), 1);
        free.push(...s.blocks);
        done.push(s);
      } else if (!s.long && lm.rope.useLong(s.tokens.length)) {
        s.long = true; // cached keys were rotated with the short factors: run the whole history again
        s.pos = 0;
        s.out.switched = true;
      }
    });
  }
  return { results: reqs.map((r) => done.find((s) => s.req === r)!.out), maxRows, steps: step };
}
