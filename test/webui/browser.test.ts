// The chat page end to end in headless Chromium (Debian's `chromium`, driven by playwright-core) against the
// server on the tiny golden checkpoint. The engine is wrapped to see what the server received. Media token
// expectations come from the processors (image plan, audio frame count), not from constants.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer } from '../../src/server/server.js';
import type { ChatEngine, ChatMessage, SamplingOptions } from '../../src/api/types.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeAudio, sniffAudioFormat } from '../../src/io/audio.js';
import { computeNumImageTokens } from '../../src/models/phi4mm/image_processor.js';
import { audioTokenCount } from '../../src/models/phi4mm/audio_processor.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { ROOT } from '../helpers/golden.js';

// Callbacks passed to page.evaluate run in Chromium; this file is type-checked without the DOM lib (which would
// leak into the whole project), so the page's globals are declared here, untyped.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any, window: any, localStorage: any, MutationObserver: any, DataTransfer: any, ClipboardEvent: any, DragEvent: any, File: any;

const CHROMIUM = process.env['PHI4MM_CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];
const png = readFileSync(join(ROOT, 'examples/assets/image.png'));
const wav = readFileSync(join(ROOT, 'examples/assets/speech.wav'));

let model: Phi4MM, dynamicHd: number | undefined;
let open: ChatServer, locked: ChatServer, openUrl = '', lockedUrl = '';
let ctx: BrowserContext, page: Page, profile = '';
const received: ChatMessage[][] = [];
const receivedOpts: SamplingOptions[] = [];
const pageErrors: string[] = [];
let active = 0;
/** While set, a generation holds the model after its first delta until the promise resolves. */
let hold: Promise<void> | null = null;

// Milliseconds before each text delta reaches the page (0: none). The tiny model's greedy tokens come faster than
// the page's once-per-frame render (a 10-token reply can arrive within one frame), so the streaming test paces them
// as a real model's ~50–100 ms tokens are paced.
let deltaGapMs = 0;

/** The model, plus a record of each request's messages, a count of generations still running, `hold`, and `deltaGapMs`. */
function recordingEngine(m: Phi4MM): ChatEngine {
  return {
    modelId: m.modelId,
    async *streamEvents(messages, opts) {
      received.push(messages);
      receivedOpts.push(opts ?? {});
      active++;
      try {
        if (hold) { yield { type: 'delta', text: 'held' }; await hold; } // busy without burning CPU
        for await (const ev of m.streamEvents(messages, opts)) {
          if (ev.type === 'delta' && deltaGapMs > 0) await new Promise((r) => setTimeout(r, deltaGapMs));
          yield ev;
        }
      } finally { active--; }
    },
  };
}

function webBuildStale(): boolean {
  const src = join(ROOT, 'web/src'), out = join(ROOT, 'dist/web');
  return readdirSync(src).some((f) => {
    const js = join(out, f.replace(/\.ts$/, '.js'));
    return !existsSync(js) || statSync(js).mtimeMs < statSync(join(src, f)).mtimeMs;
  });
}

// PHI4MM_WEBUI_TIMING=<file> appends phase times there (where the test's time goes on a loaded machine).
const T0 = Date.now();
const mark = (what: string) => { if (process.env['PHI4MM_WEBUI_TIMING']) appendFileSync(process.env['PHI4MM_WEBUI_TIMING'], `${((Date.now() - T0) / 1000).toFixed(1)} s ${what}\n`); };

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function settings(p: Page, s: { temperature?: string; maxTokens?: string; seed?: string; system?: string }): Promise<void> {
  if (await p.locator('#settings').isHidden()) await p.click('#toggle-settings');
  if (s.temperature !== undefined) await p.fill('#temperature', s.temperature);
  if (s.maxTokens !== undefined) await p.fill('#max-tokens', s.maxTokens);
  if (s.seed !== undefined) await p.fill('#seed', s.seed);
  if (s.system !== undefined) await p.fill('#system', s.system);
}

/** Sends a message and waits for the reply to end; returns its final state and token counts. */
async function sendAndWait(p: Page, text: string): Promise<{ state: string; prompt: number; completion: number; text: string; stats: string }> {
  const n = await p.locator('.turn.assistant').count();
  await p.fill('#input', text);
  await p.press('#input', 'Enter');
  const reply = p.locator('.turn.assistant').nth(n);
  await reply.and(p.locator('[data-state]')).waitFor({ timeout: 60_000 });
  return reply.evaluate((e: any) => ({
    state: e.dataset['state']!, prompt: Number(e.dataset['promptTokens'] ?? NaN), completion: Number(e.dataset['completionTokens'] ?? NaN),
    text: e.querySelector('.md')!.textContent ?? '', stats: e.querySelector('.stats')!.textContent ?? '',
  }));
}

type ReceivedPart = { type: string; image?: { width: number; height: number; data: Uint8Array }; audio?: { samples: Float32Array; sampleRate: number } };
const lastNotice = (p: Page) => p.locator('.turn.notice.error').last().textContent();
const lastUserParts = () => received.at(-1)!.at(-1)!.content;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the web UI test needs Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (.ci/run does), or set PHI4MM_CHROMIUM`);
  }
  // The page's scripts as the package builds them (prepare); rebuilt here when web/src changed since.
  if (webBuildStale()) execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'web/tsconfig.json')], { stdio: 'inherit' });
  const dir = tinyCheckpoint();
  model = await Phi4MM.fromPretrained(dir);
  dynamicHd = (JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')) as { dynamic_hd?: number }).dynamic_hd;
  // One request may wait: a send right after a reply ends may arrive before the last one has left the model.
  open = new ChatServer(recordingEngine(model), { port: 0, maxQueue: 1 });
  openUrl = (await open.listen()).url;
  locked = new ChatServer(recordingEngine(model), { port: 0, apiKey: 'sk-test', maxBodyBytes: 120_000 });
  lockedUrl = (await locked.listen()).url;
  profile = mkdtempSync(join(tmpdir(), 'phi4mm-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1100, height: 760 } });
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

afterAll(async () => {
  await ctx?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await open?.close();
  await locked?.close();
});

afterEach(() => {
  expect(pageErrors, 'uncaught errors in the page').toEqual([]);
});

describe('web UI in Chromium', () => {
  it('serves the page and its assets without the API key, with a CSP', async () => {
    const res = await fetch(`${lockedUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect((await fetch(`${lockedUrl}/assets/main.js`)).status).toBe(200);
    expect((await fetch(`${lockedUrl}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${lockedUrl}/v1/models`)).status).toBe(401); // the API stays locked
    await page.goto(openUrl);
    await page.locator('body[data-ready]').waitFor();
    const health = (await (await fetch(`${openUrl}/health`)).json()) as { model: string };
    expect(await page.textContent('#model')).toBe(health.model); // the name the page sends as `model`
  });

  it('shows the load progress while the server is still loading the model, then becomes ready', async () => {
    const loading = new ChatServer(null, { port: 0 });
    const url = (await loading.listen()).url;
    try {
      loading.setLoading({ stage: 'load', progress: 0.42 });
      const p = await ctx.newPage();
      await p.goto(url);
      await p.locator('#model', { hasText: '42 %' }).waitFor();
      await p.fill('#input', 'Too early?');
      await p.press('#input', 'Enter');
      await p.locator('.turn.notice.error', { hasText: '503' }).waitFor();
      expect(await p.locator('.turn.notice.error').textContent()).toMatch(/loading/);
      loading.setEngine(recordingEngine(model));
      await p.locator('body[data-ready]').waitFor();
      expect(await p.textContent('#model')).toBe('phi4mm');
      await p.close();
    } finally {
      await loading.close();
    }
  });

  it('streams a reply into the page and shows its stats from the usage', async () => {
    // Greedy (temperature 0) keeps the tiny model fast; sampling settings reach the server as typed.
    await settings(page, { temperature: '0', maxTokens: '10', seed: '7', system: 'Be brief.' });
    // Record what the reply showed while it was still streaming.
    await page.evaluate(() => {
      const w = window as unknown as { seen: string[] };
      w.seen = [];
      new MutationObserver(() => {
        const t = document.querySelector('.turn.assistant.streaming .md')?.textContent ?? '';
        if (t && t !== w.seen.at(-1)) w.seen.push(t);
      }).observe(document.getElementById('log')!, { subtree: true, childList: true, characterData: true });
    });
    deltaGapMs = 40; // > one animation frame: every delta can render on its own
    const r = await sendAndWait(page, 'Hello, who are you?').finally(() => { deltaGapMs = 0; });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(r.state).toBe('done');
    expect(seen.length, 'partial renders while streaming').toBeGreaterThanOrEqual(2);
    expect(r.text.startsWith(seen[0]!.slice(0, 1))).toBe(true);
    expect(r.completion).toBeGreaterThan(0);
    expect(r.completion).toBeLessThanOrEqual(10);
    expect(receivedOpts.at(-1)).toMatchObject({ temperature: 0, maxTokens: 10, seed: 7 });
    expect(r.stats).toMatch(/first token \d/);
    expect(r.stats).toContain(`${r.prompt} prompt + ${r.completion} completion tokens`);
    // What the server received: the system prompt, then the user's text, with the settings.
    expect(received.at(-1)).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, who are you?' }]);
    // A second turn carries the history: the prompt now holds the first exchange.
    await settings(page, { maxTokens: '1' });
    const r2 = await sendAndWait(page, 'And then?');
    expect(received.at(-1)!.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(r2.prompt).toBeGreaterThan(r.prompt + r.completion);
  });

  it('sends a picked image, a dropped audio file, a pasted image and a recording; the prompt grows by their token counts', async () => {
    await settings(page, { maxTokens: '1', system: '' });
    await page.click('#new-chat');
    mark('media start');
    const base = await sendAndWait(page, 'Describe.');
    mark('base');
    await page.click('#new-chat');

    await page.setInputFiles('#file', join(ROOT, 'examples/assets/image.png'));
    const put = async (event: 'drop' | 'paste', b64: string, name: string, type: string) => page.evaluate(({ event, b64, name, type }) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type }));
      const target = document.getElementById('input')!;
      if (event === 'paste') target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      else for (const t of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(t, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, { event, b64, name, type });
    await put('drop', wav.toString('base64'), 'speech.wav', 'audio/wav');
    await put('paste', png.toString('base64'), 'clip.png', 'image/png');
    await page.locator('#pending .chip').nth(2).waitFor();
    mark('attached');
    const r = await sendAndWait(page, 'Describe.');
    expect(r.state).toBe('done');
    const turn = page.locator('.turn.user').last();
    expect(await turn.locator('img').count()).toBe(2);
    expect(await turn.locator('audio').count()).toBe(1);

    mark('media reply');
    // The engine gets the media decoded by the server: the same pixels and samples as the files.
    const parts = lastUserParts() as ReceivedPart[];
    expect(parts.map((p) => p.type)).toEqual(['image', 'audio', 'image', 'text']);
    const img = decodeImage(png), speech = await decodeAudio(wav);
    const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength); // fast exact compare
    for (const k of [0, 2]) {
      expect(parts[k]!.image).toMatchObject({ width: img.width, height: img.height });
      expect(bytes(parts[k]!.image!.data).equals(bytes(img.data)), `image ${k} pixels`).toBe(true);
    }
    expect(parts[1]!.audio!.sampleRate).toBe(speech.sampleRate);
    expect(bytes(parts[1]!.audio!.samples).equals(bytes(speech.samples)), 'audio samples').toBe(true);
    const imgTokens = computeNumImageTokens(img.width, img.height, dynamicHd ? { dynamicHd } : {});
    const audioTokens = audioTokenCount(speech.samples.length, speech.sampleRate);
    expect(r.prompt - base.prompt).toBe(2 * imgTokens + audioTokens);
    mark('media checked');

    // The microphone (Chromium's fake device): recorded, converted to 16 kHz WAV in the page, sent as input_audio.
    await page.click('#new-chat');
    await page.click('#record');
    await page.locator('#record[aria-pressed="true"]').waitFor();
    await page.waitForTimeout(1200);
    await page.click('#record');
    await page.locator('#pending .chip audio').waitFor();
    const request = page.waitForRequest('**/v1/chat/completions');
    mark('recorded');
    const rec = await sendAndWait(page, 'Describe.');
    mark('recording reply');
    const sent = (await request).postDataJSON() as { messages: Array<{ content: Array<{ type: string; input_audio?: { data: string; format: string } }> }> };
    const audioPart = sent.messages.at(-1)!.content[0]!.input_audio!;
    expect(audioPart.format).toBe('wav');
    expect(sniffAudioFormat(Buffer.from(audioPart.data, 'base64'))).toBe('wav');
    const recAudio = (lastUserParts() as ReceivedPart[])[0]!.audio!;
    expect(recAudio.sampleRate).toBe(16000);
    expect(recAudio.samples.length / 16000).toBeGreaterThan(0.5);
    expect(recAudio.samples.some((x) => Math.abs(x) > 0.01), 'the fake microphone beeps').toBe(true);
    expect(rec.prompt - base.prompt).toBe(audioTokenCount(recAudio.samples.length, recAudio.sampleRate));
  });

  it('stops a reply mid-stream: the page settles and the server frees the model', async () => {
    await settings(page, { maxTokens: '400' });
    const n = await page.locator('.turn.assistant').count();
    await page.fill('#input', 'Tell me a long story.');
    await page.press('#input', 'Enter');
    const reply = page.locator('.turn.assistant').nth(n);
    await page.waitForFunction((k) => (document.querySelectorAll('.turn.assistant .md')[k]?.textContent ?? '').length > 0, n, { timeout: 60_000 });
    expect(active).toBe(1);
    await page.click('#stop');
    await reply.and(page.locator('[data-state="stopped"]')).waitFor();
    expect(await page.locator('#send').isVisible()).toBe(true);
    expect(await page.locator('#stop').isHidden()).toBe(true);
    await until('the server to end the stopped generation', () => active === 0);
    const text = await reply.locator('.md').textContent();
    await page.waitForTimeout(300);
    expect(await reply.locator('.md').textContent()).toBe(text); // nothing more arrives
    expect(await reply.locator('.stats').textContent()).toMatch(/^stopped/);
  });

  it('shows 429 and 400 as messages, and gives the unsent turn back to the composer', async () => {
    await settings(page, { maxTokens: '1' });
    // Fill the model and its one queue place from outside (the running one held after its first delta).
    let release = () => {};
    hold = new Promise<void>((r) => { release = r; });
    const ask = () => fetch(`${openUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'phi4mm', messages: [{ role: 'user', content: 'Go on' }], max_tokens: 1, stream: true }),
    });
    const running = await ask();
    const reader = running.body!.getReader();
    await reader.read();
    const waiting = ask();
    await until('the second request to wait', () => open.admission.waiting === 1);
    mark('busy');
    await page.fill('#input', 'Are you there?');
    await page.press('#input', 'Enter');
    await page.locator('.turn.notice.error', { hasText: '429' }).waitFor();
    mark('429 shown');
    expect(await lastNotice(page)).toMatch(/busy \(429\): .*1 requests are already waiting/);
    expect(await page.inputValue('#input')).toBe('Are you there?');
    expect(await page.locator('.turn.user.unsent').count()).toBe(1);
    hold = null;
    release();
    await reader.cancel();
    expect((await (await waiting).text()).trimEnd().endsWith('[DONE]')).toBe(true);
    await until('the external requests to end', () => active === 0);
    mark('external ended');

    await settings(page, { temperature: '5' });
    await page.press('#input', 'Enter');
    await page.locator('.turn.notice.error', { hasText: '400' }).waitFor();
    mark('400 shown');
    expect(await lastNotice(page)).toMatch(/rejected the request \(400\): temperature/);
    expect(await page.locator('#send').isVisible()).toBe(true);
    await settings(page, { temperature: '0' });
    const r = await sendAndWait(page, 'Are you there?');
    expect(r.state).toBe('done');
  });

  it('asks for the API key once on 401, keeps it, and shows a 413 for media over the body limit', async () => {
    await page.goto(lockedUrl);
    await page.locator('body[data-ready]').waitFor();
    await settings(page, { maxTokens: '1', temperature: '0' });
    await page.fill('#input', 'Hi');
    await page.press('#input', 'Enter');
    await page.locator('#key-dialog[open]').waitFor();
    await page.fill('#key-input', 'sk-test');
    await page.click('#key-dialog button[value="ok"]');
    await page.locator('.turn.assistant[data-state="done"]').waitFor({ timeout: 60_000 });
    expect(await page.evaluate(() => localStorage.getItem('phi4mm.apiKey'))).toBe('sk-test');
    await page.reload();
    await page.locator('body[data-ready]').waitFor();
    expect((await sendAndWait(page, 'Hi again')).state).toBe('done');
    expect(await page.locator('#key-dialog[open]').count()).toBe(0);

    await page.setInputFiles('#file', join(ROOT, 'examples/assets/image.png')); // ~147 KB as base64 > 120 KB
    await page.locator('#pending .chip').waitFor();
    await page.fill('#input', 'What is this?');
    await page.press('#input', 'Enter');
    await page.locator('.turn.notice.error', { hasText: '413' }).waitFor();
    expect(await lastNotice(page)).toMatch(/too large \(413\)/);
    expect(await page.locator('#pending .chip').count()).toBe(1); // the image is back, ready to resend
  });

  it('never turns model text into markup', async () => {
    // A string, so the test runner does not rewrite the page's dynamic import.
    const out = (await page.evaluate(`(async () => {
      const { renderMarkdown } = await import('/assets/render.js');
      const div = document.createElement('div');
      div.append(renderMarkdown('<img src=x onerror="window.pwned=1"> **bold** [a](javascript:alert(1)) [b](https://example.com)\\n\\n\`\`\`js\\nlet x = "<b>";\\n\`\`\`'));
      document.body.append(div);
      await new Promise((r) => setTimeout(r, 50));
      return {
        imgs: div.querySelectorAll('img').length, strong: div.querySelector('strong')?.textContent,
        links: [...div.querySelectorAll('a')].map((a) => a.getAttribute('href')), code: div.querySelector('pre code')?.textContent,
        text: div.textContent, pwned: window.pwned ?? null,
      };
    })()`)) as { imgs: number; strong: string; links: string[]; code: string; text: string; pwned: unknown };
    expect(out).toMatchObject({ imgs: 0, strong: 'bold', links: ['https://example.com'], code: 'let x = "<b>";', pwned: null });
    expect(out.text).toContain('<img src=x onerror="window.pwned=1">');
  });

  it('fits a phone-sized screen; takes the README screenshot', async () => {
    await page.goto(openUrl);
    await page.locator('body[data-ready]').waitFor();
    await settings(page, { maxTokens: '12', temperature: '0' });
    await page.click('#toggle-settings');
    await page.setInputFiles('#file', [join(ROOT, 'examples/assets/image.png'), join(ROOT, 'examples/assets/speech.wav')]);
    await page.locator('#pending .chip').nth(1).waitFor();
    expect((await sendAndWait(page, 'Listen to the audio and look at the image. How do they relate?')).state).toBe('done');
    const shot = await page.screenshot();
    const target = process.env['PHI4MM_UPDATE_SCREENSHOT'] ? join(ROOT, 'docs/webui.png') : join(profile, 'webui.png');
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, shot);

    await page.setViewportSize({ width: 390, height: 844 });
    const fit = await page.evaluate(() => {
      const box = (id: string) => document.getElementById(id)!.getBoundingClientRect();
      return { scrollW: document.documentElement.scrollWidth, send: box('send'), input: box('input'), record: box('record') };
    });
    expect(fit.scrollW).toBeLessThanOrEqual(390);
    for (const b of [fit.send, fit.input, fit.record]) {
      expect(b.left).toBeGreaterThanOrEqual(0);
      expect(b.right).toBeLessThanOrEqual(390);
      expect(b.bottom).toBeLessThanOrEqual(844);
    }
    expect(fit.input.width).toBeGreaterThan(300); // the message box takes the full width on a phone
  });
});
