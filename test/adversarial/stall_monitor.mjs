// Test-only preload for a server child process (NODE_OPTIONS=--import this file; see stalls.ts): a 10 ms timer on
// the main thread reports every late turn of the event loop with how much of the delay the thread spent waiting
// for a CPU (/proc/<pid>/task/<pid>/schedstat, run-queue time). What remains is the loop's own stall (busy or
// blocked), which a loaded machine cannot inflate, unlike /health latency seen from outside.
import { isMainThread } from 'node:worker_threads';
import { readFileSync } from 'node:fs';

if (isMainThread) {
  const file = `/proc/${process.pid}/task/${process.pid}/schedstat`;
  const waitedMs = () => Number(readFileSync(file, 'utf8').split(' ')[1]) / 1e6;
  let last = performance.now(), lastWait = waitedMs();
  const timer = setInterval(() => {
    const now = performance.now(), wait = waitedMs();
    const gap = now - last, queued = wait - lastWait;
    if (gap > 50) process.stderr.write(`phi4mm-stall gap=${gap.toFixed(0)} queued=${queued.toFixed(0)} own=${(gap - queued).toFixed(0)}\n`);
    last = now;
    lastWait = wait;
  }, 10);
  timer.unref();
}
