// The `phi4mm` command: serve (OpenAI-compatible HTTP server), run (interactive chat), quantize (save ISQ).
import { parseArgs } from 'node:util';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Phi4MM, type EngineOptions, type LoadOptions, type LoadProgress } from '../api/phi4mm.js';
import { ChatServer, type ServerOptions } from '../server/server.js';
import { ProgressBar, formatBytes } from './progress.js';
import { COMMANDS, DEFAULT_MODEL, HELP, commandHelp, parseConfig } from './options.js';
import { runChat } from './run.js';

export class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(cmd: string, argv: string[]): Values | null {
  const { values } = parseArgs({ args: argv, options: parseConfig(cmd), strict: true });
  if (values['help']) { console.log(commandHelp(cmd)); return null; }
  return values as Values;
}

const str = (v: Values, k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);

function positiveNumber(v: Values, k: string, integer = true): number | undefined {
  const s = str(v, k);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!(Number.isFinite(n) && n > 0 && (!integer || Number.isInteger(n)))) throw new UsageError(`--${k} must be a positive ${integer ? 'integer' : 'number'} (got "${s}")`);
  return n;
}

export function loadOptions(v: Values, onProgress?: (p: LoadProgress) => void): LoadOptions {
  const o: LoadOptions = {};
  if (str(v, 'revision')) o.revision = str(v, 'revision')!;
  const isqIn = str(v, 'isq');
  if (isqIn !== undefined) {
    const isq = isqIn.toLowerCase().replace('-', '_');
    if (!['q4k', 'q4_k', 'q8_0', 'q80', 'none'].includes(isq)) throw new UsageError(`--isq must be q4k, q8_0 or none (got "${isqIn}")`);
    o.isq = isq.startsWith('q4') ? 'q4k' : isq === 'none' ? 'none' : 'q8_0';
  }
  const threads = positiveNumber(v, 'threads');
  if (threads) o.threads = threads;
  const precision = str(v, 'encoder-precision');
  if (precision !== undefined) {
    if (!['f32', 'bf16'].includes(precision)) throw new UsageError(`--encoder-precision must be f32 or bf16 (got "${precision}")`);
    o.encoderPrecision = precision as 'f32' | 'bf16';
  }
  if (v['quantize-encoders'] === true) o.quantizeEncoders = true;
  if (v['quantize-adapters'] === true) o.quantizeAdapters = true;
  if (v['eager-media'] === true) o.lazyMedia = false;
  const backend = str(v, 'backend');
  if (backend !== undefined) {
    if (!['native', 'reference', 'auto'].includes(backend)) throw new UsageError('--backend must be native, reference or auto');
    o.backend = backend as LoadOptions['backend'];
  }
  // The serving engine (src/engine/): KV budget and concurrency.
  const kvGb = positiveNumber(v, 'kv-cache-gb', false);
  if (kvGb !== undefined) o.engine = { ...o.engine, kvCacheGb: kvGb };
  const maxRunning = positiveNumber(v, 'max-running');
  if (maxRunning !== undefined) o.engine = { ...o.engine, maxRunning };
  // serve's --max-queue: the engine admits this many waiting requests beyond the running ones (429 beyond).
  const maxQueue = str(v, 'max-queue') === '0' ? 0 : positiveNumber(v, 'max-queue');
  if (maxQueue !== undefined) o.engine = { ...o.engine, maxWaiting: maxQueue };
  const bars = new Map<string, ProgressBar>();
  o.onProgress = (p) => {
    onProgress?.(p);
    let bar = bars.get(p.stage);
    if (!bar) bars.set(p.stage, (bar = new ProgressBar(p.stage.padEnd(9))));
    if (p.done) bar.finish(p.detail ?? 'done');
    else bar.update(p.loaded, p.total, p.stage === 'download' ? `${formatBytes(p.loaded)} / ${formatBytes(p.total)} ${p.detail ?? ''}` : (p.detail ?? ''));
  };
  return o;
}

/** The load line, with the quantization the weights really have (a pre-quantized folder loads with isq none). */
export function describeLoad(id: string, model: Phi4MM): string {
  const quant = Object.keys(model.loadReport.bytes).filter((d) => d.startsWith('q'));
  const isq = model.loadReport.isq !== 'none' ? `${model.loadReport.isq} (quantized at load)` : quant.length ? `pre-quantized ${quant.join(' + ')}` : 'none';
  return `loaded ${id}: ${model.describe()}; ISQ: ${isq}`;
}

export async function load(v: Values, onProgress?: (p: LoadProgress) => void, engine?: EngineOptions): Promise<Phi4MM> {
  const id = str(v, 'model') ?? DEFAULT_MODEL;
  const o = loadOptions(v, onProgress);
  if (engine) o.engine = { ...o.engine, ...engine };
  const model = await Phi4MM.fromPretrained(id, o);
  process.stderr.write(`${describeLoad(id, model)}\n`);
  return model;
}

function serverOptions(v: Values): ServerOptions {
  const port = Number(str(v, 'port') ?? 1234);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535 (got "${str(v, 'port')}")`);
  const apiKey = str(v, 'api-key');
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key is empty; give a key, or leave the option out to run without one');
  const local = str(v, 'allow-local-media');
  if (local !== undefined && !(existsSync(local) && statSync(local).isDirectory())) throw new UsageError(`--allow-local-media: no such directory ${local}`);
  const logFormat = str(v, 'log-format') ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError(`--log-format must be text or json (got "${logFormat}")`);
  const list = (k: string) => (Array.isArray(v[k]) ? (v[k] as string[]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : undefined);
  // The server owns the model it loads: closing the server stops the model's worker threads.
  const o: ServerOptions = { port, host: str(v, 'host') ?? '127.0.0.1', allowPrivateMedia: v['allow-private-media'] === true, logFormat, log: (l) => process.stderr.write(`${l}\n`), closeEngine: true };
  if (apiKey !== undefined) o.apiKey = apiKey;
  if (local !== undefined) o.allowLocalMedia = local;
  if (list('served-model-name')?.length) o.servedModelNames = list('served-model-name')!;
  if (list('cors')?.length) o.corsOrigins = list('cors')!;
  if (list('allowed-host')?.length) o.allowedHosts = list('allowed-host')!;
  const nums: Array<[string, keyof ServerOptions, boolean]> = [
    ['max-queue', 'maxQueue', true], ['max-body-bytes', 'maxBodyBytes', true], ['max-media-bytes', 'maxMediaBytes', true],
    ['max-media-items', 'maxMediaItems', true], ['max-image-pixels', 'maxImagePixels', true], ['max-total-pixels', 'maxTotalPixels', true],
    ['max-audio-seconds', 'maxAudioSeconds', false], ['max-prompt-chars', 'maxPromptChars', true], ['max-tokens-limit', 'maxTokens', true],
  ];
  for (const [flag, key, integer] of nums) {
    const n = flag === 'max-queue' && str(v, flag) === '0' ? 0 : positiveNumber(v, flag, integer);
    if (n !== undefined) (o as Record<string, unknown>)[key] = n;
  }
  const grace = positiveNumber(v, 'shutdown-grace', false);
  if (grace !== undefined) o.shutdownGraceMs = grace * 1000;
  return o;
}

async function serve(argv: string[]): Promise<void> {
  const v = parse('serve', argv);
  if (!v) return;
  const opts = serverOptions(v);
  loadOptions(v); // option errors before binding
  // Bind first: a busy port fails now, not after minutes of loading; /health reports progress meanwhile.
  const server = new ChatServer(null, opts);
  const { url } = await server.listen();
  process.stderr.write(`listening on ${url}/v1 (loading the model; GET /health reports progress)\n`);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) { process.stderr.write(`${sig} again: exiting now\n`); process.exit(sig === 'SIGINT' ? 130 : 143); }
    process.stderr.write(`\n${sig}: shutting down (running requests get ${(opts.shutdownGraceMs ?? 10_000) / 1000} s; send it again to exit now)\n`);
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const model = await load(v, (p) => server.setLoading({ stage: p.stage, progress: p.total > 0 ? Math.min(1, p.loaded / p.total) : 0 }));
  if (server.shuttingDown) { await model.close(); return; } // a signal came while loading
  server.setEngine(model);
  process.stderr.write(`serving ${server.modelNames().join(', ')} on ${url}/v1 (chat/completions, completions, responses, audio/transcriptions, audio/translations, models; GET /metrics, /health); chat page: ${url}/\n`);
}

/** The output folder must be new or empty, and its parent writable: checked before minutes of quantizing. */
export function checkOutputFolder(out: string): void {
  const abs = resolve(out);
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory()) throw new UsageError(`-o ${out} is a file; give a new or empty folder`);
    if (readdirSync(abs).length) throw new UsageError(`-o ${out} is not empty; give a new or empty folder`);
    try { accessSync(abs, constants.W_OK); } catch { throw new UsageError(`-o ${out} is not writable`); }
    return;
  }
  let parent = dirname(abs);
  while (!existsSync(parent)) parent = dirname(parent);
  try { accessSync(parent, constants.W_OK); } catch { throw new UsageError(`cannot create -o ${out}: ${parent} is not writable`); }
}

async function quantize(argv: string[]): Promise<void> {
  const v = parse('quantize', argv);
  if (!v) return;
  const out = str(v, 'out');
  if (!out) throw new UsageError('quantize needs -o <out-folder>');
  const isq = str(v, 'isq');
  if (!isq || isq === 'none') throw new UsageError('quantize needs --isq q4k or --isq q8_0');
  checkOutputFolder(out);
  // The inline engine host: the command only loads and saves, so no worker thread is needed. (Before saveQuantized
  // saved inside the engine worker, the worker host here cost a second load on this thread: bf16 checkpoint → q4k
  // at 2 threads on the Zen 1-class machine, 3 min 4 s against 2 min 6 s.)
  const model = await load(v, undefined, { host: 'inline' });
  const t0 = Date.now();
  try {
    await model.saveQuantized(out);
  } finally {
    await model.close();
  }
  process.stderr.write(`wrote ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s; load it with -m ${out}\n`);
}

async function run(argv: string[]): Promise<void> {
  const v = parse('run', argv);
  if (!v) return;
  const maxTokens = positiveNumber(v, 'max-tokens') ?? 512;
  const temperature = Number(str(v, 'temperature') ?? 0);
  if (!(temperature >= 0 && temperature <= 2)) throw new UsageError(`--temperature must be 0..2 (got "${str(v, 'temperature')}")`);
  await runChat(await load(v), { maxTokens, temperature });
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve': await serve(rest); return 0;
      case 'run': await run(rest); return 0;
      case 'quantize': await quantize(rest); return 0;
      case '--version': case '-v': console.log((await import('../version.js')).VERSION); return 0;
      case undefined: case '--help': case '-h': console.log(HELP); return 0;
      case 'help': console.log(rest[0] && COMMANDS[rest[0]] ? commandHelp(rest[0]) : HELP); return 0;
      default: throw new UsageError(`unknown command "${cmd}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`phi4mm: ${(e as Error).message}\nRun "phi4mm ${cmd && COMMANDS[cmd] ? `${cmd} ` : ''}--help" for usage.\n`);
      return 2;
    }
    process.stderr.write(`phi4mm: ${(e as Error).message}\n`);
    return 1;
  }
}
