// The library API: Phi4MM.fromPretrained(idOrPath, options) → chat / streamChat / streamEvents.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { createBackend, type Backend, type BackendKind } from '../tensor/backend.js';
import type { ComputePrecision } from '../tensor/precision.js';
import { StrictWeights, type LoadReport, type StorageDType, type StoragePolicy, type TensorProvider, type WeightSource } from '../nn/weights.js';
import { Tensor } from '../tensor/tensor.js';
import type { Phi4MMConfig } from '../models/phi4mm/config.js';
import { openCheckpoint, type CheckpointProvider } from '../models/phi4mm/checkpoint.js';
import { Phi4MMForCausalLM } from '../models/phi4mm/model.js';
import { PromptError } from '../models/phi4mm/multimodal.js';
import { processImages, type ImageProcessorConfig } from '../models/phi4mm/image_processor.js';
import { extractAudioFeatures } from '../models/phi4mm/audio_processor.js';
import { snapshotDownload } from '../io/hub.js';
import { ST_DTYPE_BYTES } from '../io/safetensors.js';
import { loadImage } from '../io/image.js';
import { loadAudio } from '../io/audio.js';
import { Phi4Tokenizer } from '../text/tokenizer.js';
import { renderChat } from '../text/chat.js';
import { buildInputIds } from '../text/prompt.js';
import { sample, SamplingState, validateSamplingParams, type SamplingParams } from '../text/sampling.js';
import { TokenTextStream } from '../text/stream.js';
import { preparePrompt } from './prompt.js';
import { Messages, toMessageList } from './messages.js';
import { makeUsage, type ChatEngine, type ChatEvent, type ChatMessage, type ChatResult, type FinishReason, type SamplingOptions } from './types.js';
import { saveQuantizedCheckpoint } from './save.js';

export const DEFAULT_MODEL_ID = 'microsoft/Phi-4-multimodal-instruct';

export type IsqKind = 'q4k' | 'q8_0' | 'none';

export interface LoadProgress {
  stage: 'download' | 'load';
  loaded: number;
  total: number;
  detail?: string;
  done?: boolean;
}

export interface LoadOptions {
  /** Hub branch, tag or commit (default main). */
  revision?: string;
  /** In-situ quantization of the language model at load (default 'none': bf16/f32 as stored). */
  isq?: IsqKind;
  /**
   * The image/audio encoders' linears over bf16 weights: 'f32' (exact products, the fixtures' numerics; default)
   * or 'bf16' (activations rounded to bf16, vdpbf16ps: ~1.7x faster on AVX512-BF16; see tensor/precision.ts).
   */
  encoderPrecision?: ComputePrecision;
  /** Also quantize the image/audio encoders' linears with the same format (default false). */
  quantizeEncoders?: boolean;
  /** Compute threads (default: all cores). */
  threads?: number;
  /** 'auto' (native addon, else the TS reference with a warning), 'native' or 'reference'. */
  backend?: BackendKind;
  /** Max image crops (default: preprocessor_config.json `dynamic_hd`, else 36). */
  dynamicHd?: number;
  /** Hugging Face cache folder (default $HF_HUB_CACHE / $HF_HOME/hub). */
  cacheDir?: string;
  hubUrl?: string;
  /** Default $HF_TOKEN. */
  token?: string;
  offline?: boolean;
  onProgress?: (p: LoadProgress) => void;
}

const LOAD_OPTION_KEYS = new Set(['revision', 'isq', 'encoderPrecision', 'quantizeEncoders', 'threads', 'backend', 'dynamicHd', 'cacheDir', 'hubUrl', 'token', 'offline', 'onProgress']);
const SAMPLING_KEYS = new Set(['maxTokens', 'temperature', 'topP', 'topK', 'minP', 'frequencyPenalty', 'presencePenalty', 'repetitionPenalty', 'stop', 'seed', 'signal']);
const DEFAULT_MAX_TOKENS = 1024;

export class ValidationError extends Error {
  override name = 'ValidationError';
}

function validateLoadOptions(o: LoadOptions): void {
  if (o === null || typeof o !== 'object') throw new ValidationError('options must be an object');
  const unknown = Object.keys(o).filter((k) => !LOAD_OPTION_KEYS.has(k));
  if (unknown.length) throw new ValidationError(`unknown option(s) ${unknown.join(', ')}; known: ${[...LOAD_OPTION_KEYS].join(', ')}`);
  if (o.isq !== undefined && !['q4k', 'q8_0', 'none'].includes(o.isq)) throw new ValidationError(`isq must be 'q4k', 'q8_0' or 'none' (got ${JSON.stringify(o.isq)})`);
  if (o.encoderPrecision !== undefined && !['f32', 'bf16'].includes(o.encoderPrecision)) throw new ValidationError(`encoderPrecision must be 'f32' or 'bf16' (got ${JSON.stringify(o.encoderPrecision)})`);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1)) throw new ValidationError(`threads must be a positive integer (got ${JSON.stringify(o.threads)})`);
  if (o.backend !== undefined && !['auto', 'native', 'reference'].includes(o.backend)) throw new ValidationError(`backend must be 'auto', 'native' or 'reference'`);
  if (o.dynamicHd !== undefined && !(Number.isInteger(o.dynamicHd) && o.dynamicHd >= 1)) throw new ValidationError(`dynamicHd must be a positive integer`);
}

/** Where each tensor lives: LM linears follow `isq`, the tied embedding/LM head is Q8_0 under ISQ (decode reads it every token), encoders stay bf16/f32 unless asked. */
export function storagePolicy(isq: IsqKind, quantizeEncoders = false): StoragePolicy {
  return (name, shape) => {
    const k = shape.length === 2 ? shape[1]! : 0;
    const pick = (want: 'q4_k' | 'q8_0'): StorageDType => (want === 'q4_k' && k % 256 === 0 ? 'q4_k' : k % 32 === 0 ? 'q8_0' : 'bf16');
    const isLmLinear = /^model\.layers\.\d+\..*\.base_layer\.weight$/.test(name) || name === 'lm_head.weight';
    if (isq !== 'none' && shape.length === 2) {
      if (isLmLinear) return pick(isq === 'q4k' ? 'q4_k' : 'q8_0');
      if (name === 'model.embed_tokens.weight') return pick('q8_0');
      if (quantizeEncoders && name.startsWith('model.embed_tokens_extend.') && /\.weight$/.test(name) && shape[0]! >= 256) return pick(isq === 'q4k' ? 'q4_k' : 'q8_0');
    }
    return 'bf16'; // bf16 checkpoints stay bf16 in memory (decoded on the fly by the kernels); f32 ones stay f32
  };
}

/** Records every tensor the model takes, so a loaded (quantized) model can be written back out. */
class RecordingWeights implements WeightSource {
  readonly taken = new Map<string, Tensor>();
  constructor(private readonly inner: StrictWeights) {}
  take(name: string, shape: readonly number[], as?: StorageDType): Tensor {
    const t = this.inner.take(name, shape, as);
    this.taken.set(name, t);
    return t;
  }
  takeOptional(name: string, shape: readonly number[], as?: StorageDType): Tensor | null {
    const t = this.inner.takeOptional(name, shape, as);
    if (t) this.taken.set(name, t);
    return t;
  }
  ignore(pred: (n: string) => boolean): void { this.inner.ignore(pred); }
  has(name: string): boolean { return this.inner.has(name); }
}

/** Reports load progress by bytes read. */
function progressProvider(p: CheckpointProvider, cb: ((x: LoadProgress) => void) | undefined): TensorProvider {
  if (!cb) return p;
  const names = p.names();
  const size = (n: string) => { const i = p.info(n); return i.shape.reduce((a, b) => a * b, 1) * ST_DTYPE_BYTES[i.dtype]; };
  const total = names.reduce((a, n) => a + size(n), 0);
  let loaded = 0;
  const tick = (n: string) => { loaded += size(n); cb({ stage: 'load', loaded, total, detail: n }); };
  return {
    where: p.where, names: () => names, info: (n) => p.info(n),
    readF32: (n) => { const r = p.readF32(n); tick(n); return r; },
    readRaw: (n) => { const r = p.readRaw(n); tick(n); return r; },
    quantInfo: (n) => p.quantInfo(n),
  };
}

export class Phi4MM implements ChatEngine {
  private busy: Promise<void> = Promise.resolve();

  private constructor(
    readonly modelId: string,
    readonly dir: string,
    readonly model: Phi4MMForCausalLM,
    readonly tokenizer: Phi4Tokenizer,
    readonly backend: Backend,
    readonly loadReport: LoadReport & { seconds: number; isq: IsqKind },
    private readonly tensors: Map<string, Tensor>,
    private readonly imageCfg: ImageProcessorConfig,
  ) {}

  get config(): Phi4MMConfig {
    return this.model.config;
  }

  /** A local checkpoint folder (either layout) or a hub id downloaded into the Hugging Face cache. */
  static async fromPretrained(idOrPath: string = DEFAULT_MODEL_ID, options: LoadOptions = {}): Promise<Phi4MM> {
    validateLoadOptions(options);
    if (typeof idOrPath !== 'string' || !idOrPath) throw new ValidationError('fromPretrained needs a hub id or a folder path');
    let dir = idOrPath;
    if (!existsSync(idOrPath)) {
      if (idOrPath.startsWith('.') || idOrPath.startsWith('/')) throw new ValidationError(`no such folder: ${idOrPath}`);
      dir = await downloadModel(idOrPath, options);
    } else if (!statSync(idOrPath).isDirectory()) {
      throw new ValidationError(`${idOrPath} is a file; pass the checkpoint folder that holds config.json`);
    }
    const t0 = performance.now();
    const backend = await createBackend(options.backend ?? 'auto', options.threads ?? availableParallelism());
    const { config, provider } = openCheckpoint(dir);
    const isq = options.isq ?? 'none';
    let model: Phi4MMForCausalLM, report: LoadReport, rec: RecordingWeights;
    try {
      const nativeQuant = (backend as { quantizeRows?: (d: 'q4_k' | 'q8_0', s: Float32Array, r: number, k: number) => Uint8Array }).quantizeRows;
      const ws = new StrictWeights(progressProvider(provider, options.onProgress), storagePolicy(isq, options.quantizeEncoders), nativeQuant ? { quantize: (d, s, r, k) => nativeQuant.call(backend, d, s, r, k), place: hugePages(backend) } : {});
      rec = new RecordingWeights(ws);
      model = new Phi4MMForCausalLM(rec, config);
      model.encoderPrecision = options.encoderPrecision ?? 'f32';
      report = ws.finish();
    } finally {
      provider.close();
    }
    options.onProgress?.({ stage: 'load', loaded: 1, total: 1, done: true, detail: `${((performance.now() - t0) / 1000).toFixed(1)} s` });
    const tokenizer = Phi4Tokenizer.fromDir(dir);
    const pre = readJson(join(dir, 'preprocessor_config.json'));
    const dynamicHd = options.dynamicHd ?? (typeof pre?.['dynamic_hd'] === 'number' ? (pre['dynamic_hd'] as number) : undefined);
    return new Phi4MM(idOrPath, dir, model, tokenizer, backend, { ...report, seconds: (performance.now() - t0) / 1000, isq }, rec.taken, dynamicHd ? { dynamicHd } : {});
  }

  /** One line: backend, threads, what was quantized. */
  describe(): string {
    const b = this.loadReport.bytes;
    const parts = Object.entries(b).map(([d, n]) => `${d} ${(n / 2 ** 30).toFixed(2)} GiB (${this.loadReport.counts[d]} tensors)`);
    return `${this.backend.name} backend, ${this.backend.threads} threads, isq ${this.loadReport.isq}; weights: ${parts.join(', ')}; loaded in ${this.loadReport.seconds.toFixed(1)} s`;
  }

  async chat(messages: Messages | ChatMessage[], opts: SamplingOptions = {}): Promise<ChatResult> {
    let text = '';
    for await (const ev of this.streamEvents(toMessageList(messages), opts)) {
      if (ev.type === 'delta') text += ev.text;
      else return { text, finishReason: ev.finishReason, usage: ev.usage };
    }
    throw new Error('generation ended without a result');
  }

  /** Text deltas only. */
  async *streamChat(messages: Messages | ChatMessage[], opts: SamplingOptions = {}): AsyncGenerator<string> {
    for await (const ev of this.streamEvents(toMessageList(messages), opts)) if (ev.type === 'delta') yield ev.text;
  }

  /** Deltas, then one 'done' event with the finish reason and usage. Requests run one at a time. */
  async *streamEvents(messagesIn: Messages | ChatMessage[], opts: SamplingOptions = {}): AsyncGenerator<ChatEvent> {
    const messages = toMessageList(messagesIn);
    const params = samplingParams(opts, this.tokenizer.vocabSize);
    const maxTokens = opts.maxTokens ?? DEFAULT_MAX_TOKENS;
    const stop = opts.stop === undefined ? [] : Array.isArray(opts.stop) ? opts.stop : [opts.stop];
    const prepared = preparePrompt(messages);
    const [images, audios] = await Promise.all([
      Promise.all(prepared.images.map((s) => loadImage(s as Parameters<typeof loadImage>[0], opts.signal ? { signal: opts.signal } : {}))),
      Promise.all(prepared.audios.map((s) => loadAudio(s as Parameters<typeof loadAudio>[0], opts.signal ? { signal: opts.signal } : {}))),
    ]);
    const release = await this.lock();
    try {
      const t0 = performance.now();
      const promptText = renderChat(this.tokenizer, prepared.messages, { addGenerationPrompt: true });
      const pi = images.length ? processImages(images, this.imageCfg) : null;
      const af = audios.length ? extractAudioFeatures(audios) : null;
      const ids = buildInputIds(this.tokenizer, promptText, pi?.numImgTokens ?? [], af?.embedSizes ?? []);
      const maxPos = this.config.text.max_position_embeddings;
      if (ids.length >= maxPos) throw new PromptError(`the prompt is ${ids.length} tokens; the model's context is ${maxPos}`);
      const emb = this.model.embedInputs(this.backend, ids, pi, af);
      const state = new SamplingState({ ...(opts.seed !== undefined ? { seed: opts.seed } : {}), promptIds: ids });
      const text = new TokenTextStream(this.tokenizer, { stopIds: this.tokenizer.eosTokenIds, stopStrings: stop, maxTokens });
      let tFirst = 0, finish: FinishReason | null = null;
      const gen = this.model.generate(this.backend, ids, {
        mode: emb.mode, inputsEmbeds: emb.embeds, maxNewTokens: maxTokens,
        sample: (logits) => sample(logits, params, state),
        stopIds: new Set(this.tokenizer.eosTokenIds),
        ...(opts.signal ? { signal: opts.signal } : {}),
        onPrefill: () => (tFirst = performance.now()),
      });
      for await (const id of gen) {
        const step = text.push(id);
        if (step.text) yield { type: 'delta', text: step.text };
        if (step.finishReason) { finish = step.finishReason; break; }
      }
      if (!finish) {
        if (opts.signal?.aborted) finish = 'cancelled';
        else {
          const last = text.end('length');
          if (last.text) yield { type: 'delta', text: last.text };
          finish = 'length';
        }
      }
      const tEnd = performance.now();
      yield { type: 'done', finishReason: finish, usage: makeUsage(ids.length, text.completionTokens, (tFirst - t0) / 1000, (tEnd - tFirst) / 1000) };
    } finally {
      release();
    }
  }

  /** Write the loaded (quantized) weights as a folder that loads without re-quantizing. */
  async saveQuantized(outDir: string): Promise<void> {
    saveQuantizedCheckpoint(this.dir, outDir, this.config, this.tensors, this.loadReport.isq);
  }

  private async lock(): Promise<() => void> {
    let release!: () => void;
    const prev = this.busy;
    this.busy = new Promise<void>((r) => (release = r));
    await prev;
    return release;
  }
}

function samplingParams(o: SamplingOptions, vocabLimit: number): SamplingParams {
  if (o === null || typeof o !== 'object') throw new ValidationError('sampling options must be an object');
  const unknown = Object.keys(o).filter((k) => !SAMPLING_KEYS.has(k));
  if (unknown.length) throw new ValidationError(`unknown sampling option(s) ${unknown.join(', ')}; known: ${[...SAMPLING_KEYS].join(', ')}`);
  if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new ValidationError(`maxTokens must be a positive integer (got ${o.maxTokens})`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new ValidationError(`seed must be an integer (got ${o.seed})`);
  const p: SamplingParams = { temperature: o.temperature ?? 0, vocabLimit };
  if (o.topP !== undefined) p.topP = o.topP;
  if (o.topK !== undefined) p.topK = o.topK;
  if (o.minP !== undefined) p.minP = o.minP;
  if (o.frequencyPenalty !== undefined) p.frequencyPenalty = o.frequencyPenalty;
  if (o.presencePenalty !== undefined) p.presencePenalty = o.presencePenalty;
  if (o.repetitionPenalty !== undefined) p.repetitionPenalty = o.repetitionPenalty;
  try {
    validateSamplingParams(p);
  } catch (e) {
    throw new ValidationError((e as Error).message);
  }
  return p;
}

function readJson(p: string): Record<string, unknown> | null {
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : null;
}

async function downloadModel(id: string, o: LoadOptions): Promise<string> {
  const common = {
    ...(o.revision ? { revision: o.revision } : {}), ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}),
    ...(o.token ? { token: o.token } : {}), ...(o.offline !== undefined ? { offline: o.offline } : {}),
  };
  // config.json first: the layout decides whether the adapter folders are needed (the original layout
  // carries its LoRA weights inside the main shards, so its vision-lora/ and speech-lora/ copies are skipped).
  const head = await snapshotDownload(id, { ...common, filter: (p) => p === 'config.json' });
  const hf = readJson(join(head, 'config.json'))?.['model_type'] === 'phi4_multimodal';
  const wanted = (p: string) => /\.(json|jinja|safetensors)$/.test(p) && (hf || !/^(vision|speech)-lora\//.test(p));
  return snapshotDownload(id, {
    ...common, filter: wanted,
    ...(o.onProgress ? { onProgress: (p) => o.onProgress!({ stage: 'download', loaded: p.overallLoaded, total: p.overallTotal, detail: p.file, done: p.overallLoaded >= p.overallTotal }) } : {}),
  });
}

export { Messages };

/** The backend's huge-page placement of weight buffers, when it has one (the native backend). */
function hugePages(backend: object): ((data: Uint8Array) => void) | undefined {
  const advise = (backend as { adviseHugePages?: (d: Uint8Array) => number }).adviseHugePages;
  return advise ? (d) => void advise.call(backend, d) : undefined;
}
