// End-to-end benchmark on a checkpoint folder (real-size random weights from bench/make-checkpoint.ts):
// load + ISQ time and peak RSS, prefill tok/s at 512 tokens, decode tok/s over 128 tokens (raw forward loop, and
// through chat() with sampling and detokenizing), one 448×448 image
// (545 tokens: vision encode time and time to first token) and 30 s of audio (encode time and TTFT), at 1 and
// 2 threads, medians of --runs runs. Each ISQ setting runs in its own process so peak RSS is its own.
// Prints one JSON line per figure and a markdown table at the end.
//
//   npm run bench -- --model /tmp/phi4mm-real [--isq q4k,q8_0,none] [--threads 1,2] [--runs 3] [--skip image,audio]
//        [--encoder-precision f32|bf16] [--quantize-encoders] [--quantize-adapters]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Phi4MM, type IsqKind } from '../src/api/phi4mm.js';
import type { ChatMessage } from '../src/api/types.js';
import { timeStream } from './stream_timing.js';
import { LmTiming } from './lm_timing.js';
import { machineLine } from './machine.js';
import { createBackend } from '../src/tensor/backend.js';

interface Figure { isq: string; threads: number | null; metric: string; value: number; unit: string }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface MediaOptions { encoderPrecision: 'f32' | 'bf16'; quantizeEncoders: boolean; quantizeAdapters: boolean }

async function child(model: string, isq: IsqKind, threads: number[], runs: number, skip: Set<string>, media: MediaOptions): Promise<void> {
  const out = (metric: string, value: number, unit: string, t: number | null = null) =>
    console.log(JSON.stringify({ isq, threads: t, metric, value: +value.toFixed(3), unit } satisfies Figure));
  const t0 = performance.now();
  // Inline engine: the research API (m.model, m.backend) and chat share one copy of the weights.
  const m = await Phi4MM.fromPretrained(model, { isq, backend: 'native', threads: Math.max(...threads), ...media, engine: { host: 'inline', prefixCache: false, mediaCacheMb: 0 } }); // cold figures: no prefix or media cache
  out('load_s', (performance.now() - t0) / 1000, 's');
  out('rss_after_load_gib', process.memoryUsage().rss / 2 ** 30, 'GiB');
  out('peak_rss_load_gib', process.resourceUsage().maxRSS / 2 ** 20, 'GiB');
  const be = m.backend;
  // The encoders and adapters are read on first use (lazyMedia): read them now, so that the media figures below
  // time encoding and prefill, not that one-time read (bench/memory.ts measures it).
  const tl = performance.now();
  m.model.loadAll();
  out('media_parts_first_read_s', (performance.now() - tl) / 1000, 's');
  const rnd = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + seed * 104729) % 150000));
  const timing = new LmTiming(m, 512, rnd(512, 99));
  for (const t of threads) {
    be.setThreads(t);
    // prefill: 512 tokens through the LM (no LoRA), last-position logits
    const pre: number[] = [];
    for (let r = 0; r < runs; r++) pre.push(timing.prefill(rnd(512, r)));
    out('prefill_tok_s', 512 / median(pre), 'tok/s', t);
    // decode: 128 single-token steps after a 16-token prompt
    const dec: number[] = [];
    for (let r = 0; r < runs; r++) dec.push(timing.decode(rnd(16, r), 128));
    out('decode_tok_s', 128 / median(dec), 'tok/s', t);
    // The same through chat() as a user gets it (engine step, sampling, detokenizing, streaming): tokens after the
    // first, from usage (a text delta can carry several tokens or none), over the time from the first to the end.
    const viaChat: number[] = [];
    for (let r = 0; r < runs; r++) {
      const { first, end, tokens } = await timeStream(m.streamEvents([{ role: 'user', content: `Count: ${r} ${t}` }], { maxTokens: 128, temperature: 0.8, seed: r }));
      if (tokens > 1 && end > first) viaChat.push((tokens - 1) / ((end - first) / 1000));
    }
    if (viaChat.length) out('decode_chat_tok_s', median(viaChat), 'tok/s', t);
    const e2e = async (msgs: ChatMessage[]) => {
      const enc: number[] = [], ttft: number[] = [];
      // The engine calls the encoders itself (its caches are off here, so every run encodes and prefills).
      const img = m.model.image_embed, aud = m.model.audio_embed;
      const oi = img.encode.bind(img), oa = aud.encode.bind(aud);
      const timed = <A extends unknown[], R>(f: (...x: A) => R) => (...x: A): R => { const s = performance.now(); const r = f(...x); enc.push((performance.now() - s) / 1000); return r; };
      img.encode = timed(oi);
      aud.encode = timed(oa);
      try {
        for (let r = 0; r < Math.max(1, Math.min(runs, 2)); r++) {
          const s = performance.now();
          for await (const ev of m.streamEvents(msgs, { maxTokens: 1 })) if (ev.type === 'done') ttft.push((performance.now() - s) / 1000);
        }
      } finally {
        img.encode = oi;
        aud.encode = oa;
      }
      return { enc: median(enc), ttft: median(ttft) };
    };
    if (!skip.has('image')) {
      const px = new Uint8Array(448 * 448 * 3).map((_, i) => (i * 37) & 255);
      const r = await e2e([{ role: 'user', content: [{ type: 'image', image: { width: 448, height: 448, data: px } }, { type: 'text', text: 'Describe the image.' }] }]);
      out('image448_encode_s', r.enc, 's', t);
      out('image448_ttft_s', r.ttft, 's', t);
    }
    if (!skip.has('audio')) {
      const sr = 16000, samples = Float32Array.from({ length: 30 * sr }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / sr) + 0.05 * Math.sin(i * 0.37));
      const r = await e2e([{ role: 'user', content: [{ type: 'audio', audio: { samples, sampleRate: sr } }, { type: 'text', text: 'Transcribe.' }] }]);
      out('audio30s_encode_s', r.enc, 's', t);
      out('audio30s_ttft_s', r.ttft, 's', t);
    }
  }
  out('peak_rss_gib', process.resourceUsage().maxRSS / 2 ** 20, 'GiB');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    model: { type: 'string' }, isq: { type: 'string', default: 'q4k' }, threads: { type: 'string', default: '1,2' },
    runs: { type: 'string', default: '3' }, skip: { type: 'string', default: '' }, child: { type: 'boolean' },
    'encoder-precision': { type: 'string', default: 'f32' }, 'quantize-encoders': { type: 'boolean' }, 'quantize-adapters': { type: 'boolean' },
  } });
  if (!values.model) throw new Error('usage: npm run bench -- --model <checkpoint dir> [--isq q4k,q8_0,none] [--threads 1,2] [--runs 3] [--skip image,audio]');
  const threads = values.threads!.split(',').map(Number), runs = Number(values.runs), skip = new Set(values.skip!.split(',').filter(Boolean));
  const enc = values['encoder-precision'] as 'f32' | 'bf16';
  if (enc !== 'f32' && enc !== 'bf16') throw new Error(`--encoder-precision must be f32 or bf16 (got ${enc})`);
  const media: MediaOptions = { encoderPrecision: enc, quantizeEncoders: values['quantize-encoders'] === true, quantizeAdapters: values['quantize-adapters'] === true };
  if (values.child) return child(values.model, values.isq as IsqKind, threads, runs, skip, media);
  const figures: Figure[] = [];
  for (const isq of values.isq!.split(',')) {
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', '--model', values.model, '--isq', isq, '--threads', values.threads!, '--runs', values.runs!, '--skip', values.skip!, '--encoder-precision', enc, ...(media.quantizeEncoders ? ['--quantize-encoders'] : []), ...(media.quantizeAdapters ? ['--quantize-adapters'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      console.log(line);
      figures.push(JSON.parse(line) as Figure);
    }
    if (r.status !== 0) console.error(`isq ${isq}: benchmark process exited with ${r.status}`);
  }
  const isa = (await createBackend('native')).isa;
  console.log(`\nMachine: ${machineLine()}; native backend (${isa} kernels); medians of ${runs} runs (end-to-end media: of up to 2).\n`);
  const metrics = [...new Set(figures.map((f) => f.metric))];
  const cols = [...new Set(figures.map((f) => `${f.isq}${f.threads ? ` / ${f.threads}t` : ''}`))];
  console.log(`| metric | ${cols.join(' | ')} |\n|---|${cols.map(() => '---').join('|')}|`);
  for (const metric of metrics) {
    const unit = figures.find((f) => f.metric === metric)!.unit;
    const row = cols.map((c) => figures.find((f) => f.metric === metric && `${f.isq}${f.threads ? ` / ${f.threads}t` : ''}` === c)?.value ?? '');
    console.log(`| ${metric} (${unit}) | ${row.join(' | ')} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
