// /health latency probe for a server in another process. It runs in a process of its own, so the test's own work
// (building and sending 16 MB bodies) does not count as a server stall, and it is open-loop: a probe starts every
// 10 ms whether or not the earlier ones have answered. A closed loop (send, wait, send) sees one slow probe per
// stall, however long the stall, and its p99 misses it; here a 2 s stall makes 200 slow probes.
import { spawn } from 'node:child_process';

const PINGER = `const http = require('node:http');
const url = process.argv[1], agent = new http.Agent({ keepAlive: true });
const lat = []; let open = 0, stopping = false, first = true;
const settle = () => { open--; if (stopping && !open) process.send(lat); };
const one = () => { const t = performance.now(); open++;
  http.get(url, { agent }, (r) => { r.resume(); r.on('end', () => { lat.push(performance.now() - t);
    if (first) { first = false; process.send('ready'); }
    settle(); }); }).on('error', settle); };
const timer = setInterval(one, 10);
one();
process.on('message', () => { stopping = true; clearInterval(timer); if (!open) process.send(lat); });`;

export interface Latency { n: number; p50: number; p99: number; max: number }

/** Starts probing `url` (resolves once the first probe answered); the returned function stops and summarizes. */
export async function probe(url: string): Promise<() => Promise<Latency>> {
  const pinger = spawn(process.execPath, ['-e', PINGER, url], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((ok, fail) => { pinger.once('message', ok); pinger.once('exit', (c) => fail(new Error(`the /health pinger exited (${c})`))); });
  return async () => {
    const got = new Promise<number[]>((r) => pinger.on('message', (m) => Array.isArray(m) && r(m as number[])));
    pinger.send('stop');
    const lat = (await got).sort((a, b) => a - b);
    pinger.kill();
    return { n: lat.length, p50: lat[lat.length >> 1]!, p99: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]!, max: lat.at(-1)! };
  };
}

export const describeLatency = (l: Latency) => `${l.n} probes, p50 ${l.p50.toFixed(1)} p99 ${l.p99.toFixed(1)} max ${l.max.toFixed(1)} ms`;

/**
 * A do-nothing HTTP server in its own process, probed alongside the real one: its latency is what this machine's
 * CPU contention alone costs a process that never blocks (a shared runner, other jobs), so the real server can be
 * held to "100 ms beyond that" rather than to a figure only a quiet machine meets.
 */
export async function controlServer(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, ['-e', `require('node:http').createServer((q, r) => r.end('{}')).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`]);
  const port = await new Promise<string>((ok, fail) => { child.stdout.once('data', (d: Buffer) => ok(String(d).trim())); child.once('exit', (c) => fail(new Error(`control server exited (${c})`))); });
  return { url: `http://127.0.0.1:${port}/health`, stop: () => child.kill('SIGKILL') };
}
