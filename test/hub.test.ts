// The hub downloader against a fake hub on 127.0.0.1: resolve URLs, ETag/commit headers, Range resume,
// cache reuse and offline mode, in the standard Hugging Face cache layout.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubError, repoCacheDir, snapshotDownload } from '../src/io/hub.js';

const COMMIT = 'a'.repeat(40);
const BIG = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) & 0xff));
const FILES: Record<string, Buffer> = {
  'config.json': Buffer.from('{"model_type":"phi4mm"}'),
  'model-00001-of-00001.safetensors': BIG,
  'vision-lora/adapter_config.json': Buffer.from('{}'),
};
const etag = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Log { method: string; path: string; range?: string; auth?: string }
let server: Server;
let base = '';
const log: Log[] = [];
let cutNextBigDownload = false;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url!, 'http://x');
  log.push({ method: req.method!, path: url.pathname, range: req.headers.range, auth: req.headers.authorization });
  if (url.pathname === '/api/models/org/tiny/tree/main') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(Object.entries(FILES).map(([path, b]) => ({ type: 'file', path, size: b.length, oid: etag(b) }))));
    return;
  }
  const m = /^\/org\/tiny\/resolve\/main\/(.+)$/.exec(url.pathname);
  const body = m ? FILES[decodeURIComponent(m[1]!)] : undefined;
  if (!body) {
    res.statusCode = 404;
    res.end('not found');
    return;
  }
  res.setHeader('x-repo-commit', COMMIT);
  res.setHeader('etag', `"${etag(body)}"`);
  res.setHeader('accept-ranges', 'bytes');
  if (req.method === 'HEAD') {
    res.setHeader('content-length', body.length);
    res.end();
    return;
  }
  const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = r ? Number(r[1]) : 0;
  res.statusCode = r ? 206 : 200;
  if (r) res.setHeader('content-range', `bytes ${start}-${body.length - 1}/${body.length}`);
  res.setHeader('content-length', body.length - start);
  if (cutNextBigDownload && body === BIG) {
    cutNextBigDownload = false;
    // Send a third of the file, then drop the connection: the client must keep the partial blob.
    // A FIN (not destroy's RST, which can discard bytes already sent) after the bytes have left.
    res.write(body.subarray(start, start + 100_000), () => setTimeout(() => res.socket?.end(), 50));
    return;
  }
  res.end(body.subarray(start));
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

describe('hub download (fake hub on 127.0.0.1)', () => {
  it('resumes an interrupted download with a Range request, then reuses the cache and works offline', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'phi4mm-hub-'));
    const opts = { cacheDir, hubUrl: base, token: 'hf_test123', filter: (p: string) => !p.startsWith('vision-lora/') };
    cutNextBigDownload = true;
    const err = await snapshotDownload("org/tiny", opts).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/terminated|other side closed|ended at/);
    const blob = join(repoCacheDir('org/tiny', cacheDir), 'blobs', etag(BIG));
    expect(existsSync(`${blob}.incomplete`)).toBe(true);

    log.length = 0;
    const progress: number[] = [];
    const snap = await snapshotDownload('org/tiny', { ...opts, onProgress: (p) => p.file.endsWith('.safetensors') && progress.push(p.loaded) });
    const resumed = log.find((l) => l.method === 'GET' && l.path.endsWith('.safetensors'));
    expect(resumed?.range).toMatch(/^bytes=(\d+)-$/);
    expect(Number(/\d+/.exec(resumed!.range!)![0])).toBeGreaterThan(0);
    expect(log.every((l) => l.auth === 'Bearer hf_test123')).toBe(true);
    // Progress starts at the resumed offset, never goes back, and ends at the full size.
    expect(progress[0]).toBeGreaterThan(0);
    expect(progress.every((v, i) => i === 0 || v >= progress[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(BIG.length);

    expect(snap).toBe(join(repoCacheDir('org/tiny', cacheDir), 'snapshots', COMMIT));
    expect(readFileSync(join(snap, 'model-00001-of-00001.safetensors')).equals(BIG)).toBe(true);
    expect(lstatSync(join(snap, 'config.json')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(snap, 'config.json'))).toBe(join('..', '..', 'blobs', etag(FILES['config.json']!)));
    expect(existsSync(join(snap, 'vision-lora'))).toBe(false);
    expect(readFileSync(join(repoCacheDir('org/tiny', cacheDir), 'refs', 'main'), 'utf8')).toBe(COMMIT);

    log.length = 0;
    await snapshotDownload('org/tiny', opts);
    expect(log.filter((l) => l.method === 'GET' && l.path.includes('/resolve/'))).toEqual([]);

    log.length = 0;
    expect(await snapshotDownload('org/tiny', { ...opts, offline: true })).toBe(snap);
    expect(log).toEqual([]);
  });

  it('gives clear errors for unknown repositories, missing cache in offline mode and bad ids', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'phi4mm-hub-'));
    await expect(snapshotDownload('org/missing', { cacheDir, hubUrl: base })).rejects.toThrow(HubError);
    await expect(snapshotDownload('org/tiny', { cacheDir, hubUrl: base, offline: true })).rejects.toThrow(/offline mode.*not in the cache/);
    await expect(snapshotDownload('not a repo!', { cacheDir, hubUrl: base })).rejects.toThrow(/not a hub repository id/);
  });

  it('restarts from zero when a partial blob is longer than the file', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'phi4mm-hub-'));
    const blob = join(repoCacheDir('org/tiny', cacheDir), 'blobs', etag(BIG));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(repoCacheDir('org/tiny', cacheDir), 'blobs'), { recursive: true });
    writeFileSync(`${blob}.incomplete`, Buffer.alloc(BIG.length + 10));
    const snap = await snapshotDownload('org/tiny', { cacheDir, hubUrl: base });
    expect(readFileSync(join(snap, 'model-00001-of-00001.safetensors')).equals(BIG)).toBe(true);
  });
});
