// Two engines in one process (two worker threads calling the native addon at once, as a server with a second
// model or a library user with two Phi4MM instances does): the addon's pool runs one job at a time and its
// scratch buffers are per calling thread, so concurrent generation equals generation one engine at a time.
// Before, the shared single-slot pool job and scratch made concurrent engines diverge or hang.
import { afterAll, describe, expect, it } from 'vitest';
import { Phi4MM } from '../../src/index.js';
import type { ChatMessage } from '../../src/api/types.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';

const dir = tinyCheckpoint();
const opts = { backend: 'native' as const, threads: 2, engine: { kvCacheGb: 0.05 } };
const a = await Phi4MM.fromPretrained(dir, opts);
const b = await Phi4MM.fromPretrained(dir, opts);
afterAll(async () => {
  await a.close();
  await b.close();
});

const prompts: ChatMessage[][] = Array.from({ length: 4 }, (_, i) => [{ role: 'user', content: `prompt ${i}: ${'word '.repeat(20 + 13 * i)}` }]);
const gen = (m: Phi4MM, p: ChatMessage[]) => m.chat(p, { maxTokens: 24, temperature: 0 }).then((r) => r.text);

describe('two engines in one process', () => {
  it('concurrent greedy generation on both equals one engine at a time', async () => {
    const alone: string[] = [];
    for (const p of prompts) alone.push(await gen(a, p));
    for (let round = 0; round < 3; round++) {
      const both = await Promise.all(prompts.flatMap((p) => [gen(a, p), gen(b, p)]));
      expect(both).toEqual(prompts.flatMap((_, i) => [alone[i], alone[i]]));
    }
  }, 120_000);
});
