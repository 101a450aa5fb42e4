// The README's OpenAI-surface examples (examples/openai/) run as written against a real server on the tiny checkpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/golden.js';
import { startServer, type Running } from './helpers.js';

let s: Running;
beforeAll(async () => { s = await startServer({ openai: { transcriptionMaxTokens: 8 } }); }, 120_000);
afterAll(async () => { await s?.close(); });

const run = (file: string) => new Promise<string>((ok, fail) =>
  execFile(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'examples', 'openai', file)], { cwd: ROOT, env: { ...process.env, PHI4MM_URL: `${s.url}/v1` }, timeout: 180_000 }, (e, out, err) => (e ? fail(new Error(`${e.message}\n${err}`)) : ok(out))));

describe('README OpenAI examples', () => {
  it('tools, structured output, transcription and the Responses API', async () => {
    expect(await run('tools.ts')).toMatch(/^tool_calls get_weather \{ city: '(Paris|Oslo)' \}/);
    expect(await run('structured.ts')).toMatch(/city:.*population:.*capital:/s);
    expect(await run('transcribe.ts')).toMatch(/^1\n00:00:00,000 --> \d\d:\d\d:\d\d,\d\d\d\n/);
    expect(await run('responses.ts')).toMatch(/(completed|incomplete), \d+ tokens/);
  }, 400_000);
});
