// Phi4MM.fromPretrained with a hub id, against a fake hub on 127.0.0.1 serving a tiny checkpoint: the model is
// downloaded into the cache layout (original layout: the adapter folders are skipped), loads, and chats; a
// second load works offline from the cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Phi4MM } from '../src/api/phi4mm.js';
import { repoCacheDir } from '../src/io/hub.js';
import { tinyCheckpoint } from './helpers/tiny_checkpoint.js';

const COMMIT = 'b'.repeat(40);
let server: Server, hubUrl = '';
const files = new Map<string, Buffer>();

beforeAll(async () => {
  const dir = tinyCheckpoint();
  for (const f of readdirSync(dir)) files.set(f, readFileSync(join(dir, f)));
  // An adapter folder the original layout does not need: it must not be downloaded.
  files.set('vision-lora/adapter_model.safetensors', Buffer.alloc(1000));
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/api/models/org/tiny-phi4mm/tree/main') {
      res.end(JSON.stringify([...files].map(([path, b]) => ({ type: 'file', path, size: b.length }))));
      return;
    }
    const m = /^\/org\/tiny-phi4mm\/resolve\/main\/(.+)$/.exec(url.pathname);
    const body = m ? files.get(decodeURIComponent(m[1]!)) : undefined;
    if (!body) { res.statusCode = 404; res.end(); return; }
    res.setHeader('x-repo-commit', COMMIT);
    res.setHeader('etag', `"${createHash('sha1').update(body).digest('hex')}"`);
    res.setHeader('content-length', body.length);
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  hubUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

describe('fromPretrained with a hub id', () => {
  it('downloads into the HF cache with progress, loads, chats, and reloads offline', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'phi4mm-hubmodel-'));
    const stages = new Set<string>();
    let lastDownload = { loaded: 0, total: 1 };
    const m = await Phi4MM.fromPretrained('org/tiny-phi4mm', { hubUrl, cacheDir, onProgress: (p) => { stages.add(p.stage); if (p.stage === 'download') lastDownload = p; } });
    expect([...stages].sort()).toEqual(['download', 'load']);
    expect(lastDownload.loaded).toBe(lastDownload.total);
    const snap = join(repoCacheDir('org/tiny-phi4mm', cacheDir), 'snapshots', COMMIT);
    expect(existsSync(join(snap, 'model.safetensors'))).toBe(true);
    expect(existsSync(join(snap, 'vision-lora'))).toBe(false);
    expect((await m.chat([{ role: 'user', content: 'Hi' }], { maxTokens: 3 })).usage.completion_tokens).toBeGreaterThan(0);
    await new Promise<void>((ok) => server.close(() => ok())); // the hub goes away
    const again = await Phi4MM.fromPretrained('org/tiny-phi4mm', { cacheDir, offline: true });
    expect(again.config.text.hidden_size).toBe(m.config.text.hidden_size);
    server.listen(0, '127.0.0.1');
  });
});
