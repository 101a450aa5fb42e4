// Load + ISQ of a checkpoint folder: wall and CPU seconds, peak RSS against the final weight footprint.
//   npx tsx bench/load_isq.ts --model /work/ckpt/phi4mm-real [--isq q4k] [--threads 2]
import { parseArgs } from 'node:util';
import { Phi4MM, type IsqKind } from '../src/api/phi4mm.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, isq: { type: 'string', default: 'q4k' }, threads: { type: 'string', default: '2' } } });
if (!values.model) throw new Error('--model DIR is required');
const c0 = process.cpuUsage();
const t0 = performance.now();
const m = await Phi4MM.fromPretrained(values.model, { isq: values.isq as IsqKind, backend: 'native', threads: Number(values.threads) });
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const weights = Object.values(m.loadReport.bytes).reduce((a, b) => a + b, 0);
const rss = process.memoryUsage().rss, peak = process.resourceUsage().maxRSS * 1024;
console.log(m.describe());
console.log(JSON.stringify({
  isq: values.isq, threads: Number(values.threads), load_s: +wall.toFixed(2), cpu_s: +((c.user + c.system) / 1e6).toFixed(2),
  weights_gib: +(weights / 2 ** 30).toFixed(3), rss_after_gib: +(rss / 2 ** 30).toFixed(3), peak_rss_gib: +(peak / 2 ** 30).toFixed(3),
  peak_over_final: +(peak / rss).toFixed(3),
}));
