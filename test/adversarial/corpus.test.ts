// The adversarial corpus against the real server on 127.0.0.1 with the tiny checkpoint: every hostile or
// careless input from the hardening issue is a 4xx with a specific message (streaming too, before any 200),
// bombs are refused from their headers without RSS growth or /health stalls, and seeded fuzz mutations of
// valid PNG/JPEG/WebP/GIF/WAV/FLAC/MP3/Ogg files never produce a 5xx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer } from '../../src/server/server.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { ROOT } from '../helpers/golden.js';
import { spawnCli, waitFor } from './child.js';
import { controlServer, describeLatency, probe } from './probe.js';
import { longestOwnStall, recordStalls, stallMonitorEnv } from './stalls.js';
import { gif, gifBomb, jpegBomb, mutate, png, pngBomb, rf64TruncatedDs64, rng, wav, webpBomb } from './craft.js';

const MIB = 1024 * 1024;
let model: Phi4MM;
let open: ChatServer, locked: ChatServer;
let openUrl = '', lockedUrl = '';
const logs: string[] = [];

beforeAll(async () => {
  // One running request and one waiting: the engine's limits are the server's queue (the 429 test below).
  model = await Phi4MM.fromPretrained(tinyCheckpoint(), { engine: { maxRunning: 1, maxWaiting: 1 } });
  open = new ChatServer(model, { port: 0, maxQueue: 1, log: (l) => logs.push(l) });
  openUrl = (await open.listen()).url;
  locked = new ChatServer(model, { port: 0, apiKey: 'sk-test', maxBodyBytes: 200_000, corsOrigins: ['https://app.example'], allowedHosts: ['127.0.0.1', 'localhost'] });
  lockedUrl = (await locked.listen()).url;
});
afterAll(async () => { await open.close(1000); await locked.close(1000); });

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });
const image = (b: Buffer, mime = 'image/png') => ({ type: 'image_url', image_url: { url: `data:${mime};base64,${b.toString('base64')}` } });
const audio = (b: Buffer) => ({ type: 'input_audio', input_audio: { data: b.toString('base64'), format: 'wav' } });
const ask = (parts: object[], extra: object = {}) => ({ model: 'phi4mm', messages: [{ role: 'user', content: [...parts, { type: 'text', text: 'Describe.' }] }], max_tokens: 1, ...extra });
const text = (content: string, extra: object = {}) => ({ model: 'phi4mm', messages: [{ role: 'user', content }], max_tokens: 1, ...extra });

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
/** The bombing phase lasts at least this long (whole passes over the list, at most MAX_PASSES), so /health gets probed > 100 times. */
const MIN_BOMBING_MS = 4000;
const MAX_PASSES = 6;
async function expectError(label: string, res: Response, status: number | [number, number], msg: RegExp): Promise<void> {
  const body = await res.text();
  if (Array.isArray(status)) expect(res.status >= status[0] && res.status <= status[1], `${label}: ${res.status} ${body.slice(0, 300)}`).toBe(true);
  else expect(res.status, `${label}: ${body.slice(0, 300)}`).toBe(status);
  expect(res.headers.get('content-type'), label).toMatch(/application\/json/);
  expect((JSON.parse(body) as { error: { message: string } }).error.message, label).toMatch(msg);
}

describe('adversarial corpus', () => {
  it('every invalid input from the issue is a 4xx naming the problem, streaming or not', async () => {
    const cases: Array<[string, object, number, RegExp]> = [
      ['stop ""', text('x', { stop: '' }), 400, /stop.*empty/],
      ['stop [""]', text('x', { stop: ['a', ''] }), 400, /stop\.1.*empty/],
      ['max_tokens unbounded', text('x', { max_tokens: 1e9 }), 400, /max_tokens.*limit of 131072/],
      ['1×20000 PNG', ask([image(png(1, 20000))]), 400, /aspect ratio/],
      ['20000×1 PNG', ask([image(png(20000, 1))]), 400, /aspect ratio/],
      ...[1, 999, 999999, 4294967295].map((rate): [string, object, number, RegExp] => [`WAV at ${rate} Hz`, ask([audio(wav({ rate, frames: 4000 }))]), 400, /Hz; supported sample rates/]),
      ['WAV of 10 ms', ask([audio(wav({ rate: 16000, frames: 160 }))]), 400, /ms of audio; at least 25 ms/],
      ['WAV with NaN', ask([audio(wav({ rate: 16000, frames: 800, float: true, fill: (i) => (i === 7 ? NaN : 0.1) }))]), 400, /NaN/],
      ['WAV with Inf', ask([audio(wav({ rate: 16000, frames: 800, float: true, fill: (i) => (i === 9 ? Infinity : 0.1) }))]), 400, /Infinity/],
      ['RF64 truncated ds64', ask([audio(rf64TruncatedDs64())]), 400, /ds64/],
      ['input_audio format aac', ask([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'aac' } }]), 400, /input_audio\.format: must be one of "wav", "mp3", "flac", "ogg", "opus" \(got "aac"\)/],
      ['input_audio format pcm16', ask([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'pcm16' } }]), 400, /format: must be one of/],
      ['input_text part', ask([{ type: 'input_text', text: 'x' }]), 400, /content\.0\.type: must be one of "text", "image_url", "audio_url", "input_audio" \(got "input_text"\)/],
      ['role bot', { model: 'phi4mm', messages: [{ role: 'bot', content: 'x' }] }, 400, /messages\.0\.role: must be one of/],
      ['content number', { model: 'phi4mm', messages: [{ role: 'user', content: 5 }] }, 400, /messages\.0\.content: expected string or array/],
      ['bad media (stream)', ask([image(Buffer.from('not an image at all'))]), 400, /unsupported image format/],
      ['tag mismatch', { model: 'phi4mm', messages: [{ role: 'user', content: [image(png(64, 64)), { type: 'text', text: '<|image_1|><|image_2|> two?' }] }], max_tokens: 1 }, 400, /2 <\|image_N\|> tags but 1 images/],
      ['over-long prompt', text(' x'.repeat(140_000)), 400, /prompt is \d+ tokens; the model's context is 131072/],
      ['input_audio over the media limit', ask([{ type: 'input_audio', input_audio: { data: 'A'.repeat(44 * MIB), format: 'wav' } }]), 413, /limit of 33554432/],
      ['17 media items', ask(Array.from({ length: 17 }, () => image(png(8, 8)))), 400, /17 images\/audio clips, more than the limit of 16/],
      ['unknown model', text('x', { model: 'gpt-4o' }), 404, /model `gpt-4o` does not exist/],
    ];
    for (const [label, body, status, msg] of cases) {
      await expectError(label, await post(openUrl, body), status, msg);
      await expectError(`${label} (stream)`, await post(openUrl, { ...body, stream: true }), status, msg);
    }
    const nf = await post(openUrl, text('x', { model: 'nope' }));
    expect(((await nf.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  it('refuses bombs from their headers: server RSS stays near baseline, its event loop never stalls for 100 ms', async () => {
    // The server runs in its own process and /health is probed from a worker thread: building and sending
    // 60 MB of hostile JSON here must not count as server stalls.
    const child = spawnCli(['serve', '-m', tinyCheckpoint(), '-p', '0'], stallMonitorEnv());
    try {
      const url = (await waitFor(child, /serving phi4mm on (http:\/\/[\d.:]+)\/v1/))[1]!;
      await post(url, ask([image(png(64, 64))])); // warm-up: decoders, worker
      await new Promise((r) => setTimeout(r, 2500)); // the decode worker stops when idle
      const bombs: Array<[string, Buffer, number, RegExp]> = ([
        ['GIF 10000×10000 (35 bytes)', ask([image(gifBomb(10000, 10000), 'image/gif')]), 400, /100000000 pixels exceeds the per-image limit/],
        ['two GIF bombs', ask([image(gifBomb(10000, 10000)), image(gifBomb(10000, 10000))]), 400, /per-image limit/],
        ['PNG 10000×10000 of zeros', ask([image(pngBomb(10000, 10000))]), 400, /per-image limit/],
        ['WebP 10001×10001 (30 bytes)', ask([image(webpBomb(10001, 10001), 'image/webp')]), 400, /10001×10001 = 100020001 pixels/],
        ['JPEG 9000×9000', ask([image(jpegBomb(9000, 9000), 'image/jpeg')]), 400, /9000×9000/],
        ['three 30 MP PNGs', ask([image(pngBomb(6000, 5000)), image(pngBomb(6000, 5000)), image(pngBomb(6000, 5000))]), 400, /add up to 90000000 pixels, more than the limit of 72000000/],
        ['16 MiB of text without spaces', text('a'.repeat(16 * MIB)), 400, /16777216 characters of text, more than the limit of 400000/],
        ['11 MB 8-bit WAV at 1 kHz', ask([audio(wav({ rate: 1000, bits: 8, frames: 11_000_000 }))]), 400, /11000\.0 s of audio, more than the limit of 600 s/],
      ] as Array<[string, object, number, RegExp]>).map(([l, b, st, m]) => [l, Buffer.from(JSON.stringify(b)), st, m]); // encoded now, not while probing
      const rss0 = rssOf(child.pid!);
      // Idle figures first, for the log: on a shared machine /health is slower on its own.
      const stopIdle = await probe(`${url}/health`);
      await new Promise((r) => setTimeout(r, 2000));
      const idle = await stopIdle();
      // Start the decode worker before probing: from TypeScript sources its start compiles modules through tsx,
      // up to a second of CPU that a built server does not spend and that starves the 2-core test machine.
      await expectError('warm-up', await post(url, text('a'.repeat(2 * MIB))), 400, /more than the limit of 400000/);
      const control = await controlServer();
      const [stop, stopControl] = await Promise.all([probe(`${url}/health`), probe(control.url)]);
      const stalls = recordStalls(child);
      // The bombs go round until the pinger has had time for a useful sample (a loaded machine gives it fewer turns
      // per pass: 44–84 probes in one pass were seen at load average 5–9).
      const t0 = Date.now();
      for (let pass = 0; pass === 0 || (Date.now() - t0 < MIN_BOMBING_MS && pass < MAX_PASSES); pass++) {
        for (const [label, body, status, msg] of bombs) await expectError(label, await post(url, body), status, msg);
      }
      const [busy, ctl] = await Promise.all([stop(), stopControl()]);
      const own = longestOwnStall(stalls());
      control.stop();
      await new Promise((r) => setTimeout(r, 3000)); // the decode worker (which parsed the big bodies) stops when idle
      const rss1 = rssOf(child.pid!);
      console.log(`/health idle: ${describeLatency(idle)}; during bombs: ${describeLatency(busy)}; do-nothing control server meanwhile: ${describeLatency(ctl)}; longest main-thread stall of the server's own ${own} ms; server RSS ${(rss0 / MIB).toFixed(0)} → ${(rss1 / MIB).toFixed(0)} MiB`);
      expect(busy.n).toBeGreaterThan(100);
      // The "under 100 ms" is asserted on the server's event loop itself: no turn takes 100 ms of its own
      // (time spent waiting for a CPU is not counted; see stall_monitor.mjs), however loaded the machine.
      expect(own).toBeLessThan(100);
      // Seen from a client on the same 2-core machine, /health also waits behind the bombs' 30 MB crossing the
      // loopback: on this shared host (load 1.5–6) its p99 was 29–395 ms over 13 runs while the loop's own stalls
      // stayed ≤ 71 ms, the server logged each /health as answered within 6 ms of receiving it, and requests reached
      // it late only while the big bodies were being sent. So from outside only a backstop is asserted: the old
      // failure (a 16 MiB prompt tokenized on the main thread froze /health for 22 s) still fails it.
      expect(busy.p99).toBeLessThan(1000);
      // Headers are refused before decoding: what remains is the bodies' JSON (up to 60 MB) the GC has not returned yet.
      expect(rss1 - rss0).toBeLessThan(200 * MIB);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a full queue answers 429 with Retry-After before reading the body; a queued client leaving is not an error', async () => {
    const running = await post(openUrl, text('Go on and on', { max_tokens: 2000, stream: true }));
    const reader = running.body!.getReader();
    await reader.read();
    const ctrl = new AbortController();
    const queued = post(openUrl, text('wait', { max_tokens: 1 }), {}).catch(() => null);
    void ctrl;
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const refused = await post(openUrl, ask([audio(wav({ rate: 16000, frames: 4_000_000 }))])); // ~8 MB body
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('queue_full');
    await reader.cancel();
    expect(performance.now() - t0).toBeLessThan(15_000); // decided from the headers, between two decode steps
    expect((await queued)?.status).toBe(200);
    // A queued client that disconnects: its log line says 499, and nothing is logged as a server error.
    const r2 = await post(openUrl, text('Go on and on', { max_tokens: 2000, stream: true }));
    const rd2 = r2.body!.getReader();
    await rd2.read();
    const leave = new AbortController();
    const gone = fetch(`${openUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(text('x')), signal: leave.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 300));
    leave.abort();
    expect(await gone).toBe('aborted');
    await rd2.cancel();
    await new Promise((r) => setTimeout(r, 300));
    expect(logs.some((l) => / 499 /.test(l))).toBe(true);
    expect(logs.filter((l) => /^error/.test(l))).toEqual([]);
    expect(await (await fetch(`${openUrl}/health`)).json()).toMatchObject({ queued: 0, running: 0 });
  });

  it('HTTP hygiene: Content-Type, bearer case, HEAD, CORS preflight, Host allow-list, 413 delivered, request ids', async () => {
    await expectError('text/plain', await post(openUrl, text('x'), { 'content-type': 'text/plain' }), 415, /Content-Type must be application\/json/);
    await expectError('no content type', await fetch(`${openUrl}/v1/chat/completions`, { method: 'POST', body: new Blob([JSON.stringify(text('x'))]) }), 415, /got none/);
    expect((await fetch(`${lockedUrl}/v1/models`, { headers: { authorization: 'bearer sk-test' } })).status).toBe(200);
    expect((await fetch(`${lockedUrl}/v1/models`, { headers: { authorization: 'BEARER sk-test' } })).status).toBe(200);
    expect((await fetch(`${lockedUrl}/v1/models`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const head = await fetch(`${openUrl}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const pre = await fetch(`${lockedUrl}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/POST/);
    const other = await fetch(`${lockedUrl}/v1/models`, { headers: { origin: 'https://evil.example', authorization: 'Bearer sk-test' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const noCors = await fetch(`${openUrl}/health`, { headers: { origin: 'https://app.example' } });
    expect(noCors.headers.get('access-control-allow-origin')).toBeNull(); // CORS is off by default
    const hostStatus = await new Promise<number>((ok, fail) => {
      const port = new URL(lockedUrl).port;
      request({ host: '127.0.0.1', port, path: '/health', headers: { host: `rebound.example:${port}` } }, (r) => { r.resume(); ok(r.statusCode!); }).on('error', fail).end();
    });
    expect(hostStatus).toBe(421);
    // The body is over the limit and still being sent: the client reads the 413 (no EPIPE).
    const big = await post(lockedUrl, text('y'.repeat(5 * MIB)), { authorization: 'Bearer sk-test' });
    expect(big.status).toBe(413);
    const withId = await fetch(`${openUrl}/health`, { headers: { 'x-request-id': 'abc-123' } });
    expect(withId.headers.get('x-request-id')).toBe('abc-123');
    expect((await fetch(`${openUrl}/health`)).headers.get('x-request-id')).toMatch(/^req-/);
    expect(((await (await fetch(`${openUrl}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual(['phi4mm']);
    expect(() => new ChatServer(model, { apiKey: '' })).toThrow(/empty/);
  });

  it('seeded fuzz of valid PNG, JPEG, WebP, GIF, WAV, FLAC, MP3 and Ogg files: no 5xx, server alive', async () => {
    const img = (f: string) => readFileSync(join(ROOT, 'test/fixtures/image', f));
    const aud = (f: string) => readFileSync(join(ROOT, 'test/fixtures/audio', f));
    const bases: Array<[string, Buffer, 'image' | 'audio']> = [
      ['png', img('gradient.png'), 'image'], ['jpeg', img('gradient_baseline.jpg'), 'image'], ['webp', img('gradient_lossless.webp'), 'image'],
      ['gif', gif(24, 16), 'image'], ['wav', aud('tone440_16k_s16.wav'), 'audio'], ['flac', aud('tone440_44k1.flac'), 'audio'],
      ['mp3', aud('tone440_44k1.mp3'), 'audio'], ['ogg', aud('stereo_44k1_vorbis.ogg'), 'audio'], ['opus', aud('tone440_48k.opus'), 'audio'],
    ];
    const r = rng(20261201);
    const PER_FORMAT = 5;
    const tally: Record<string, number> = {};
    for (const [name, base, kind] of bases) {
      for (let k = 0; k < PER_FORMAT; k++) {
        const { bytes, how } = mutate(base, r);
        const part = kind === 'image' ? image(bytes) : { type: 'input_audio', input_audio: { data: bytes.toString('base64') } };
        const res = await post(openUrl, ask([part]));
        const body = await res.text();
        expect(res.status < 500, `${name} ${how}: ${res.status} ${body.slice(0, 300)}`).toBe(true);
        expect(res.status === 200 || (res.status >= 400 && (JSON.parse(body) as { error?: unknown }).error !== undefined), `${name} ${how}`).toBe(true);
        tally[res.status] = (tally[res.status] ?? 0) + 1;
      }
    }
    console.log(`fuzz: ${bases.length * PER_FORMAT} mutations, statuses ${JSON.stringify(tally)}`);
    expect(tally['429'] ?? 0).toBe(0); // every mutation was really processed
    expect(tally['200'] ?? 0).toBeGreaterThan(0);
    expect((await fetch(`${openUrl}/health`)).status).toBe(200);
  });
});
