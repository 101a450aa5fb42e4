// DNS rebinding, end to end through the server: a resolver that answers the vetting with an allowed address and
// any later question with 127.0.0.1 must not get a media fetch to a local HTTP server. The address that was
// checked is the one connected to (src/io/media.ts pinnedLookup). Two servers share one port number: "public" on
// 127.0.0.2 (allowed only by this test's address filter, passed in code as ServerOptions.mediaNetwork) and
// "local" on 127.0.0.1 (private, as in production).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import { ChatServer } from '../../src/server/server.js';
import { isPrivateAddress, loadMediaBytes, MediaError, type MediaNetwork } from '../../src/io/media.js';
import { makeUsage, type ChatEngine, type ChatMessage } from '../../src/api/types.js';
import { png } from './craft.js';

const PUBLIC = '127.0.0.2', LOCAL = '127.0.0.1';
const hits = { public: 0, local: 0 };
let port = 0;
const servers: Server[] = [];

/** Both servers on the same port, so only the resolved address decides which one a fetch reaches. */
async function listenPair(): Promise<void> {
  const image = png(32, 24);
  for (let attempt = 0; attempt < 20; attempt++) {
    const pub = createServer((_q, r) => { hits.public++; r.writeHead(200, { 'content-type': 'image/png' }); r.end(image); });
    const local = createServer((_q, r) => { hits.local++; r.writeHead(200, { 'content-type': 'image/png' }); r.end(image); });
    await new Promise<void>((ok) => pub.listen(0, PUBLIC, ok));
    const p = (pub.address() as { port: number }).port;
    const bound = await new Promise<boolean>((ok) => { local.once('error', () => ok(false)); local.listen(p, LOCAL, () => ok(true)); });
    if (bound) { servers.push(pub, local); port = p; return; }
    pub.close();
  }
  throw new Error('no port free on both 127.0.0.1 and 127.0.0.2');
}

/** A model stand-in that records the images it is given. */
const seen: Array<{ width: number; height: number }> = [];
const engine: ChatEngine = {
  modelId: 'fake',
  async *streamEvents(messages: ChatMessage[]) {
    for (const m of messages) for (const p of Array.isArray(m.content) ? m.content : []) if (p.type === 'image') seen.push(p.image as { width: number; height: number });
    yield { type: 'delta', text: 'ok' };
    yield { type: 'done', finishReason: 'stop', usage: makeUsage(1, 1, 0, 0) };
  },
};

/** Resolver answers in order; the last one repeats. Counts the questions. */
function resolver(...answers: string[]): MediaNetwork & { calls: number } {
  const net = {
    calls: 0,
    resolve: async (_host: string): Promise<LookupAddress[]> => [{ address: answers[Math.min(net.calls++, answers.length - 1)]!, family: 4 }],
    // Test only: 127.0.0.2 stands in for a public address; everything else is judged as in production.
    isPrivate: (a: string) => a !== PUBLIC && isPrivateAddress(a),
  };
  return net;
}

async function chatWithImage(net: MediaNetwork): Promise<Response> {
  const server = new ChatServer(engine, { port: 0, mediaNetwork: net, mediaTimeoutMs: 5000 });
  const { url } = await server.listen();
  try {
    return await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'phi4mm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `http://media.rebind.test:${port}/cat.png` } }, { type: 'text', text: 'What is it?' }] }] }),
    });
  } finally {
    await server.close(1000);
  }
}

beforeAll(listenPair);
afterAll(() => { for (const s of servers) s.close(); });

describe('DNS rebinding against media URLs', () => {
  it('public at the check, 127.0.0.1 afterwards: the fetch goes to the checked address, never to the local server', async () => {
    hits.public = hits.local = 0;
    seen.length = 0;
    const net = resolver(PUBLIC, LOCAL);
    const res = await chatWithImage(net);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(hits).toEqual({ public: 1, local: 0 });
    expect(net.calls).toBe(1); // one resolution serves both the check and the connection
    expect(seen).toMatchObject([{ width: 32, height: 24 }]);
  });

  it('a name that resolves to 127.0.0.1 is refused with a 400 naming the address; the local server sees nothing', async () => {
    hits.public = hits.local = 0;
    const res = await chatWithImage(resolver(LOCAL));
    const body = (await res.json()) as { error: { message: string; code: string } };
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('private_address');
    expect(body.error.message).toMatch(/media\.rebind\.test resolves to a private\/local address \(127\.0\.0\.1\)/);
    expect(hits).toEqual({ public: 0, local: 0 });
  });

  it('without the test filter, 127.0.0.2 is private too: the seam only widens what the test itself passes', async () => {
    hits.public = hits.local = 0;
    const res = await chatWithImage({ resolve: async () => [{ address: PUBLIC, family: 4 }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('private_address');
    expect(hits).toEqual({ public: 0, local: 0 });
  });

  it('a keep-alive socket that a permissive fetch opened to 127.0.0.1 is not reused by a vetted fetch of the same name', async () => {
    hits.public = hits.local = 0;
    const url = `http://media.rebind.test:${port}/cat.png`;
    // The library's default: private addresses allowed (a local user owns the machine).
    await loadMediaBytes(url, 'image', { allowPrivateNetwork: true, network: resolver(LOCAL) });
    expect(hits.local).toBe(1);
    const e = await loadMediaBytes(url, 'image', { allowPrivateNetwork: false, network: resolver(LOCAL) }).catch((x: MediaError) => x);
    expect((e as MediaError).code).toBe('private_address');
    expect(hits.local).toBe(1);
  });
});
