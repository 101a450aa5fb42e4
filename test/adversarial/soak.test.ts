// A bounded 32-client soak with disconnects: every response is well-formed (200 JSON, SSE ending in [DONE], or a
// 429 envelope with Retry-After), clients that leave mid-request free their place, and nothing is left stuck.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer } from '../../src/server/server.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { rng } from './craft.js';

let server: ChatServer;
let url = '';
const errors: string[] = [];

beforeAll(async () => {
  server = new ChatServer(await Phi4MM.fromPretrained(tinyCheckpoint()), { port: 0, maxQueue: 4, log: (l) => { if (/^error/.test(l)) errors.push(l); } });
  url = (await server.listen()).url;
});
afterAll(async () => { await server.close(1000); });

type Outcome = 'ok' | 'stream' | 'busy' | 'left';

async function client(i: number, r: () => number): Promise<Outcome> {
  const stream = i % 2 === 0, leave = r() < 0.3;
  const ctrl = new AbortController();
  if (leave) setTimeout(() => ctrl.abort(), 50 + Math.floor(r() * 1500));
  try {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', signal: ctrl.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'phi4mm', messages: [{ role: 'user', content: `client ${i}: say something` }], max_tokens: 3, stream, seed: i }),
    });
    const body = await res.text();
    if (res.status === 429) {
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((JSON.parse(body) as { error: { code: string } }).error.code).toBe('queue_full');
      return 'busy';
    }
    expect(res.status, body.slice(0, 200)).toBe(200);
    if (!stream) {
      const j = JSON.parse(body) as { choices: Array<{ message: { content: string }; finish_reason: string }> };
      expect(['stop', 'length']).toContain(j.choices[0]!.finish_reason);
      return 'ok';
    }
    const events = body.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    for (const e of events.slice(0, -1)) expect(() => JSON.parse(e.replace(/^data: /, ''))).not.toThrow();
    return 'stream';
  } catch (e) {
    if (ctrl.signal.aborted) return 'left';
    throw e;
  }
}

describe('soak', () => {
  it('32 concurrent clients, a third of them leaving early: all answers well-formed, nothing stuck', async () => {
    const r = rng(32);
    const t0 = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 32 }, (_, i) => client(i, r)));
    const tally = outcomes.reduce<Record<string, number>>((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {});
    console.log(`soak: ${JSON.stringify(tally)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect((tally['ok'] ?? 0) + (tally['stream'] ?? 0)).toBeGreaterThan(0);
    // Nothing stuck: the queue drains and a fresh request is served.
    const deadline = Date.now() + 30_000;
    let h = { queued: -1, running: -1 };
    while (Date.now() < deadline) {
      h = await (await fetch(`${url}/health`)).json() as typeof h;
      if (h.queued === 0 && h.running === 0) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    expect(h).toMatchObject({ queued: 0, running: 0 });
    expect(await client(99, () => 0.99)).toBe('ok');
    expect(errors).toEqual([]);
  });
});
