// Nothing heavy on the server's main thread: while a prompt of maxPromptChars characters without spaces is
// tokenized and a maxImagePixels image is decoded and cropped, /health keeps answering. On the old main-thread
// path these stalled the event loop for about 0.5–1 s and 2–3 s (measured with --cpu-prof on this machine).
import { describe, expect, it } from 'vitest';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { spawnCli, waitFor } from './child.js';
import { png } from './craft.js';
import { controlServer, describeLatency, probe } from './probe.js';
import { longestOwnStall, recordStalls, stallMonitorEnv } from './stalls.js';

const post = (url: string, body: object) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('/health while maximal requests are prepared', () => {
  it('a 400 000-character prompt without spaces and a 36 MP image: /health p99 under 100 ms', async () => {
    // A KV pool of about 4100 tokens: both requests are prepared in full (tokenized; decoded, resized,
    // normalized, cropped and hashed) and then refused by the engine as too big, so they cost no model time.
    const child = spawnCli(['serve', '-m', tinyCheckpoint(), '-p', '0', '--kv-cache-gb', '0.0005'], stallMonitorEnv());
    try {
      const url = (await waitFor(child, /serving phi4mm on (http:\/\/[\d.:]+)\/v1/))[1]!;
      const textBody = { model: 'phi4mm', messages: [{ role: 'user', content: 'a'.repeat(400_000) }], max_tokens: 1 };
      const imageBody = {
        model: 'phi4mm', max_tokens: 1,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png(6000, 6000).toString('base64')}` } }, { type: 'text', text: 'Describe.' }] }],
      };
      const stopIdle = await probe(`${url}/health`);
      await new Promise((r) => setTimeout(r, 2000));
      const idle = await stopIdle();
      const control = await controlServer();
      const [stop, stopControl] = await Promise.all([probe(`${url}/health`), probe(control.url)]);
      const stalls = recordStalls(child);
      const t0 = performance.now();
      for (let round = 0; round < 2; round++) {
        const t = await post(url, textBody);
        expect(t.status).toBe(400);
        // 400 000 'a' are 50 000 tokens of 8 letters: proof that the prompt was really tokenized.
        expect(((await t.json()) as { error: { message: string } }).error.message).toMatch(/needs \d+ KV blocks \(500\d\d prompt tokens/);
        const i = await post(url, imageBody);
        expect(i.status).toBe(400);
        // 6×6 crops + the global image: the pixels were really processed (the token count comes from the crop grid).
        expect(((await i.json()) as { error: { message: string } }).error.message).toMatch(/needs \d+ KV blocks \(9590 prompt tokens/);
      }
      const seconds = (performance.now() - t0) / 1000;
      const [busy, ctl] = await Promise.all([stop(), stopControl()]);
      const own = longestOwnStall(stalls());
      control.stop();
      console.log(`/health idle: ${describeLatency(idle)}; during ${seconds.toFixed(1)} s of maximal requests: ${describeLatency(busy)}; do-nothing control server meanwhile: ${describeLatency(ctl)}; longest main-thread stall of the server's own ${own} ms`);
      expect(busy.n).toBeGreaterThan(seconds * 50); // probes were answered all along (one is sent every 10 ms)
      expect(own).toBeLessThan(100); // time spent waiting for a CPU not counted: see stall_monitor.mjs
      expect(busy.p99).toBeLessThan(100);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
