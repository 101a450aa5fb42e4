import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPrivateAddress, loadMediaBytes, MediaError } from '../../src/io/media.js';

const PAYLOAD = new Uint8Array(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 255));
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/ok') { res.end(Buffer.from(PAYLOAD)); return; }
    if (path === '/redirect1') { res.writeHead(302, { location: '/ok' }); res.end(); return; }
    if (path === '/redirect2') { res.writeHead(301, { location: '/redirect1' }); res.end(); return; }
    if (path === '/loop') { res.writeHead(302, { location: '/loop' }); res.end(); return; }
    if (path === '/big-declared') { res.writeHead(200, { 'content-length': '5000' }); res.end(Buffer.alloc(5000)); return; }
    if (path === '/big-chunked') {
      // no content-length: the cap must trip while streaming
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1000));
      res.end();
      return;
    }
    if (path === '/slow') { setTimeout(() => res.end('late'), 2000); return; }
    res.writeHead(404); res.end('nope');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => { server.closeAllConnections(); await new Promise((r) => server.close(r)); });

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { expect(e).toBeInstanceOf(MediaError); return (e as MediaError).code; }
  return 'no error';
}

describe('loadMediaBytes over http', () => {
  it('fetches bytes and follows redirects', async () => {
    expect(await loadMediaBytes(`${base}/ok`, 'image')).toEqual(PAYLOAD);
    expect(await loadMediaBytes(`${base}/redirect2`, 'image')).toEqual(PAYLOAD);
  });
  it('limits redirects', async () => {
    expect(await code(loadMediaBytes(`${base}/redirect2`, 'image', { maxRedirects: 1 }))).toBe('too_many_redirects');
    expect(await code(loadMediaBytes(`${base}/loop`, 'image'))).toBe('too_many_redirects');
  });
  it('caps the size by header and while streaming', async () => {
    expect(await code(loadMediaBytes(`${base}/big-declared`, 'image', { maxBytes: 4000 }))).toBe('too_large');
    expect(await code(loadMediaBytes(`${base}/big-chunked`, 'image', { maxBytes: 4000 }))).toBe('too_large');
    expect((await loadMediaBytes(`${base}/big-chunked`, 'image', { maxBytes: 20000 })).length).toBe(10000);
  });
  it('times out', async () => {
    expect(await code(loadMediaBytes(`${base}/slow`, 'audio', { timeoutMs: 100 }))).toBe('timeout');
  });
  it('reports HTTP errors', async () => {
    expect(await code(loadMediaBytes(`${base}/missing`, 'image'))).toBe('fetch_failed');
  });
  it('blocks private addresses only when asked', async () => {
    expect(await code(loadMediaBytes(`${base}/ok`, 'image', { allowPrivateNetwork: false }))).toBe('private_address');
    expect(await code(loadMediaBytes(`http://localhost:1/ok`, 'image', { allowPrivateNetwork: false }))).toBe('private_address');
  });
});

describe('isPrivateAddress', () => {
  it.each([
    ['127.0.0.1', true], ['10.1.2.3', true], ['172.16.0.1', true], ['172.32.0.1', false], ['192.168.1.1', true],
    ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['8.8.8.8', false],
    ['::1', true], ['::', true], ['fe80::1', true], ['fd00::5', true], ['fc12::1', true], ['2001:4860::8888', false],
    ['::ffff:127.0.0.1', true], ['::ffff:7f00:1', true], ['::ffff:8.8.8.8', false],
  ])('%s → %s', (a, want) => expect(isPrivateAddress(a)).toBe(want));
});

describe('loadMediaBytes local forms', () => {
  const dir = mkdtempSync(join(tmpdir(), 'phi4mm-media-'));
  const file = join(dir, 'x.bin');
  writeFileSync(file, PAYLOAD);
  const b64 = Buffer.from(PAYLOAD).toString('base64');

  it('reads paths, file:// URLs, data: URLs and raw base64', async () => {
    expect(await loadMediaBytes(file, 'image')).toEqual(PAYLOAD);
    expect(await loadMediaBytes(pathToFileURL(file).href, 'image')).toEqual(PAYLOAD);
    expect(await loadMediaBytes(`data:image/png;base64,${b64}`, 'image')).toEqual(PAYLOAD);
    expect(await loadMediaBytes(b64, 'image')).toEqual(PAYLOAD);
    expect(await loadMediaBytes(b64.replace(/(.{76})/g, '$1\n'), 'image')).toEqual(PAYLOAD); // MIME line breaks
    expect(await loadMediaBytes(PAYLOAD.buffer.slice(0), 'image')).toEqual(PAYLOAD);
  });
  it('prefers an existing file over a base64 reading of the same string', async () => {
    const name = join(dir, 'A'.repeat(80)); // valid base64 characters, but a real file
    writeFileSync(name, 'file!');
    expect(Buffer.from(await loadMediaBytes(name, 'image')).toString()).toBe('file!');
  });
  it('rejects missing and forbidden paths', async () => {
    expect(await code(loadMediaBytes(join(dir, 'missing.png'), 'image'))).toBe('not_found');
    expect(await code(loadMediaBytes(file, 'image', { allowLocalFiles: false }))).toBe('forbidden_path');
    expect(await code(loadMediaBytes(file, 'image', { allowLocalFiles: tmpdir() + '/elsewhere' }))).toBe('forbidden_path');
    expect(await code(loadMediaBytes(join(dir, '..', dir.split('/').pop()!, 'x.bin'), 'image', { allowLocalFiles: dir }))).toBe('no error');
    expect(await code(loadMediaBytes(`${dir}/../../etc/passwd`, 'image', { allowLocalFiles: dir }))).toBe('forbidden_path');
  });
  it('rejects malformed input', async () => {
    expect(await code(loadMediaBytes('data:image/png;base64,@@@@', 'image'))).toBe('bad_base64');
    expect(await code(loadMediaBytes('ftp://example.com/a.png', 'image'))).toBe('bad_url');
    expect(await code(loadMediaBytes(new Uint8Array(0), 'image'))).toBe('empty');
    expect(await code(loadMediaBytes(PAYLOAD, 'image', { maxBytes: 10 }))).toBe('too_large');
  });
});
