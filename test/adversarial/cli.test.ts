// `phi4mm run` with piped stdin in a real child process: commands, attachment checks, SIGINT during an answer;
// subcommand help with defaults; quantize and serve refuse bad options before loading anything.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { main } from '../../src/cli/main.js';
import { tinyCheckpoint } from '../helpers/tiny_checkpoint.js';
import { ROOT } from '../helpers/golden.js';
import { exited, spawnCli, waitFor } from './child.js';

let child: ChildProcessWithoutNullStreams | null = null;
afterEach(() => { if (child && child.exitCode === null) child.kill('SIGKILL'); child = null; vi.restoreAllMocks(); });

describe('phi4mm run (piped)', () => {
  it('handles /help, unknown commands, bad and good attachments, and SIGINT during an answer', async () => {
    child = spawnCli(['run', '-m', tinyCheckpoint(), '--max-tokens', '4000']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(child, /Type a message/);
    child.stdin.write(`/help\n/bogus\n/image ${join(ROOT, 'nope.png')}\n/audio ${join(ROOT, 'test/fixtures/audio/tone440_16k_s16.wav')}\nTell me a long story\n`);
    await waitFor(child, /attached audio .*0\.5 s at 16000 Hz/);
    await new Promise((r) => setTimeout(r, 3000)); // the answer is streaming
    child.kill('SIGINT');
    await waitFor(child, /\(stopped\)/);
    child.stdin.end('/reset\n/exit\n'); // input is still read after the stop
    const { code } = await exited(child);
    expect(code).toBe(0);
    expect(out).toMatch(/\/image PATH\|URL/); // /help
    expect(out).toMatch(/unknown command \/bogus; type \/help/);
    expect(out).toMatch(/not attached: image file not found/);
    expect(out).toMatch(/\(stopped\)\n[^]*\(conversation cleared\)/);
    expect(out).not.toMatch(/error:/);
  });
});

describe('CLI options', () => {
  const capture = async (argv: string[]) => {
    let text = '';
    vi.spyOn(console, 'log').mockImplementation((s: unknown) => { text += `${String(s)}\n`; });
    vi.spyOn(process.stderr, 'write').mockImplementation(((s: string) => { text += s; return true; }) as typeof process.stderr.write);
    const code = await main(argv);
    vi.restoreAllMocks();
    return { code, text };
  };

  it('subcommand --help shows that command with defaults', async () => {
    const serve = await capture(['serve', '--help']);
    expect(serve.code).toBe(0);
    expect(serve.text).toMatch(/Usage: phi4mm serve/);
    expect(serve.text).toMatch(/--port PORT .*\(default: 1234\)/);
    expect(serve.text).toMatch(/--max-image-pixels N .*\(default: 36000000\)/);
    expect(serve.text).toMatch(/--shutdown-grace S .*\(default: 10\)/);
    expect(serve.text).not.toMatch(/phi4mm quantize/);
    expect((await capture(['run', '--help'])).text).toMatch(/--max-tokens N .*\(default: 512\)/);
  });

  it('refuses bad options before loading a model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi4mm-cli-'));
    writeFileSync(join(dir, 'taken'), 'x');
    const q = await capture(['quantize', '-m', '/no/such/model', '--isq', 'q4k', '-o', dir]);
    expect(q.code).toBe(2);
    expect(q.text).toMatch(/is not empty; give a new or empty folder/);
    const k = await capture(['serve', '-m', '/no/such/model', '--api-key=']);
    expect(k.code).toBe(2);
    expect(k.text).toMatch(/--api-key is empty/);
    const u = await capture(['serve', '--nope']);
    expect(u.code).toBe(2);
    expect(u.text).toMatch(/phi4mm serve --help/);
  });
});

describe('load line', () => {
  it('names the real quantization of a pre-quantized folder (loaded with isq none)', async () => {
    const { describeLoad } = await import('../../src/cli/main.js');
    const fake = (isq: string, bytes: Record<string, number>) => ({ loadReport: { isq, bytes }, describe: () => 'native backend' }) as unknown as Parameters<typeof describeLoad>[1];
    expect(describeLoad('dir', fake('none', { q4_k: 1, q8_0: 1, bf16: 1 }))).toMatch(/ISQ: pre-quantized q4_k \+ q8_0$/);
    expect(describeLoad('dir', fake('q8_0', { q8_0: 1 }))).toMatch(/ISQ: q8_0 \(quantized at load\)$/);
    expect(describeLoad('dir', fake('none', { bf16: 1 }))).toMatch(/ISQ: none$/);
  });
});
