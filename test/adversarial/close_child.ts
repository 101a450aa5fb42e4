// Child process for close.test.ts: a server that owns its Phi4MM (as `phi4mm serve` does) serves a long prompt
// and a stream, is closed with the stream still running, and the process must then end on its own: no
// process.exit here. It prints one JSON line of what it saw; argv[2] is the model folder.
import { readdirSync } from 'node:fs';
import { Phi4MM } from '../../src/api/phi4mm.js';
import { ChatServer } from '../../src/server/server.js';

const threads = () => readdirSync('/proc/self/task').length;
const post = (url: string, body: object) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'phi4mm', ...body }) });

const before = threads();
const model = await Phi4MM.fromPretrained(process.argv[2]!);
const server = new ChatServer(model, { port: 0, closeEngine: true });
const { url } = await server.listen();
// A prompt long enough for the prompt worker, then a stream that is still running when the server closes.
const long = await post(url, { messages: [{ role: 'user', content: 'word '.repeat(3000) }], max_tokens: 2 });
const stream = await post(url, { messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 5000, stream: true });
const reader = stream.body!.getReader();
await reader.read();
const running = threads();
await server.close(2000);
let rest = '';
for (;;) { const { done, value } = await reader.read(); if (done) break; rest += new TextDecoder().decode(value); }
const t0 = performance.now();
const after = await model.chat([{ role: 'user', content: 'hi' }]).then(() => 'answered', (e: Error & { code?: string }) => `${e.name}: ${e.code}: ${e.message}`);
console.log(JSON.stringify({ longStatus: long.status, streamEnded: rest.trimEnd().endsWith('data: [DONE]'), threads: { before, running, closed: threads() }, chatAfterClose: after, chatAfterCloseMs: performance.now() - t0 }));
