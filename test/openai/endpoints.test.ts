// The other endpoints with the official openai client against a real server: legacy completions, models/{id},
// audio transcriptions/translations (a file stream, every response_format), the Responses API (text, image, audio,
// tools, streamed events) and /metrics. Random weights: structure and constraints only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReadStream, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { goldenPath } from '../helpers/golden.js';
import { startServer, type Running } from './helpers.js';

let s: Running;
const WINDOW_SEC = 1; // a short window so the 3.3 s clip is cut into several pieces
beforeAll(async () => { s = await startServer({ maxQueue: 8, openai: { transcriptionWindowSec: WINDOW_SEC, transcriptionMaxTokens: 4, transcriptionMaxSec: 60 } }); }, 120_000);
afterAll(async () => { await s?.close(); });

const wavPath = goldenPath('inputs', 'audio_16k_3.3s.wav');
const png = readFileSync(goldenPath('inputs', 'image_A_320x240.png'));
const metric = (text: string, name: string) => [...text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[2]), 0);

describe('legacy completions and models', () => {
  it('completes a string and a list of prompts with n, legacy logprobs and streaming; refuses echo and suffix', async () => {
    const r = await s.client.completions.create({ model: 'm', prompt: '<|user|>Hi<|end|><|assistant|>', max_tokens: 5, temperature: 0, logprobs: 2 });
    expect(r.object).toBe('text_completion');
    const c = r.choices[0]!;
    expect(c.logprobs!.tokens!.length).toBe(c.logprobs!.token_logprobs!.length);
    expect(c.logprobs!.top_logprobs!.every((t) => Object.keys(t).length <= 2)).toBe(true);
    expect(c.logprobs!.text_offset![0]).toBe(0);
    const many = await s.client.completions.create({ model: 'm', prompt: ['One', 'Two'], n: 2, max_tokens: 3, temperature: 1, seed: 7 });
    expect(many.choices.map((x) => x.index).sort()).toEqual([0, 1, 2, 3]);
    let streamed = '';
    for await (const ch of await s.client.completions.create({ model: 'm', prompt: '<|user|>Hi<|end|><|assistant|>', max_tokens: 5, temperature: 0, stream: true })) streamed += ch.choices[0]?.text ?? '';
    expect(streamed).toBe(c.text);
    for (const [body, msg] of [[{ echo: true }, /echo/], [{ suffix: 'x' }, /suffix/]] as const) {
      const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'x', ...body }) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(msg);
    }
  });

  it('retrieves the served model by id and 404s another', async () => {
    const m = await s.client.models.retrieve('m');
    expect(m).toMatchObject({ id: 'm', object: 'model' });
    await expect(s.client.models.retrieve('gpt-nope')).rejects.toMatchObject({ status: 404 });
  });
});

describe('audio', () => {
  it('transcribes a file stream in every response_format; long audio is cut into monotonic segments', async () => {
    const json = await s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath) });
    expect(typeof json.text).toBe('string');
    const verbose = await s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), response_format: 'verbose_json', language: 'en', temperature: 0, prompt: 'Names: Phi.' });
    expect(verbose.duration).toBeCloseTo(3.3, 1);
    const segs = verbose.segments!;
    expect(segs.length).toBeGreaterThanOrEqual(4); // 3.3 s in ≤ 1 s pieces
    expect(segs[0]!.start).toBe(0);
    expect(segs[segs.length - 1]!.end).toBeCloseTo(verbose.duration, 3);
    for (let i = 0; i < segs.length; i++) {
      expect(segs[i]!.end - segs[i]!.start).toBeLessThanOrEqual(WINDOW_SEC + 1e-9);
      if (i) expect(segs[i]!.start).toBe(segs[i - 1]!.end);
    }
    const srt = await s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), response_format: 'srt' }) as unknown as string;
    const times = [...srt.matchAll(/(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)/g)].map((m) => [m.slice(1, 5), m.slice(5, 9)].map(([h, mi, se, ms]) => +h! * 3600 + +mi! * 60 + +se! + +ms! / 1000));
    expect(times.length).toBe(segs.length);
    for (let i = 0; i < times.length; i++) {
      expect(times[i]![1]!).toBeGreaterThan(times[i]![0]!);
      if (i) expect(times[i]![0]!).toBeGreaterThanOrEqual(times[i - 1]![1]!);
    }
    const vtt = await s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), response_format: 'vtt' }) as unknown as string;
    expect(vtt.startsWith('WEBVTT')).toBe(true);
    const text = await s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), response_format: 'text' }) as unknown as string;
    expect(typeof text).toBe('string');
    const tr = await s.client.audio.translations.create({ model: 'm', file: createReadStream(wavPath), response_format: 'verbose_json' });
    expect(tr).toMatchObject({ task: 'translate', language: 'english' });
  }, 180_000);

  it('refuses unsupported languages, word timestamps, non-audio files and non-multipart bodies', async () => {
    await expect(s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), language: 'xx' })).rejects.toMatchObject({ status: 400 });
    await expect(s.client.audio.transcriptions.create({ model: 'm', file: createReadStream(wavPath), timestamp_granularities: ['word'], response_format: 'verbose_json' })).rejects.toMatchObject({ status: 400 });
    await expect(s.client.audio.transcriptions.create({ model: 'm', file: new File([png], 'a.png') })).rejects.toMatchObject({ status: 400 });
    // Longer than the server's transcriptionMaxSec (60 s here): refused from the WAV header, before decoding.
    const secs = 61, hdr = Buffer.alloc(44 + secs * 32000);
    hdr.write('RIFF', 0); hdr.writeUInt32LE(hdr.length - 8, 4); hdr.write('WAVEfmt ', 8); hdr.writeUInt32LE(16, 16);
    hdr.writeUInt16LE(1, 20); hdr.writeUInt16LE(1, 22); hdr.writeUInt32LE(16000, 24); hdr.writeUInt32LE(32000, 28);
    hdr.writeUInt16LE(2, 32); hdr.writeUInt16LE(16, 34); hdr.write('data', 36); hdr.writeUInt32LE(secs * 32000, 40);
    await expect(s.client.audio.transcriptions.create({ model: 'm', file: new File([hdr], 'long.wav') })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/61\.0 s of audio, more than the limit of 60 s \(server option transcriptionMaxSec\)/) });
    const res = await fetch(`${s.url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(415); // the route table refuses other media types before the handler runs
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/multipart/);
  });
});

describe('responses API', () => {
  it('answers text, image and audio input, plain and streamed as typed events', async () => {
    const r = await s.client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'Hello', max_output_tokens: 5, temperature: 0 });
    expect(r.object).toBe('response');
    expect(['completed', 'incomplete']).toContain(r.status);
    expect(r.output[0]!.type).toBe('message');
    expect(typeof r.output_text).toBe('string');
    expect(r.usage!.output_tokens).toBeLessThanOrEqual(5);
    const media = await s.client.responses.create({
      model: 'm', max_output_tokens: 3,
      input: [{ role: 'user', content: [
        { type: 'input_image', image_url: `data:image/png;base64,${png.toString('base64')}`, detail: 'auto' },
        { type: 'input_audio', input_audio: { data: readFileSync(wavPath).toString('base64'), format: 'wav' } } as never,
        { type: 'input_text', text: 'Describe.' },
      ] }],
    });
    expect(media.usage!.input_tokens).toBeGreaterThan(477); // the image alone is 477 tokens
    const types: string[] = [];
    let text = '', seq = -1;
    for await (const ev of await s.client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'Hello', max_output_tokens: 5, temperature: 0, stream: true })) {
      types.push(ev.type);
      expect(ev.sequence_number).toBe(seq + 1);
      seq = ev.sequence_number;
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_text.done');
    expect(['response.completed', 'response.incomplete']).toContain(types[types.length - 1]);
    expect(text).toBe(r.output_text);
  }, 120_000);

  it('function tools: a required call comes back as a function_call item with schema-valid arguments', async () => {
    const parameters = { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } }, required: ['city'], additionalProperties: false };
    const r = await s.client.responses.create({ model: 'm', input: 'Weather?', tools: [{ type: 'function', name: 'get_weather', parameters, strict: true }], tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 120, temperature: 0.7 });
    const calls = r.output.filter((o) => o.type === 'function_call');
    expect(calls).toHaveLength(1);
    const c = calls[0]! as { name: string; arguments: string; call_id: string };
    expect(c.name).toBe('get_weather');
    expect(new Ajv().validate(parameters, JSON.parse(c.arguments))).toBe(true);
    // The call and its output go back in as input items.
    const next = await s.client.responses.create({ model: 'm', max_output_tokens: 2, tools: [{ type: 'function', name: 'get_weather', parameters, strict: true }], input: [
      { role: 'user', content: 'Weather?' }, { type: 'function_call', call_id: c.call_id, name: c.name, arguments: c.arguments }, { type: 'function_call_output', call_id: c.call_id, output: '{"temp_c": 3}' },
    ] });
    expect(next.status).not.toBe('failed');
    await expect(s.client.responses.create({ model: 'm', input: 'x', previous_response_id: r.id })).rejects.toMatchObject({ status: 400 });
  }, 120_000);
});

describe('metrics', () => {
  it('exposes Prometheus counters and histograms that move with traffic, and the gauges', async () => {
    const before = await (await fetch(`${s.url}/metrics`)).text();
    await s.client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
    await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{bad' });
    const after = await (await fetch(`${s.url}/metrics`)).text();
    const ok = (t: string) => Number(/^phi4mm_http_requests_total\{route="\/v1\/chat\/completions",method="POST",status="200"\} (\d+)$/m.exec(t)?.[1] ?? 0);
    expect(ok(after)).toBe(ok(before) + 1);
    expect(after).toMatch(/phi4mm_http_requests_total\{route="\/v1\/chat\/completions",method="POST",status="400"\} \d+/);
    expect(metric(after, 'phi4mm_generated_tokens_total')).toBeGreaterThan(metric(before, 'phi4mm_generated_tokens_total'));
    expect(metric(after, 'phi4mm_prompt_tokens_total')).toBeGreaterThan(metric(before, 'phi4mm_prompt_tokens_total'));
    expect(metric(after, 'phi4mm_time_to_first_token_seconds_count')).toBeGreaterThan(metric(before, 'phi4mm_time_to_first_token_seconds_count'));
    expect(metric(after, 'phi4mm_request_duration_seconds_count')).toBeGreaterThan(metric(before, 'phi4mm_request_duration_seconds_count'));
    expect(after).toMatch(/^phi4mm_queue_depth 0$/m);
    expect(after).toMatch(/^phi4mm_running_sequences \d+$/m);
    expect(after).toMatch(/^phi4mm_kv_blocks_in_use /m);
  });
});
