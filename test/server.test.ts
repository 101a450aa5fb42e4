// The OpenAI-compatible server on 127.0.0.1 with a tiny checkpoint, driven by the official `openai` client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { Phi4MM } from '../src/api/phi4mm.js';
import { ChatServer } from '../src/server/server.js';
import { tinyCheckpoint } from './helpers/tiny_checkpoint.js';
import { goldenPath } from './helpers/golden.js';

const png = readFileSync(goldenPath('inputs', 'image_A_320x240.png'));
const wav = readFileSync(goldenPath('inputs', 'audio_16k_2.0s.wav'));
let model: Phi4MM;
let open: ChatServer, locked: ChatServer;
let openUrl = '', lockedUrl = '', mediaUrl = '';
let media: Server;

beforeAll(async () => {
  // One running request and no queue: the 429 test below needs a full engine.
  model = await Phi4MM.fromPretrained(tinyCheckpoint(), { engine: { maxRunning: 1, maxWaiting: 0 } });
  media = createServer((req, res) => {
    if (req.url === '/a.png') return void res.end(png);
    if (req.url === '/a.wav') return void res.end(wav);
    if (req.url === '/slow.png') return void setTimeout(() => res.end(png), 3000);
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((ok) => media.listen(0, '127.0.0.1', ok));
  mediaUrl = `http://127.0.0.1:${(media.address() as { port: number }).port}`;
  open = new ChatServer(model, { port: 0, allowPrivateMedia: true, maxQueue: 0, mediaTimeoutMs: 1000 });
  openUrl = (await open.listen()).url;
  locked = new ChatServer(model, { port: 0, apiKey: 'sk-test', maxBodyBytes: 200_000 });
  lockedUrl = (await locked.listen()).url;
});
afterAll(async () => {
  await open.close();
  await locked.close();
  await new Promise<void>((ok) => media.close(() => ok()));
});

const client = (url: string, apiKey = 'none') => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('OpenAI-compatible server', () => {
  it('answers a plain chat with usage, lists the model and reports health', async () => {
    const c = client(openUrl);
    const r = await c.chat.completions.create({ model: 'phi4mm', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }], max_tokens: 6 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(r.choices[0]!.finish_reason);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(6);
    expect((r.usage as unknown as Record<string, number>)['avg_compl_tok_per_sec']).toBeGreaterThan(0);
    const models = await c.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['phi4mm']);
    expect(await (await fetch(`${openUrl}/health`)).json()).toMatchObject({ status: 'ok' });
  });

  it('streams SSE chunks ending in [DONE]; the streamed text equals the non-streamed text for the same seed', async () => {
    const c = client(openUrl);
    const req = { model: 'phi4mm', messages: [{ role: 'user' as const, content: 'Write something' }], max_tokens: 10, temperature: 0.9, seed: 11 };
    const plain = await c.chat.completions.create(req);
    const stream = await c.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '', usage = 0, finish = '';
    for await (const ch of stream) {
      text += ch.choices[0]?.delta?.content ?? '';
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      if (ch.usage) usage = ch.usage.completion_tokens;
    }
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(usage).toBe(plain.usage!.completion_tokens);
    const raw = await (await post(openUrl, { ...req, stream: true })).text();
    expect(raw.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('takes an image as base64 and as a URL, and audio as input_audio and audio_url', async () => {
    const c = client(openUrl);
    const ask = (parts: OpenAI.ChatCompletionContentPart[]) => c.chat.completions.create({ model: 'phi4mm', messages: [{ role: 'user', content: [...parts, { type: 'text', text: 'Describe.' }] }], max_tokens: 3 });
    const viaB64 = await ask([{ type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }]);
    const viaUrl = await ask([{ type: 'image_url', image_url: { url: `${mediaUrl}/a.png` } }]);
    expect(viaUrl.choices[0]!.message.content).toBe(viaB64.choices[0]!.message.content);
    expect(viaB64.usage!.prompt_tokens).toBeGreaterThan(477); // image A expands to 477 placeholder tokens
    const a1 = await ask([{ type: 'input_audio', input_audio: { data: wav.toString('base64'), format: 'wav' } }]);
    const a2 = await ask([{ type: 'audio_url', audio_url: { url: `${mediaUrl}/a.wav` } } as unknown as OpenAI.ChatCompletionContentPart]);
    expect(a2.choices[0]!.message.content).toBe(a1.choices[0]!.message.content);
    expect(a1.usage!.prompt_tokens).toBeGreaterThan(25); // 2.0 s = 25 audio tokens
  });

  it('rejects bad requests with OpenAI error envelopes and the right status codes', async () => {
    const cases: Array<[string, Response, number, RegExp]> = [
      ['no messages', await post(openUrl, { model: 'phi4mm', messages: [] }), 400, /messages/],
      ['n=9', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: 'x' }], n: 9 }), 400, /at most 8/],
      ['temperature', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: 'x' }], temperature: 7 }), 400, /temperature/],
      ['bad json', await post(openUrl, '{nope'), 400, /not valid JSON/],
      ['bad image', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] }), 400, /image/i],
      ['missing media url', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `${mediaUrl}/nope.png` } }] }] }), 400, /404|fetch/i],
      ['media timeout', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `${mediaUrl}/slow.png` } }] }] }), 400, /time/i],
      ['local path refused', await post(openUrl, { model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: goldenPath('inputs', 'image_A_320x240.png') } }] }] }), 400, /local|path|file/i],
      ['no api key', await post(lockedUrl, { model: 'phi4mm', messages: [{ role: 'user', content: 'x' }] }), 401, /API key/],
      ['private url blocked', await post(lockedUrl, { model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `${mediaUrl}/a.png` } }] }] }, { authorization: 'Bearer sk-test' }), 400, /private|loopback|address/i],
      ['body too large', await post(lockedUrl, { model: 'phi4mm', messages: [{ role: 'user', content: 'x'.repeat(300_000) }] }, { authorization: 'Bearer sk-test' }), 413, /limit/],
      ['unknown route', await fetch(`${openUrl}/v1/embeddings`, { method: 'POST' }), 404, /no route/],
    ];
    for (const [label, res, status, msg] of cases) {
      const body = (await res.json()) as { error: { message: string; type: string } };
      expect(res.status, label).toBe(status);
      expect(body.error.message, label).toMatch(msg);
      expect(typeof body.error.type, label).toBe('string');
    }
    // The official client surfaces the envelope as an APIError with the status.
    await expect(client(lockedUrl, 'wrong').chat.completions.create({ model: 'phi4mm', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 401 });
  });

  it('answers 429 when the queue is full, and a client that disconnects mid-stream frees the model', async () => {
    const body = { model: 'phi4mm', messages: [{ role: 'user', content: 'Go on' }], max_tokens: 400, stream: true };
    const ctrl = new AbortController();
    const first = await post(openUrl, body, {});
    const reader = first.body!.getReader();
    await reader.read(); // the stream has started: the model is busy
    const second = await post(openUrl, { ...body, stream: false, max_tokens: 2 });
    expect(second.status).toBe(429); // maxQueue 0: nobody may wait
    await reader.cancel(); // disconnect mid-stream
    ctrl.abort();
    const t0 = Date.now();
    let ok = false;
    while (!ok && Date.now() - t0 < 10_000) {
      const r = await post(openUrl, { ...body, stream: false, max_tokens: 2 });
      ok = r.status === 200;
      if (!ok) await new Promise((r2) => setTimeout(r2, 50));
    }
    expect(ok).toBe(true);
  });
});
