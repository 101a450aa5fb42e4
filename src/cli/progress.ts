// A one-line progress bar for terminals; silent on non-TTY streams apart from the final line.
export class ProgressBar {
  private last = 0;
  private done = false;
  constructor(private readonly label: string, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(value: number, total: number, detail = ''): void {
    const now = Date.now();
    if (!this.stream.isTTY || (now - this.last < 100 && value < total)) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, value / total) : 0;
    const width = 30;
    const fill = Math.round(frac * width);
    const bar = '█'.repeat(fill) + '░'.repeat(width - fill);
    this.stream.write(`\r${this.label} ${bar} ${(frac * 100).toFixed(1).padStart(5)}% ${detail}`.padEnd(100).slice(0, 120));
  }

  finish(message: string): void {
    if (this.done) return;
    this.done = true;
    this.stream.write(`${this.stream.isTTY ? '\r' : ''}${this.label} ${message}`.padEnd(this.stream.isTTY ? 100 : 0) + '\n');
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
