// Subcommand option tables: one source for parsing, `phi4mm <cmd> --help` (with defaults) and validation.
import type { ParseArgsConfig } from 'node:util';
import { DEFAULT_LIMITS } from '../server/limits.js';

export const DEFAULT_MODEL = 'microsoft/Phi-4-multimodal-instruct';

export interface OptionDoc { name: string; short?: string; type: 'string' | 'boolean'; multiple?: boolean; arg?: string; help: string; default?: string }

const MODEL_OPTIONS: OptionDoc[] = [
  { name: 'model', short: 'm', type: 'string', arg: 'ID|DIR', help: 'hub id (downloaded into the Hugging Face cache; HF_HOME, HF_HUB_CACHE, HF_TOKEN) or a local checkpoint folder', default: DEFAULT_MODEL },
  { name: 'revision', type: 'string', arg: 'REV', help: 'hub branch, tag or commit', default: 'main' },
  { name: 'isq', type: 'string', arg: 'q4k|q8_0|none', help: 'quantize the language model at load (q4k: Q4_K linears, Q8_0 embeddings)', default: 'none' },
  { name: 'threads', type: 'string', arg: 'N', help: 'compute threads', default: 'all cores' },
  { name: 'encoder-precision', type: 'string', arg: 'f32|bf16', help: 'the image/audio encoders\' compute: f32 (exact) or bf16 (activations rounded to bf16, ~1.7x faster linears on AVX512-BF16; see README "What is exact")', default: 'f32' },
  { name: 'quantize-encoders', type: 'boolean', help: 'with --isq, also quantize the image/audio encoders\' linears (see README "Memory")' },
  { name: 'quantize-adapters', type: 'boolean', help: 'with --isq, also quantize the vision/speech LoRA adapters (see README "Memory")' },
  { name: 'eager-media', type: 'boolean', help: 'read the image/audio encoders and the LoRA adapters at start instead of on the first image or audio request (they are checked at start either way)' },
  { name: 'backend', type: 'string', arg: 'auto|native|reference', help: 'compute backend', default: 'auto' },
  { name: 'kv-cache-gb', type: 'string', arg: 'GIB', help: 'KV cache budget in GiB (printed at start-up)', default: '40% of the free RAM after loading' },
  { name: 'max-running', type: 'string', arg: 'N', help: 'sequences generated together; more requests wait', default: '8' },
  { name: 'help', short: 'h', type: 'boolean', help: 'show this help' },
];

const L = DEFAULT_LIMITS;
export const COMMANDS: Record<string, { usage: string; about: string; options: OptionDoc[] }> = {
  serve: {
    usage: 'phi4mm serve -m <hub-id|folder> [options]',
    about: 'OpenAI-compatible HTTP server (POST /v1/chat/completions, /v1/completions, /v1/responses, /v1/audio/transcriptions and /translations; GET /v1/models, /v1/models/{id}, /metrics, /health; the chat page at /). The port is bound before the model loads; /health says "loading" until it is ready.',
    options: [
      ...MODEL_OPTIONS,
      { name: 'port', short: 'p', type: 'string', arg: 'PORT', help: 'port to listen on', default: '1234' },
      { name: 'host', type: 'string', arg: 'ADDR', help: 'address to bind', default: '127.0.0.1' },
      { name: 'api-key', type: 'string', arg: 'KEY', help: 'require "Authorization: Bearer KEY" (must not be empty)', default: 'none (open)' },
      { name: 'served-model-name', type: 'string', multiple: true, arg: 'NAME', help: 'model name(s) clients use; others get 404 model_not_found (repeatable)', default: 'phi4mm' },
      { name: 'cors', type: 'string', multiple: true, arg: 'ORIGIN', help: 'allow browser calls from ORIGIN ("*" for any; repeatable)', default: 'off' },
      { name: 'allowed-host', type: 'string', multiple: true, arg: 'HOST', help: 'accept only these Host headers (repeatable; guards against DNS rebinding)', default: 'any' },
      { name: 'allow-local-media', type: 'string', arg: 'DIR', help: 'allow image/audio paths and file:// URLs inside DIR', default: 'refused' },
      { name: 'allow-private-media', type: 'boolean', help: 'allow media URLs on loopback/private networks (off: SSRF protection)' },
      { name: 'max-queue', type: 'string', arg: 'N', help: 'requests that may wait while --max-running run (429 beyond)', default: '16' },
      { name: 'max-body-bytes', type: 'string', arg: 'N', help: 'largest request body', default: String(L.maxBodyBytes) },
      { name: 'max-media-bytes', type: 'string', arg: 'N', help: 'largest encoded image or audio item', default: String(L.maxMediaBytes) },
      { name: 'max-media-items', type: 'string', arg: 'N', help: 'images + audio clips per request', default: String(L.maxMediaItems) },
      { name: 'max-image-pixels', type: 'string', arg: 'N', help: 'pixels per image (from its header)', default: String(L.maxImagePixels) },
      { name: 'max-total-pixels', type: 'string', arg: 'N', help: 'pixels of all images of a request', default: String(L.maxTotalPixels) },
      { name: 'max-audio-seconds', type: 'string', arg: 'S', help: 'seconds of audio per request', default: String(L.maxAudioSeconds) },
      { name: 'max-prompt-chars', type: 'string', arg: 'N', help: 'characters of message text per request', default: String(L.maxPromptChars) },
      { name: 'max-tokens-limit', type: 'string', arg: 'N', help: 'largest max_tokens a request may ask for', default: String(L.maxTokens) },
      { name: 'shutdown-grace', type: 'string', arg: 'S', help: 'seconds running requests get on SIGTERM/SIGINT (a second signal exits at once)', default: '10' },
      { name: 'log-format', type: 'string', arg: 'text|json', help: 'one log line per request on stderr', default: 'text' },
    ],
  },
  run: {
    usage: 'phi4mm run -m <hub-id|folder> [options]',
    about: 'Interactive chat in the terminal (or answers piped lines). Commands: /image PATH|URL, /audio PATH|URL, /reset, /help, /exit. Ctrl-C stops an answer; at the prompt it exits.',
    options: [
      ...MODEL_OPTIONS,
      { name: 'max-tokens', type: 'string', arg: 'N', help: 'longest answer in tokens', default: '512' },
      { name: 'temperature', type: 'string', arg: 'T', help: 'sampling temperature (0 = greedy)', default: '0' },
    ],
  },
  quantize: {
    usage: 'phi4mm quantize -m <hub-id|folder> --isq q4k|q8_0 -o <out-folder>',
    about: 'Quantize once and save a folder that loads without re-quantizing. The output folder is checked before any work.',
    options: [...MODEL_OPTIONS, { name: 'out', short: 'o', type: 'string', arg: 'DIR', help: 'output folder (new or empty)' }],
  },
};

export function parseConfig(cmd: string): NonNullable<ParseArgsConfig['options']> {
  const o: NonNullable<ParseArgsConfig['options']> = {};
  for (const d of COMMANDS[cmd]!.options) o[d.name] = { type: d.type, ...(d.short ? { short: d.short } : {}), ...(d.multiple ? { multiple: true } : {}) };
  return o;
}

export function commandHelp(cmd: string): string {
  const c = COMMANDS[cmd]!;
  const rows = c.options.map((d) => [`${d.short ? `-${d.short}, ` : '    '}--${d.name}${d.arg ? ` ${d.arg}` : ''}`, `${d.help}${d.default ? ` (default: ${d.default})` : ''}`]);
  const w = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  return `Usage: ${c.usage}\n\n${c.about}\n\nOptions:\n${rows.map(([a, b]) => `  ${a!.padEnd(w)}${b}`).join('\n')}`;
}

export const HELP = `phi4mm — run Microsoft Phi-4-multimodal-instruct (text + image + audio → text) on the CPU

Usage:
  phi4mm serve    -m <hub-id|folder> [options]     OpenAI-compatible server
  phi4mm run      -m <hub-id|folder> [options]     interactive chat
  phi4mm quantize -m <hub-id|folder> --isq q4k|q8_0 -o <out-folder>
  phi4mm <command> --help                          options of a command, with defaults
  phi4mm --help | --version`;
