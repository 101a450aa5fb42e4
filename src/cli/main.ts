// The `phi4mm` command: serve (OpenAI-compatible HTTP server), run (interactive chat), quantize (save ISQ).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createInterface } from 'node:readline/promises';
import { existsSync } from 'node:fs';
import { Phi4MM, type LoadOptions } from '../api/phi4mm.js';
import { ChatServer } from '../server/server.js';
import { ProgressBar, formatBytes } from './progress.js';
import type { ChatMessage, ContentPart } from '../api/types.js';

const DEFAULT_MODEL = 'microsoft/Phi-4-multimodal-instruct';

const HELP = `phi4mm — run Microsoft Phi-4-multimodal-instruct (text + image + audio → text) on the CPU

Usage:
  phi4mm serve    -m <hub-id|folder> [-p 1234] [--host 127.0.0.1] [--isq q4k|q8_0|none] [--threads N]
                  [--api-key KEY] [--allow-local-media DIR] [--allow-private-media] [--revision REV]
  phi4mm run      -m <hub-id|folder> [--isq q4k|q8_0|none] [--threads N] [--max-tokens N] [--temperature T]
  phi4mm quantize -m <hub-id|folder> --isq q4k|q8_0 -o <out-folder>
  phi4mm --help | --version

Options:
  -m, --model       hub id (downloaded into the Hugging Face cache, HF_HOME/HF_HUB_CACHE, HF_TOKEN) or a local
                    checkpoint folder (original hub layout or transformers layout). Default ${DEFAULT_MODEL}
      --revision    hub branch, tag or commit (default main)
      --isq         quantize the language model at load: q4k (Q4_K linears, Q8_0 embeddings) or q8_0; default none
      --threads     compute threads (default: all cores)
      --backend     native | reference | auto (default auto)
  -p, --port        port for serve (default 1234)
      --host        address to bind (default 127.0.0.1)
      --api-key     require "Authorization: Bearer KEY"
      --allow-local-media DIR   allow image/audio paths and file:// URLs inside DIR
      --allow-private-media     allow media URLs on loopback/private networks (off: SSRF protection)

In 'run', attach media with /image <path|url> and /audio <path|url> before your message; /reset clears the
conversation; /exit quits.`;

const common = {
  model: { type: 'string', short: 'm' },
  revision: { type: 'string' },
  isq: { type: 'string' },
  threads: { type: 'string' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

class UsageError extends Error {}

function loadOptions(v: Record<string, string | boolean | undefined>): LoadOptions {
  const o: LoadOptions = {};
  if (typeof v['revision'] === 'string') o.revision = v['revision'];
  if (typeof v['isq'] === 'string') {
    const isq = v['isq'].toLowerCase().replace('-', '_');
    if (!['q4k', 'q4_k', 'q8_0', 'q80', 'none'].includes(isq)) throw new UsageError(`--isq must be q4k, q8_0 or none (got "${v['isq']}")`);
    o.isq = isq.startsWith('q4') ? 'q4k' : isq === 'none' ? 'none' : 'q8_0';
  }
  if (typeof v['threads'] === 'string') {
    const n = Number(v['threads']);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads must be a positive integer (got "${v['threads']}")`);
    o.threads = n;
  }
  if (typeof v['backend'] === 'string') {
    if (!['native', 'reference', 'auto'].includes(v['backend'])) throw new UsageError(`--backend must be native, reference or auto`);
    o.backend = v['backend'] as LoadOptions['backend'];
  }
  const bars = new Map<string, ProgressBar>();
  o.onProgress = (p) => {
    let bar = bars.get(p.stage);
    if (!bar) bars.set(p.stage, (bar = new ProgressBar(p.stage.padEnd(9))));
    if (p.done) bar.finish(p.detail ?? 'done');
    else bar.update(p.loaded, p.total, p.stage === 'download' ? `${formatBytes(p.loaded)} / ${formatBytes(p.total)} ${p.detail ?? ''}` : (p.detail ?? ''));
  };
  return o;
}

async function load(v: Record<string, string | boolean | undefined>): Promise<Phi4MM> {
  const id = typeof v['model'] === 'string' ? v['model'] : DEFAULT_MODEL;
  const model = await Phi4MM.fromPretrained(id, loadOptions(v));
  process.stderr.write(`loaded ${id}: ${model.describe()}\n`);
  return model;
}

async function serve(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: { ...common, port: { type: 'string', short: 'p' }, host: { type: 'string' }, 'api-key': { type: 'string' }, 'allow-local-media': { type: 'string' }, 'allow-private-media': { type: 'boolean' } },
  });
  if (v.help) return void console.log(HELP);
  const port = Number(v.port ?? 1234);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535 (got "${v.port}")`);
  if (v['allow-local-media'] && !existsSync(v['allow-local-media'])) throw new UsageError(`--allow-local-media: no such directory ${v['allow-local-media']}`);
  const model = await load(v);
  const server = new ChatServer(model, {
    port, host: v.host ?? '127.0.0.1',
    ...(v['api-key'] ? { apiKey: v['api-key'] } : {}),
    ...(v['allow-local-media'] ? { allowLocalMedia: v['allow-local-media'] } : {}),
    allowPrivateMedia: v['allow-private-media'] ?? false,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const { url } = await server.listen();
  process.stderr.write(`serving ${model.modelId} on ${url}/v1 (POST /v1/chat/completions, GET /v1/models, GET /health); chat page: ${url}/\n`);
  const stop = async (sig: string) => {
    process.stderr.write(`\n${sig}: shutting down\n`);
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { ...common, 'max-tokens': { type: 'string' }, temperature: { type: 'string' } } });
  if (v.help) return void console.log(HELP);
  const model = await load(v);
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const history: ChatMessage[] = [];
  let pending: ContentPart[] = [];
  const maxTokens = Number(v['max-tokens'] ?? 512), temperature = Number(v.temperature ?? 0);
  process.stdout.write('Type a message (/image PATH, /audio PATH, /reset, /exit).\n');
  rl.setPrompt('> ');
  rl.prompt();
  // The async iterator buffers lines, so piped input is read in full (question() would drop lines).
  for await (const raw of rl) {
    const line = raw.trim();
    if (!line) { rl.prompt(); continue; }
    if (line === '/exit' || line === '/quit') break;
    if (line === '/reset') { history.length = 0; pending = []; process.stdout.write('(conversation cleared)\n'); rl.prompt(); continue; }
    const media = /^\/(image|audio)\s+(.+)$/.exec(line);
    if (media) {
      pending.push(media[1] === 'image' ? { type: 'image', image: media[2]!.trim() } : { type: 'audio', audio: media[2]!.trim() });
      process.stdout.write(`(attached ${media[1]} ${media[2]!.trim()})\n`);
      rl.prompt();
      continue;
    }
    const user: ChatMessage = { role: 'user', content: pending.length ? [...pending, { type: 'text', text: line }] : line };
    const ctrl = new AbortController();
    const onSigint = () => ctrl.abort();
    process.once('SIGINT', onSigint);
    let answer = '';
    try {
      for await (const ev of model.streamEvents([...history, user], { maxTokens, temperature, signal: ctrl.signal })) {
        if (ev.type === 'delta') { answer += ev.text; process.stdout.write(ev.text); }
        else process.stdout.write(`\n[${ev.usage.completion_tokens} tokens, ${ev.usage.avg_prompt_tok_per_sec.toFixed(1)} prompt tok/s, ${ev.usage.avg_compl_tok_per_sec.toFixed(1)} tok/s${ev.finishReason === 'length' ? ', stopped at max tokens' : ''}]\n`);
      }
      history.push(user, { role: 'assistant', content: answer });
      pending = [];
    } catch (e) {
      process.stdout.write(`\nerror: ${(e as Error).message}\n`);
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
    rl.prompt();
  }
  rl.close();
}

async function quantize(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { ...common, out: { type: 'string', short: 'o' } } });
  if (v.help) return void console.log(HELP);
  if (!v.out) throw new UsageError('quantize needs -o <out-folder>');
  if (!v.isq || v.isq === 'none') throw new UsageError('quantize needs --isq q4k or --isq q8_0');
  const model = await load(v);
  const t0 = Date.now();
  await model.saveQuantized(v.out);
  process.stderr.write(`wrote ${v.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s; load it with -m ${v.out}\n`);
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve': await serve(rest); return 0;
      case 'run': await run(rest); return 0;
      case 'quantize': await quantize(rest); return 0;
      case '--version': case '-v': console.log((await import('../version.js')).VERSION); return 0;
      case undefined: case '--help': case '-h': case 'help': console.log(HELP); return 0;
      default: throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`phi4mm: ${(e as Error).message}\nRun "phi4mm --help" for usage.\n`);
      return 2;
    }
    process.stderr.write(`phi4mm: ${(e as Error).message}\n`);
    return 1;
  }
}
