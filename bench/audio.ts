// Speed of the audio encoder at the real Phi-4-MM size with deterministic random f32 weights held in memory:
// 30 s of audio (3000 feature frames → 375 audio tokens) through CMVN, NeMo subsampling, the conformer
// blocks and the speech projection, with createBackend('auto') at each thread count. Prints a table and,
// as the last line, one JSON object.
//
//   npx tsx bench/audio.ts [--blocks N] [--runs R] [--threads 1,2] [--seconds S]
// --blocks defaults to all 24 with the native addon and to 2 on the reference fallback (a full pass takes
// minutes there). Subsampling and projection are also timed alone, so the 24-block time is estimated as
// subsampling + projection + 24 · (total − subsampling − projection) / blocks (equal to the total at 24).
import { parseArgs } from 'node:util';
import { createBackend, type AttentionParams, type Backend } from '../src/tensor/backend.js';
import { Tensor } from '../src/tensor/tensor.js';
import { memoryProvider, StrictWeights, type StorageDType, type WeightSource } from '../src/nn/weights.js';
import { Phi4MMAudioEmbedding, type AudioConfig } from '../src/models/phi4mm/audio_encoder.js';

/** Phi-4-multimodal-instruct `audio_processor.config` (SPEC §4.7) in transformers-native key names. */
const REAL_AUDIO: AudioConfig = {
  hidden_size: 1024, intermediate_size: 1536, num_blocks: 24, num_attention_heads: 16, input_size: 80, time_reduction: 8,
  nemo_conv_channels: 1024, kernel_size: 3, ext_pw_out_channel: 1024, depthwise_seperable_out_channel: 1024,
  depthwise_multiplier: 1, bias_max_distance: 500, bias_symmetric: false, left_chunk: 18, chunk_size: -1, audio_token_id: 200011,
};
const LM_HIDDEN = 3072;
const FRAMES_PER_SECOND = 100; // 10 ms hop at 16 kHz
const SEED = 1;

const { values: args } = parseArgs({ options: { blocks: { type: 'string' }, runs: { type: 'string', default: '1' }, threads: { type: 'string', default: '1,2' }, seconds: { type: 'string', default: '30' } } });

/** Names and shapes the model asks for, collected by constructing it once over one shared zero buffer. */
function weightSpecs(cfg: AudioConfig): Array<{ name: string; shape: number[] }> {
  const specs: Array<{ name: string; shape: number[] }> = [];
  const zeros = new Float32Array(LM_HIDDEN * LM_HIDDEN * 2); // ≥ the largest tensor
  const rec: WeightSource = {
    take: (name: string, shape: readonly number[], _as?: StorageDType) => (specs.push({ name, shape: shape.slice() }), new Tensor('f32', shape, zeros)),
    takeOptional: () => null,
    ignore: () => {},
    has: () => true,
  };
  new Phi4MMAudioEmbedding(rec, cfg, LM_HIDDEN);
  return specs;
}

/** xorshift32 stream → uniform values with the given std (std 0 = constant `mean`). */
function fill(n: number, seed: number, std: number, mean = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const half = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = mean + (std ? half * (2 * (s / 4294967296) - 1) : 0);
  }
  return out;
}

function randomWeights(cfg: AudioConfig): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  weightSpecs(cfg).forEach(({ name, shape }, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length > 1 ? n / shape[0]! : 0;
    const gain = /layer_norm(_att)?\.weight$|global_invstd$/.test(name);
    out[name] = { shape, data: gain ? fill(n, 0, 0, 1) : fill(n, SEED * 7919 + i, fanIn ? 1 / Math.sqrt(fanIn) : 0.02) };
  });
  return out;
}

/** Wraps a backend to add up the time spent in GEMMs and attention. */
function timed(be: Backend): { be: Backend; t: { linear: number; attention: number } } {
  const t = { linear: 0, attention: 0 };
  // Every other op (and any the backend grows) is inherited unchanged.
  const wrap = Object.create(be) as Backend;
  wrap.linear = (x, m, w, bias, out) => { const s = performance.now(); const y = be.linear(x, m, w, bias, out); t.linear += performance.now() - s; return y; };
  wrap.attention = (p: AttentionParams) => { const s = performance.now(); const y = be.attention(p); t.attention += performance.now() - s; return y; };
  return { be: wrap, t };
}

async function main(): Promise<void> {
  const threadList = args.threads!.split(',').map(Number);
  const probe = await createBackend('auto', 1);
  const blocks = Number(args.blocks ?? (probe.name === 'native' ? REAL_AUDIO.num_blocks : 2));
  const runs = Number(args.runs);
  const frames = Math.round(Number(args.seconds) * FRAMES_PER_SECOND);
  const cfg = { ...REAL_AUDIO, num_blocks: blocks };

  let s = performance.now();
  const ws = new StrictWeights(memoryProvider(randomWeights(cfg), 'random'));
  const model = new Phi4MMAudioEmbedding(ws, cfg, LM_HIDDEN);
  ws.finish();
  const loadMs = performance.now() - s;
  const features = fill(frames * cfg.input_size, 42, 3, -8); // log-mel-like magnitudes
  const tokens = Math.ceil(frames / cfg.time_reduction);

  const rows: Array<Record<string, number | string>> = [];
  for (const threads of threadList) {
    const { be, t } = timed(await createBackend('auto', threads));
    let best = Infinity, bestLinear = 0, bestAttn = 0;
    for (let r = 0; r < runs; r++) {
      t.linear = t.attention = 0;
      s = performance.now();
      const out = model.encode(be, features, [frames], 'speech');
      const ms = performance.now() - s;
      if (out[0]!.length !== tokens * LM_HIDDEN || !Number.isFinite(out[0]![0]!)) throw new Error('bad encoder output');
      if (ms < best) [best, bestLinear, bestAttn] = [ms, t.linear, t.attention];
    }
    // Stages timed on their own (same modules encode() runs) to split the total into per-block time.
    s = performance.now();
    const sub = model.encoder.embed.forward(be, model.encoder.encoderEmbedding.forward(features), 1, frames, cfg.input_size).out;
    const subMs = performance.now() - s;
    s = performance.now();
    model.audioProjection.speech.forward(be, sub, tokens);
    const projMs = performance.now() - s;
    const blockMs = (best - subMs - projMs) / blocks;
    const full = subMs + projMs + blockMs * REAL_AUDIO.num_blocks;
    rows.push({
      backend: be.name, threads, blocks, total_ms: Math.round(best), linear_ms: Math.round(bestLinear), attention_ms: Math.round(bestAttn),
      subsampling_ms: Math.round(subMs), projection_ms: Math.round(projMs), per_block_ms: Math.round(blockMs),
      est_full_ms: Math.round(full), est_full_realtime_x: +(Number(args.seconds) / (full / 1000)).toFixed(2),
    });
  }

  console.log(`audio encoder, real size (C=${cfg.hidden_size}, ${cfg.num_attention_heads} heads, FFN ${cfg.intermediate_size}, ${blocks}/${REAL_AUDIO.num_blocks} blocks, projection → ${LM_HIDDEN}), f32 weights, ${args.seconds} s = ${frames} frames → ${tokens} tokens; weights built in ${Math.round(loadMs)} ms; best of ${runs}`);
  const cols: Array<[string, string]> = [['backend', 'backend'], ['threads', 'threads'], ['blocks', 'blocks'], ['total_ms', 'total ms'], ['linear_ms', 'GEMM ms'],
    ['attention_ms', 'attn ms'], ['subsampling_ms', 'subsamp ms'], ['projection_ms', 'proj ms'], ['per_block_ms', 'ms/block'],
    ['est_full_ms', `${REAL_AUDIO.num_blocks}-block ms`], ['est_full_realtime_x', 'x realtime']];
  console.log(cols.map(([, h]) => h.padStart(12)).join(''));
  for (const r of rows) console.log(cols.map(([k]) => String(r[k]).padStart(12)).join(''));
  console.log(JSON.stringify({ bench: 'audio_encoder', seconds: Number(args.seconds), frames, tokens, blocks, full_blocks: REAL_AUDIO.num_blocks, runs, results: rows }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
