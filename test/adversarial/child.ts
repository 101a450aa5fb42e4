// Runs `phi4mm <args>` from the TypeScript sources in a child process (no dependence on a built dist/).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/golden.js';

export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const main = join(ROOT, 'src', 'cli', 'main.ts');
  const code = `import(${JSON.stringify(main)}).then(async (m) => { const c = await m.main(${JSON.stringify(args)}); if (c) process.exit(c); });`;
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, env: { ...process.env, ...env } });
}

/** Resolves with the first stderr/stdout match of `re` (rejects after `ms`). */
export function waitFor(child: ChildProcessWithoutNullStreams, re: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  return new Promise((ok, fail) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${re}; output so far:\n${buf}`)), ms);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) { clearTimeout(timer); child.stderr.off('data', on); child.stdout.off('data', on); ok(m); }
    };
    child.stderr.on('data', on);
    child.stdout.on('data', on);
  });
}

export function exited(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
}
