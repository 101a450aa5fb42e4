// server.close() on a server that owns its model (closeEngine, as `phi4mm serve` sets) closes the Phi4MM: its
// engine worker and prompt worker threads stop, later calls fail at once instead of waiting forever, and the
// process then ends by itself. Run in a child process (close_child.ts), which never calls process.exit.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { ROOT } from '../helpers/golden.js';

describe('closing a server that owns its Phi4MM', () => {
  it('stops the model worker threads; the process exits on its own right after', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/adversarial/close_child.ts'), tinyCheckpoint()], { cwd: ROOT });
    let out = '', err = '', reportedAt = 0;
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (!reportedAt && out.includes('\n')) reportedAt = performance.now(); });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((ok) => child.once('exit', (c) => ok(c)));
    clearTimeout(killer);
    const exitMs = performance.now() - reportedAt;
    expect(code, err).toBe(0);
    const r = JSON.parse(out.trim()) as { longStatus: number; streamEnded: boolean; threads: { before: number; running: number; closed: number }; chatAfterClose: string; chatAfterCloseMs: number };
    expect(r.longStatus).toBe(200);
    expect(r.streamEnded).toBe(true); // the running stream was ended ([DONE]) by the close
    // The engine worker and the prompt worker (which served the 15 000-character prompt) are gone.
    expect(r.threads.running - r.threads.closed).toBeGreaterThanOrEqual(2);
    expect(r.chatAfterClose).toMatch(/^EngineError: engine_closed: the engine was closed/);
    expect(r.chatAfterCloseMs).toBeLessThan(1000);
    expect(exitMs).toBeLessThan(3000); // nothing left holds the event loop open
  });
});
