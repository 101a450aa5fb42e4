// The README's three examples run as written (against a local tiny checkpoint folder instead of the hub id).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Phi4MM } from '../src/api/phi4mm.js';
import { ChatServer } from '../src/server/server.js';
import { tinyCheckpoint } from './helpers/tiny_checkpoint.js';
import { ROOT } from './helpers/golden.js';

const tsx = join(ROOT, 'node_modules', '.bin', 'tsx');
const run = (file: string, env: Record<string, string>) =>
  execFileSync(tsx, [join(ROOT, 'examples', file)], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });

describe('README examples', () => {
  it('library with an image, and with audio + image (streamed)', () => {
    const env = { PHI4MM_MODEL: tinyCheckpoint() };
    expect(run('image.ts', env)).toMatch(/prompt [\d.]+ tok\/s, completion [\d.]+ tok\/s/);
    expect(run('audio-image.ts', env).trim().length).toBeGreaterThan(0);
  });

  it('server + official client', async () => {
    const server = new ChatServer(await Phi4MM.fromPretrained(tinyCheckpoint()), { port: 0 });
    const { url } = await server.listen();
    try {
      const out = await new Promise<string>((ok, fail) => {
        import('node:child_process').then(({ execFile }) =>
          execFile(tsx, [join(ROOT, 'examples', 'server-client.ts')], { cwd: ROOT, env: { ...process.env, PHI4MM_URL: `${url}/v1` }, timeout: 120_000 }, (e, so) => (e ? fail(e) : ok(so))));
      });
      expect(out).toMatch(/completion_tokens/);
    } finally {
      await server.close();
    }
  });
});
