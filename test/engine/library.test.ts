// Phi4MM through the engine worker: concurrent chat()/streamChat()/streamEvents() with text, image and audio
// run together and give the one-at-a-time results; a second chat turn reuses the first turn's KV
// (usage.prompt_tokens_details.cached_tokens); abort frees the blocks; 429 beyond the queue; 400 when a
// request can never fit the KV pool; the research API loads in-process on first use.
import { afterAll, describe, expect, it } from 'vitest';
import { Phi4MM, Messages } from '../../src/index.js';
import { EngineError } from '../../src/engine/types.js';
import type { ChatMessage } from '../../src/api/types.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { goldenPath } from '../helpers/golden.js';

const dir = tinyCheckpoint();
const model = await Phi4MM.fromPretrained(dir, { engine: { kvCacheGb: 0.05 } });
const small = await Phi4MM.fromPretrained(dir, { engine: { maxRunning: 1, maxWaiting: 0, kvCacheGb: (40 * 16 * 128) / 2 ** 30 } });
afterAll(async () => {
  await model.close();
  await small.close();
});

const text = (s: string): ChatMessage[] => [{ role: 'user', content: s }];
const image: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: goldenPath('inputs', 'image_A_320x240.png') }, { type: 'text', text: 'What is in the picture?' }] }];
const audio: ChatMessage[] = [{ role: 'user', content: [{ type: 'audio', audio: goldenPath('inputs', 'audio_16k_2.0s.wav') }, { type: 'text', text: 'Transcribe.' }] }];

describe('Phi4MM on the engine', () => {
  it('concurrent chat / streamChat / streamEvents calls with text, image and audio equal the same calls one at a time', async () => {
    const asks: Array<[ChatMessage[], number]> = [[text('Hello there'), 10], [image, 8], [audio, 8], [text('Tell me a story about a cat'), 12]];
    const alone: string[] = [];
    for (const [m, n] of asks) alone.push((await model.chat(m, { maxTokens: n })).text);
    const streamed = async (m: ChatMessage[], n: number) => { let s = ''; for await (const d of model.streamChat(m, { maxTokens: n })) s += d; return s; };
    const evented = async (m: ChatMessage[], n: number) => { let s = ''; for await (const e of model.streamEvents(m, { maxTokens: n })) if (e.type === 'delta') s += e.text; return s; };
    const together = await Promise.all(asks.map(([m, n], i) => (i % 3 === 0 ? model.chat(m, { maxTokens: n }).then((r) => r.text) : i % 3 === 1 ? streamed(m, n) : evented(m, n))));
    expect(together).toEqual(alone);
    const st = await model.stats();
    expect(st.steps).toBeGreaterThan(0);
    expect(st.blocksInUse).toBe(0);
  });

  it('the second turn of a chat prefills only the new tokens: cached_tokens covers the first turn', async () => {
    const msgs = new Messages().addMultimodalMessage('user', 'Describe this.', { images: [goldenPath('inputs', 'image_A_320x240.png')] });
    const first = await model.chat(msgs, { maxTokens: 6 });
    expect(first.usage.prompt_tokens_details!.cached_tokens).toBeLessThan(first.usage.prompt_tokens);
    msgs.addMessage('assistant', first.text).addMessage('user', 'And the colours?');
    const second = await model.chat(msgs, { maxTokens: 4 });
    const cached = second.usage.prompt_tokens_details!.cached_tokens;
    expect(cached).toBeGreaterThanOrEqual(Math.floor(first.usage.prompt_tokens / 16) * 16);
    expect(cached).toBeLessThan(second.usage.prompt_tokens);
  });

  it('an aborted stream ends cancelled and its blocks go back to the pool', async () => {
    const ctrl = new AbortController();
    let n = 0, reason = '';
    for await (const ev of model.streamEvents(text('Write a long poem'), { maxTokens: 200, signal: ctrl.signal })) {
      if (ev.type === 'delta' && ++n === 2) ctrl.abort();
      if (ev.type === 'done') reason = ev.finishReason;
    }
    expect(reason).toBe('cancelled');
    const st = await model.stats();
    expect(st.running).toBe(0);
    expect(st.blocksInUse).toBe(0);
  });

  it('429 when the running slot and the queue are full; 400 when a request can never fit the KV pool', async () => {
    const ctrl = new AbortController();
    const busy = small.chat(text('Keep talking'), { maxTokens: 400, signal: ctrl.signal }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 200));
    const refused = await small.chat(text('Me too'), { maxTokens: 4 }).catch((e) => e);
    expect(refused).toBeInstanceOf(EngineError);
    expect((refused as EngineError).status).toBe(429);
    ctrl.abort();
    await busy;
    const never = await small.chat(text('Hello'), { maxTokens: 1000 }).catch((e) => e);
    expect((never as EngineError).status).toBe(400);
    expect((never as EngineError).message).toMatch(/needs \d+ KV blocks .* pool holds 40 blocks/);
    expect((await small.chat(text('Hello'), { maxTokens: 4 })).usage.completion_tokens).toBeGreaterThan(0);
  });

  it('the research API loads the model in-process on first use', () => {
    const ids = Int32Array.from([200021, 12194, 200020, 200019]);
    expect(model.model.forward(model.backend, ids).logits.length).toBe(model.config.text.vocab_size);
  });
});
