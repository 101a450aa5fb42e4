// Resident memory of text-only, image and audio use: the encoders and LoRA adapters read on first use (lazy,
// the default) against read at load (eager, lazyMedia: false), and lazy with them quantized at first use.
// Each (variant, use) runs in a fresh child process: load the folder, one chat request, and the process's
// current RSS and peak RSS (process.resourceUsage().maxRSS) after the load and after the request. Worker host
// (the default), so the figures are the whole process's. The KV pool is fixed (--kv-cache-gb) so that it does
// not follow the free RAM. `all` runs text, then image, then audio in one process. `parts` loads lazily in
// process (no engine) and times each part's first read alone: what the first request of a modality pays.
//
//   npx tsx bench/memory.ts --model /work/ckpt/phi4mm-q4k [--threads 1] [--uses text,image,audio]
//     [--variants lazy,eager] [--kv-cache-gb 0.25]
// Variants: lazy, eager, lazy-q (lazy + isq q4k + quantizeEncoders + quantizeAdapters: on a pre-quantized folder
// the LM stays as stored; the encoders and adapters are quantized when first read).
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { availableParallelism } from 'node:os';
import { Phi4MM, type LoadOptions } from '../src/api/phi4mm.js';
import { loadModelFolder } from '../src/api/load.js';
import type { ChatMessage } from '../src/api/types.js';
import { machineLine } from './machine.js';

const { values: a } = parseArgs({ options: {
  model: { type: 'string' }, threads: { type: 'string', default: '1' }, uses: { type: 'string', default: 'text,image,audio' },
  variants: { type: 'string', default: 'lazy,eager' }, 'kv-cache-gb': { type: 'string', default: '0.25' },
  child: { type: 'string' }, 'max-tokens': { type: 'string', default: '8' },
} });
if (!a.model) throw new Error('usage: npx tsx bench/memory.ts --model <checkpoint folder> [--threads 1] [--uses text,image,audio] [--variants lazy,eager,lazy-q]');

const GIB = 2 ** 30;
const VARIANTS: Record<string, LoadOptions> = {
  lazy: {},
  eager: { lazyMedia: false },
  'lazy-q': { isq: 'q4k', quantizeEncoders: true, quantizeAdapters: true },
};
const USES = ['text', 'image', 'audio', 'all', 'parts'];

/** A 448×448 RGB test pattern (one crop plus the global view: 545 image tokens). */
function image448(): ChatMessage {
  const w = 448, h = 448, data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([(x * 255) / w, (y * 255) / h, ((x ^ y) & 255)], (y * w + x) * 3);
  return { role: 'user', content: [{ type: 'image', image: { width: w, height: h, data, channels: 3 } }, { type: 'text', text: 'Describe the image.' }] };
}

/** 5 s of 16 kHz audio: a rising tone with a little deterministic noise. */
function audio5s(): ChatMessage {
  const rate = 16000, samples = new Float32Array(5 * rate);
  let s = 12345;
  for (let i = 0; i < samples.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    samples[i] = 0.3 * Math.sin(2 * Math.PI * (200 + (600 * i) / samples.length) * (i / rate)) + 0.02 * (s / 2 ** 32 - 0.5);
  }
  return { role: 'user', content: [{ type: 'audio', audio: { samples, sampleRate: rate } }, { type: 'text', text: 'Transcribe the audio.' }] };
}

const REQUESTS: Record<string, () => ChatMessage> = {
  text: () => ({ role: 'user', content: 'Write one sentence about the sea.' }),
  image: image448,
  audio: audio5s,
};

function memory(): { rss_gib: number; peak_gib: number } {
  return { rss_gib: +(process.memoryUsage().rss / GIB).toFixed(3), peak_gib: +((process.resourceUsage().maxRSS * 1024) / GIB).toFixed(3) };
}

/** Lazy load in process, then each part's first read timed alone, with the RSS after it. */
async function parts(variant: string): Promise<void> {
  const t0 = performance.now();
  const l = await loadModelFolder(a.model!, { ...VARIANTS[variant], backend: 'native', threads: Number(a.threads ?? availableParallelism()) });
  const line = (step: string, seconds: number) => console.log(JSON.stringify({ variant, use: 'parts', step, ...memory(), seconds: +seconds.toFixed(2) }));
  line('load', (performance.now() - t0) / 1000);
  const m = l.model;
  for (const [step, read] of [['image encoder', () => m.image_embed], ['vision LoRA', () => m.lm.useAdapter('vision')], ['audio encoder', () => m.audio_embed], ['speech LoRA', () => m.lm.useAdapter('speech')]] as const) {
    const t1 = performance.now();
    read();
    line(step, (performance.now() - t1) / 1000);
  }
}

async function child(variant: string, use: string): Promise<void> {
  if (use === 'parts') return parts(variant);
  const t0 = performance.now();
  const m = await Phi4MM.fromPretrained(a.model!, { ...VARIANTS[variant], backend: 'native', threads: Number(a.threads), engine: { kvCacheGb: Number(a['kv-cache-gb']) } });
  const line = (step: string, extra: Record<string, unknown>) => console.log(JSON.stringify({ variant, use, step, ...memory(), ...extra }));
  line('load', { seconds: +((performance.now() - t0) / 1000).toFixed(1), describe: m.describe().split('\n')[0] });
  for (const u of use === 'all' ? ['text', 'image', 'audio'] : [use]) {
    const t1 = performance.now();
    const r = await m.chat([REQUESTS[u]!()], { maxTokens: Number(a['max-tokens']) });
    line(u, { seconds: +((performance.now() - t1) / 1000).toFixed(1), prompt_tokens: r.usage.prompt_tokens, completion_tokens: r.usage.completion_tokens });
  }
  await m.close();
}

if (a.child) {
  const [variant, use] = a.child.split(':') as [string, string];
  await child(variant, use);
} else {
  const variants = a.variants!.split(','), uses = a.uses!.split(',');
  for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v} (known: ${Object.keys(VARIANTS).join(', ')})`);
  for (const u of uses) if (!USES.includes(u)) throw new Error(`unknown use ${u} (known: ${USES.join(', ')})`);
  console.error(`machine: ${machineLine()}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the start`);
  type Row = { variant: string; use: string; step: string; rss_gib: number; peak_gib: number; seconds: number; describe?: string };
  const rows: Row[] = [];
  for (const u of uses) {
    for (const v of variants) {
      const args = process.argv.slice(1).filter((x, i, all) => !(x === '--child' || all[i - 1] === '--child'));
      const r = spawnSync(process.execPath, [...process.execArgv, ...args, '--child', `${v}:${u}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
      if (r.status !== 0) throw new Error(`child ${v}:${u} failed (status ${r.status})`);
      for (const l of r.stdout.split('\n').filter((x) => x.startsWith('{'))) {
        console.log(l);
        rows.push(JSON.parse(l) as Row);
      }
    }
  }
  console.error(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
  console.log('\n| use | variant | after load: RSS / peak (GiB) | after the request: RSS / peak (GiB) | request (s) |\n|---|---|---|---|---|');
  for (const u of uses) for (const v of variants) {
    const mine = rows.filter((r) => r.variant === v && r.use === u), load = mine.find((r) => r.step === 'load')!;
    for (const r of mine.filter((x) => x.step !== 'load')) console.log(`| ${u === 'all' || u === 'parts' ? `${u}: ${r.step}` : u} | ${v} | ${load.rss_gib.toFixed(2)} / ${load.peak_gib.toFixed(2)} | ${r.rss_gib.toFixed(2)} / ${r.peak_gib.toFixed(2)} | ${r.seconds} |`);
  }
}
