// Decode and prefill at long contexts through the engine's path (lm.forwardBatch over a paged f16 KV store whose
// history is filled with random rows, so no prompt has to run first): decode tok/s at each context length, and
// the time of one prefill chunk at each start position. What a context adds is the attention's cost.
//
//   npx tsx bench/long_context.ts --model <q4k folder> [--threads 2] [--contexts 16,3000] [--steps 16]
//        [--starts 0,3072] [--chunk 256]
import { parseArgs } from 'node:util';
import { Phi4MM } from '../src/api/phi4mm.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, threads: { type: 'string', default: '2' }, contexts: { type: 'string', default: '16,3000' },
    steps: { type: 'string', default: '16' }, starts: { type: 'string', default: '0,3072' }, chunk: { type: 'string', default: '256' },
  },
});
if (!values.model) throw new Error('--model DIR (a pre-quantized q4k folder) is required');
const list = (s: string) => s.split(',').filter((x) => x !== '').map(Number);
const threads = Number(values.threads), contexts = list(values.contexts!), steps = Number(values.steps);
const starts = list(values.starts!), chunk = Number(values.chunk);

const m = await Phi4MM.fromPretrained(values.model, { isq: 'q4k', backend: 'native', threads, engine: { host: 'inline', prefixCache: false, mediaCacheMb: 0, kvCacheGb: 0.5 } });
const be = m.backend, lm = m.model.lm, dev = be.device;
const BLOCK_TOKENS = 16;
const maxCtx = Math.max(...contexts.map((c) => c + steps), ...starts.map((s) => s + chunk)) + BLOCK_TOKENS;
const blocks = Math.ceil(maxCtx / BLOCK_TOKENS);
const kv = dev.allocKv(lm.kvSpec(blocks, BLOCK_TOKENS, 'f16'));
const table = Int32Array.from({ length: blocks }, (_, i) => i);

// History: random K/V rows at every position (written 512 positions at a time, [k | v] rows).
const kvw = m.model.config.text.num_key_value_heads * lm.headDim, rowStride = 2 * kvw, WRITE_ROWS = 512;
let seed = 7;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const rows = dev.alloc(WRITE_ROWS * rowStride);
dev.upload(Float32Array.from({ length: WRITE_ROWS * rowStride }, rnd), rows);
for (let l = 0; l < lm.layers.length; l++)
  for (let p = 0; p < maxCtx; p += WRITE_ROWS) dev.kvWrite(kv, l, rows, rowStride, 0, kvw, [{ rowStart: 0, rows: Math.min(WRITE_ROWS, maxCtx - p), start: p, blockTable: table }]);

const seq = (ids: Int32Array, start: number) => ({ ids, mode: 'language' as const, long: false, start, blockTable: table, logits: true });
const logitsOut = new Float32Array(lm.cfg.vocab_size); // reused, as the engine's DeviceBatchModel does
// Each figure twice, in order and then reversed, so a drift of the shared machine shows as disagreement.
for (const c of [...contexts, ...contexts.slice().reverse()]) {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) lm.forwardBatch(be, kv, [seq(Int32Array.of(1000 + i), c + i)], { logitsOut });
  const ms = (performance.now() - t0) / steps;
  console.log(JSON.stringify({ threads, metric: 'decode', context: c, ms_per_token: +ms.toFixed(1), tok_s: +(1000 / ms).toFixed(2) }));
}
const ids = Int32Array.from({ length: chunk }, (_, i) => 1000 + i * 7);
for (const s of [...starts, ...starts.slice().reverse()]) {
  const t0 = performance.now();
  lm.forwardBatch(be, kv, [seq(ids, s)], { logitsOut });
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ threads, metric: 'prefill_chunk', start: s, rows: chunk, ms: Math.round(ms), tok_s: +(chunk / ms * 1000).toFixed(1) }));
}
process.exit(0);
