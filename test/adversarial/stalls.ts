// Collects a server child's event-loop stalls as reported by stall_monitor.mjs (which the child preloads).
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

const MONITOR = join(import.meta.dirname, 'stall_monitor.mjs');

/** Environment for spawnCli that preloads the monitor into the server's main thread. */
export function stallMonitorEnv(): Record<string, string> {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${JSON.stringify(MONITOR)}`.trim() };
}

export interface Stall { gap: number; queued: number; own: number }

/** Records the child's stalls from now until the returned function is called. */
export function recordStalls(child: ChildProcessWithoutNullStreams): () => Stall[] {
  const out: Stall[] = [];
  let buf = '';
  const on = (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      const m = /^phi4mm-stall gap=(\d+) queued=(-?\d+) own=(-?\d+)$/.exec(l);
      if (m) out.push({ gap: Number(m[1]), queued: Number(m[2]), own: Number(m[3]) });
    }
  };
  child.stderr.on('data', on);
  return () => { child.stderr.off('data', on); return out; };
}

/** The longest own stall (not counting time spent waiting for a CPU); 0 when there was none over 50 ms. */
export const longestOwnStall = (s: Stall[]) => Math.max(0, ...s.map((x) => x.own));
