// Serving benchmark of the engine (issue 10) on a checkpoint folder, through the library and the server as a
// client sees them: aggregate decode throughput at 1/2/4/8 concurrent streams, time to first token of a
// ~2,000-token chat with one image (first turn) against its second turn (prefix cache + media cache), KV bytes
// per token, and /health latency (p50/p99) while the worker prefills a ~2,000-token prompt.
// Prints one JSON line per figure and a markdown table at the end.
//
//   npx tsx bench/serving.ts --model /work/ckpt/phi4mm-real [--isq q4k] [--threads 2] [--streams 1,2,4,8]
//     [--decode-tokens 32] [--prompt-tokens 2000] [--kv-cache-gb 2] [--skip decode,turns,health]
//     [--temperature 1] [--top-p 1] [--top-k 0]   (the decode streams' sampling)
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { Phi4MM, type IsqKind } from '../src/api/phi4mm.js';
import { ChatServer } from '../src/server/server.js';
import type { ChatMessage } from '../src/api/types.js';
import { machineLine } from './machine.js';
import { timeStream } from './stream_timing.js';

const { values: a } = parseArgs({ options: {
  model: { type: 'string' }, isq: { type: 'string', default: 'q4k' }, threads: { type: 'string', default: '2' },
  streams: { type: 'string', default: '1,2,4,8' }, 'decode-tokens': { type: 'string', default: '32' },
  'prompt-tokens': { type: 'string', default: '2000' }, 'kv-cache-gb': { type: 'string', default: '2' }, skip: { type: 'string', default: '' },
  temperature: { type: 'string', default: '1' }, 'top-p': { type: 'string', default: '1' }, 'top-k': { type: 'string', default: '0' },
} });
if (!a.model) throw new Error('usage: npx tsx bench/serving.ts --model <checkpoint folder> [--isq q4k] [--threads 2]');
const skip = new Set(a.skip!.split(',').filter(Boolean));
const rows: Array<[string, string]> = [];
const out = (metric: string, value: number, unit: string, extra: Record<string, unknown> = {}) => {
  console.log(JSON.stringify({ metric, value: +value.toFixed(4), unit, load1: +loadavg()[0]!.toFixed(1), ...extra }));
  rows.push([metric, `${+value.toFixed(3)} ${unit}`]);
};
const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

console.error(`machine: ${machineLine()}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine disturbs every figure)`);
const t0 = performance.now();
const m = await Phi4MM.fromPretrained(a.model, {
  isq: a.isq as IsqKind, backend: 'native', threads: Number(a.threads),
  engine: { kvCacheGb: Number(a['kv-cache-gb']), maxRunning: 8, prefillChunk: 256 },
});
out('load_s', (performance.now() - t0) / 1000, 's');
console.error(m.describe());
const st = await m.stats();
out('kv_bytes_per_token', st.kvBytesPerToken, 'B', { kib: st.kvBytesPerToken / 1024 });

/** Filler text of about `n` tokens (distinct words so nothing collapses in the tokenizer). */
const filler = (n: number, seed: number) => Array.from({ length: Math.ceil(n / 2) }, (_, i) => `w${(i * 7919 + seed * 104729) % 99991}`).join(' ');

if (!skip.has('decode')) {
  const N = Number(a['decode-tokens']);
  let single = 0;
  for (const streams of a.streams!.split(',').map(Number)) {
    // Each stream: a short distinct prompt, N new tokens. Tokens are counted from usage (a text delta can carry
    // several tokens or none: random weights emit partial UTF-8), timed from each stream's first token to its end.
    const sampling = { temperature: Number(a.temperature), topP: Number(a['top-p']), topK: Number(a['top-k']) };
    const runs = await Promise.all(Array.from({ length: streams }, async (_, i) => {
      return timeStream(m.streamEvents([{ role: 'user', content: filler(24, streams * 100 + i) }], { maxTokens: N, ...sampling }));
    }));
    // Tokens after each stream's first, over the span from the earliest first token to the last end. That span
    // also holds the prefill of the prompts admitted after the first, so it understates pure decode.
    const from = Math.min(...runs.map((r) => r.first)), to = Math.max(...runs.map((r) => r.end));
    const agg = runs.reduce((s, r) => s + Math.max(0, r.tokens - 1), 0) / ((to - from) / 1000);
    // Steady state: the span in which every stream was decoding (the last first token to the first end), with each
    // stream's tokens in it estimated from its own average rate. No prefill falls inside it.
    const lo = Math.max(...runs.map((r) => r.first)), hi = Math.min(...runs.map((r) => r.end));
    const steady = hi > lo ? runs.reduce((s, r) => s + (Math.max(0, r.tokens - 1) * (hi - lo)) / (r.end - r.first), 0) / ((hi - lo) / 1000) : NaN;
    if (streams === 1) single = agg;
    out(`decode_aggregate_tok_s_${streams}_streams`, agg, 'tok/s', single ? { vs_single: +(agg / single).toFixed(2) } : {});
    if (streams > 1 && Number.isFinite(steady)) out(`decode_steady_tok_s_${streams}_streams`, steady, 'tok/s', { steady_s: +((hi - lo) / 1000).toFixed(2) });
  }
}

if (!skip.has('turns')) {
  const P = Number(a['prompt-tokens']);
  const px = new Uint8Array(448 * 448 * 3).map((_, i) => (i * 37) & 255);
  const msgs: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: { width: 448, height: 448, data: px } }, { type: 'text', text: `${filler(P - 600, 1)} Describe the image.` }] }];
  const turn = async () => {
    let ttft = 0, usage = null as null | Awaited<ReturnType<typeof m.chat>>['usage'], text = '';
    const s = performance.now();
    for await (const ev of m.streamEvents(msgs, { maxTokens: 8 })) {
      if (!ttft) ttft = (performance.now() - s) / 1000;
      if (ev.type === 'delta') text += ev.text;
      else usage = ev.usage;
    }
    return { ttft, usage: usage!, text };
  };
  const first = await turn();
  out('turn1_ttft_s', first.ttft, 's', { prompt_tokens: first.usage.prompt_tokens, cached_tokens: first.usage.prompt_tokens_details?.cached_tokens });
  msgs.push({ role: 'assistant', content: first.text }, { role: 'user', content: 'And what else?' });
  const second = await turn();
  out('turn2_ttft_s', second.ttft, 's', { prompt_tokens: second.usage.prompt_tokens, cached_tokens: second.usage.prompt_tokens_details?.cached_tokens });
  out('turn2_over_turn1_ttft', second.ttft / first.ttft, 'x');
}

if (!skip.has('health')) {
  const server = new ChatServer(m, { port: 0 });
  const { url } = await server.listen();
  const P = Number(a['prompt-tokens']);
  // The server refuses other model names (404 model_not_found): ask it for its own.
  const model = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data[0]!.id;
  let done = false;
  const req = fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: filler(P, 2) }], max_tokens: 1 }) })
    .then(async (r) => { if (!r.ok) throw new Error(`the prefill request failed: ${r.status} ${await r.text()}`); return r.json(); })
    .finally(() => (done = true));
  const lat: number[] = [];
  await new Promise((r) => setTimeout(r, 500)); // let the prefill start
  while (!done) {
    const s = performance.now();
    await (await fetch(`${url}/health`)).json();
    lat.push(performance.now() - s);
    await new Promise((r) => setTimeout(r, 10));
  }
  const body = (await req) as { usage?: { prompt_tokens: number } };
  out('health_p50_ms_during_prefill', pct(lat, 50), 'ms', { samples: lat.length, prompt_tokens: body.usage?.prompt_tokens });
  out('health_p99_ms_during_prefill', pct(lat, 99), 'ms', { samples: lat.length, max_ms: +Math.max(...lat).toFixed(1) });
  await server.close();
}

await m.close();
console.log('\n| figure | value |\n|---|---|');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
