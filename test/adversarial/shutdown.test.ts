// SIGTERM/SIGINT on a real `phi4mm serve` child: a running stream ends with a final 'cancelled' chunk and
// [DONE], a queued request gets 503, a running non-streaming request gets a 503 envelope, and the process exits
// 0 well within the grace period; a second signal exits at once. Also: the port is bound before the model loads.
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { exited, spawnCli, waitFor } from './child.js';

let child: ChildProcessWithoutNullStreams | null = null;
afterEach(() => { if (child && child.exitCode === null) child.kill('SIGKILL'); child = null; });

async function startServer(extra: string[] = []): Promise<string> {
  child = spawnCli(['serve', '-m', tinyCheckpoint(), '-p', '0', '--shutdown-grace', '8', ...extra]);
  const url = (await waitFor(child, /listening on (http:\/\/[\d.:]+)\/v1/))[1]!;
  await waitFor(child, /serving phi4mm on/);
  return url;
}

const chat = (url: string, body: object) => fetch(`${url}/v1/chat/completions`, {
  method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'phi4mm', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 2000, ...body }),
});

describe('shutdown of a real server process', () => {
  it('SIGTERM: the running stream gets a final chunk and [DONE], the queued request 503, exit 0 within the grace', async () => {
    const url = await startServer(['--max-running', '1']); // the engine runs one request; the next one waits
    const stream = await chat(url, { stream: true });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const queued = chat(url, {});
    await new Promise((r) => setTimeout(r, 300)); // let it reach the queue
    const health = await (await fetch(`${url}/health`)).json() as { queued: number };
    expect(health.queued).toBe(1);
    const t0 = Date.now();
    child!.kill('SIGTERM');
    const q = await queued;
    expect(q.status).toBe(503);
    expect(((await q.json()) as { error: { code: string } }).error.code).toBe('shutting_down');
    for (;;) { const { done, value } = await reader.read(); if (done) break; text += new TextDecoder().decode(value); }
    const events = text.split('\n\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    expect(JSON.parse(events.at(-2)!).choices[0].finish_reason).toBe('cancelled');
    const { code } = await exited(child!);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  it('SIGINT: a running non-streaming request gets a 503 envelope; /health said loading before the model was ready', async () => {
    child = spawnCli(['serve', '-m', tinyCheckpoint(), '-p', '0']);
    const url = (await waitFor(child, /listening on (http:\/\/[\d.:]+)\/v1/))[1]!;
    const early = await fetch(`${url}/health`);
    if (early.status === 503) expect(await early.json()).toMatchObject({ status: 'loading' }); // else it loaded already
    await waitFor(child, /serving phi4mm on/);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const running = chat(url, {});
    await new Promise((r) => setTimeout(r, 1000));
    child.kill('SIGINT');
    const r = await running;
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe('server_error');
    expect((await exited(child)).code).toBe(0);
  });

  it.each([['SIGTERM', 143], ['SIGINT', 130]] as const)('%s twice: the second exits at once with code %i, long before the grace period ends', async (sig, code) => {
    const url = await startServer(); // grace 8 s
    // A request whose body never completes: its connection is not idle, so the first signal waits out the grace.
    const { port } = new URL(url);
    const stuck = connect(Number(port), '127.0.0.1');
    await new Promise<void>((ok) => stuck.once('connect', ok));
    stuck.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":');
    stuck.on('error', () => {});
    await new Promise((r) => setTimeout(r, 300));
    child!.kill(sig);
    await waitFor(child!, /shutting down/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(child!.exitCode).toBeNull(); // the first signal alone is still waiting for the stuck request
    const t0 = Date.now();
    child!.kill(sig);
    const ended = await exited(child!);
    const ms = Date.now() - t0;
    stuck.destroy();
    expect(ended).toEqual({ code, signal: null });
    expect(ms).toBeLessThan(2000); // against 8 s of grace, of which 6.7 s were left
  });

  it('a busy port fails before the model is loaded', async () => {
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    const port = String((blocker.address() as { port: number }).port);
    child = spawnCli(['serve', '-m', tinyCheckpoint(), '-p', port]);
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const { code } = await exited(child);
    blocker.close();
    expect(code).not.toBe(0);
    expect(out).toMatch(/EADDRINUSE|address already in use/i);
    expect(out).not.toMatch(/loaded /); // it failed before loading the model
  });
});
