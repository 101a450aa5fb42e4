// The server on the engine, driven by the official `openai` client: several concurrent clients, streaming and
// not, with an image and an audio clip, get the same answers as one at a time; usage carries
// prompt_tokens_details.cached_tokens; /health answers while the worker is busy with a long prefill;
// a request that can never fit the KV pool gets a 400 in the error envelope.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer } from '../../src/server/server.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { goldenPath } from '../helpers/golden.js';

const png = readFileSync(goldenPath('inputs', 'image_A_320x240.png')).toString('base64');
const wav = readFileSync(goldenPath('inputs', 'audio_16k_2.0s.wav')).toString('base64');
let model: Phi4MM, server: ChatServer, url = '';

beforeAll(async () => {
  model = await Phi4MM.fromPretrained(tinyCheckpoint(), { engine: { kvCacheGb: 0.02, prefillChunk: 64 } });
  server = new ChatServer(model, { port: 0 });
  url = (await server.listen()).url;
});
afterAll(async () => {
  await server.close();
  await model.close();
});

const client = () => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000 });
type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam;
const withImage: Msg[] = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }, { type: 'text', text: 'What is shown?' }] }];
const withAudio: Msg[] = [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: wav, format: 'wav' } }, { type: 'text', text: 'Transcribe this.' }] }];
const plain: Msg[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Name three colours.' }];

async function ask(messages: Msg[], stream: boolean, max = 8): Promise<{ text: string; usage: OpenAI.CompletionUsage | undefined }> {
  const c = client();
  if (!stream) {
    const r = await c.chat.completions.create({ model: 'phi4mm', messages, max_tokens: max });
    return { text: r.choices[0]!.message.content ?? '', usage: r.usage };
  }
  const s = await c.chat.completions.create({ model: 'phi4mm', messages, max_tokens: max, stream: true, stream_options: { include_usage: true } });
  let text = '', usage: OpenAI.CompletionUsage | undefined;
  for await (const ch of s) {
    text += ch.choices[0]?.delta.content ?? '';
    if (ch.usage) usage = ch.usage;
  }
  return { text, usage };
}

describe('server on the engine (openai client)', () => {
  it('concurrent clients, streaming and not, with an image and an audio clip: the one-at-a-time answers', async () => {
    const asks: Array<[Msg[], boolean]> = [[withImage, false], [withAudio, true], [plain, false], [withImage, true], [withAudio, false], [plain, true]];
    const alone: string[] = [];
    for (const [m] of asks.slice(0, 3)) alone.push((await ask(m, false)).text);
    const together = await Promise.all(asks.map(([m, s]) => ask(m, s)));
    expect(together.map((r) => r.text)).toEqual([...alone, ...alone]);
    for (const r of together) expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    // The media prompts were asked before: their full blocks come from the prefix cache (the plain prompt is
    // shorter than one 16-token block, so it has nothing to share).
    for (const i of [0, 1, 3, 4]) expect(together[i]!.usage!.prompt_tokens_details!.cached_tokens).toBe(Math.floor((together[i]!.usage!.prompt_tokens - 1) / 16) * 16); // the last row always runs (it gives the logits)
    expect(together[2]!.usage!.prompt_tokens).toBeLessThan(16);
  });

  it('/health answers while the engine prefills a long prompt', async () => {
    const long: Msg[] = [{ role: 'user', content: Array.from({ length: 1500 }, (_, i) => `word${i}`).join(' ') }];
    const pending = ask(long, false, 2);
    let answered = 0;
    const t0 = Date.now();
    let done = false;
    void pending.then(() => (done = true));
    while (!done && Date.now() - t0 < 60_000) {
      const r = await fetch(`${url}/health`);
      expect(r.status).toBe(200);
      answered++;
      await new Promise((ok) => setTimeout(ok, 20));
    }
    const r = await pending;
    expect(r.usage!.prompt_tokens).toBeGreaterThan(1500);
    expect(answered).toBeGreaterThan(1); // answered during the prefill, not only after it
  });

  it('a request that can never fit the KV pool gets a 400 envelope', async () => {
    const small = await Phi4MM.fromPretrained(tinyCheckpoint(), { engine: { kvCacheGb: (20 * 16 * 128) / 2 ** 30 } });
    const s = new ChatServer(small, { port: 0 });
    const u = (await s.listen()).url;
    try {
      const c = new OpenAI({ baseURL: `${u}/v1`, apiKey: 'none', maxRetries: 0 });
      const err = await c.chat.completions.create({ model: 'phi4mm', messages: plain, max_tokens: 1000 }).catch((e) => e);
      expect(err).toMatchObject({ status: 400 });
      expect(String((err as Error).message)).toMatch(/KV blocks/);
    } finally {
      await s.close();
      await small.close();
    }
  });
});
