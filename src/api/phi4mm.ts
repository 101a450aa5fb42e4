// The library API: Phi4MM.fromPretrained(idOrPath, options) → chat / streamChat / streamEvents.
//
// Generation goes through the engine (src/engine/): by default a worker thread that loads and owns the model
// and runs the continuous-batching scheduler, so any number of concurrent chat() calls run together and the
// calling thread stays free. This thread does validation, media decoding, detokenization and stop strings;
// tokenizing long prompts and image/audio processing run in a second worker (src/engine/prep_pool.ts). The
// research API (`model`, `backend`: forward, hidden states, encoders) is an in-process copy of the model, loaded
// on first access with the worker host (twice the memory) and shared with the engine with
// `engine: { host: 'inline' }`.
import { loadConfig, type Phi4MMConfig } from '../models/phi4mm/config.js';
import type { Phi4MMForCausalLM } from '../models/phi4mm/model.js';
import { PromptError, inputModeOf } from '../models/phi4mm/multimodal.js';
import type { ImageProcessorConfig } from '../models/phi4mm/image_processor.js';
import { createBackend, type Backend } from '../tensor/backend.js';
import { availableParallelism } from 'node:os';
import { loadImage } from '../io/image.js';
import { loadAudio } from '../io/audio.js';
import { Phi4Tokenizer } from '../text/tokenizer.js';
import { renderChat } from '../text/chat.js';
import { validateSamplingParams, type SamplingParams } from '../text/sampling.js';
import { validateSamplerSpec, type SamplerSpec } from '../text/sampler.js';
import { toTokenLogprob } from '../text/logprobs.js';
import { TokenTextStream } from '../text/stream.js';
import { preparePrompt } from './prompt.js';
import { Messages, toMessageList } from './messages.js';
import { makeUsage, type ChatEngine, type ChatEvent, type ChatMessage, type ChatResult, type FinishReason, type SamplingOptions, type TokenLogprob } from './types.js';
import { saveLoadedModel } from './save.js';
import { DEFAULT_MODEL_ID, describeLoaded, dynamicHdOf, loadModelFolder, loadWeights, resolveModelDir, validateLoadOptions, LOAD_OPTION_KEYS, ValidationError, type LoadedModel, type LoadOptions as BaseLoadOptions } from './load.js';
import { Engine } from '../engine/engine.js';
import type { EngineStats } from '../engine/types.js';
import { inlineEngine, workerEngine } from '../engine/host.js';
import { DeviceBatchModel } from '../engine/device_model.js';
import { resolveSettings, validateEngineOptions, type EngineOptions } from '../engine/settings.js';
import { transferables } from '../engine/request.js';
import { preparePromptInputs, prepIsSmall, promptIds, textIsSmall, type Prepared, type PrepInput } from '../engine/prep.js';
import { PrepPool } from '../engine/prep_pool.js';

export { DEFAULT_MODEL_ID, ValidationError, storagePolicy, type IsqKind, type LoadProgress } from './load.js';
export type { EngineOptions } from '../engine/settings.js';

export interface LoadOptions extends BaseLoadOptions {
  /** The serving engine: host (worker thread by default), KV budget, concurrency, prefill chunk. */
  engine?: EngineOptions;
}

const SAMPLING_KEYS = new Set(['maxTokens', 'temperature', 'topP', 'topK', 'minP', 'frequencyPenalty', 'presencePenalty', 'repetitionPenalty', 'stop', 'seed', 'signal', 'logitBias', 'topLogprobs', 'suppressIds', 'constraint']);
const DEFAULT_MAX_TOKENS = 1024;
const KEYS = new Set([...LOAD_OPTION_KEYS, 'engine']);

export class Phi4MM implements ChatEngine {
  private constructor(
    readonly modelId: string,
    readonly dir: string,
    readonly config: Phi4MMConfig,
    readonly tokenizer: Phi4Tokenizer,
    /** The scheduler's front: requests in, token streams out. */
    readonly engine: Engine,
    private local: LoadedModel | null,
    /** The backend of the in-process (research) model. */
    readonly backend: Backend,
    private readonly options: LoadOptions,
    private readonly imageCfg: ImageProcessorConfig,
    private readonly info: { describe: string; kvNote: string },
    /** What was loaded (by the engine's copy): tensors per storage dtype, bytes, seconds, ISQ. */
    readonly loadReport: LoadedModel['report'],
    /** Tokenizing and media processing off this thread (worker host); null: on it (inline host). */
    private readonly prep: PrepPool | null,
    /** Writes the engine worker's copy of the weights (worker host); null: this thread holds them (inline host). */
    private readonly workerSave: ((outDir: string) => Promise<void>) | null,
  ) {}

  /** A local checkpoint folder (either layout) or a hub id downloaded into the Hugging Face cache. */
  static async fromPretrained(idOrPath: string = DEFAULT_MODEL_ID, options: LoadOptions = {}): Promise<Phi4MM> {
    validateLoadOptions(options, KEYS);
    const bad = options.engine !== undefined ? validateEngineOptions(options.engine) : null;
    if (bad) throw new ValidationError(bad);
    const dir = await resolveModelDir(idOrPath, options);
    const config = loadConfig(dir);
    const tokenizer = Phi4Tokenizer.fromDir(dir);
    const dynamicHd = dynamicHdOf(dir, options);
    const imageCfg: ImageProcessorConfig = dynamicHd ? { dynamicHd } : {};
    const eo = options.engine ?? {};
    if (eo.host === 'inline') {
      const local = await loadModelFolder(dir, options);
      const bm = new DeviceBatchModel(local.model, local.backend, eo.kvDtype, () => tokenizer);
      const { settings, note } = resolveSettings(eo, bm.kvBytesPerToken, bm.maxPositions, local.report.deferred.bytes);
      const { engine } = inlineEngine(bm, settings);
      // A forward blocks this thread anyway, so preparing prompts here costs nothing more.
      return new Phi4MM(idOrPath, dir, config, tokenizer, engine, local, local.backend, options, imageCfg, { describe: describeLoaded(local), kvNote: note }, local.report, null, null);
    }
    const backend = await createBackend(options.backend ?? 'auto', options.threads ?? availableParallelism());
    const { onProgress, engine: _e, ...load } = options;
    const { engine, ready, save } = await workerEngine({ dir, load, engine: eo }, onProgress ? (p) => onProgress(p as Parameters<typeof onProgress>[0]) : undefined);
    const prep = new PrepPool({ dir, imageCfg });
    return new Phi4MM(idOrPath, dir, config, tokenizer, engine, null, backend, options, imageCfg, { describe: ready.describe, kvNote: ready.kvNote }, ready.report, prep, save);
  }

  /**
   * The in-process model for research (forward, hidden states, encoders) on `backend`. With the worker host
   * the first access loads a second copy of the weights here (synchronously); the engine keeps its own.
   */
  get model(): Phi4MMForCausalLM {
    if (!this.local) this.local = loadWeights(this.dir, { ...this.options, onProgress: undefined }, this.backend);
    return this.local.model;
  }

  /** Backend, threads, what was quantized; then how the KV pool was sized (the CLI prints this at start-up). */
  describe(): string {
    return `${this.info.describe}\n${this.info.kvNote}`;
  }

  /** How the KV pool was sized (printed at start-up by the CLI and the server). */
  describeEngine(): string {
    return this.info.kvNote;
  }

  /** Throws EngineError 429 when the engine's running slots and queue are full (the server asks first). */
  admit(): void {
    this.engine.admit();
  }

  stats(): Promise<EngineStats> {
    return this.engine.stats();
  }

  /**
   * Stops the engine (its worker thread and the model it holds) and the prompt worker. Requests in flight fail,
   * and later calls fail at once; afterwards nothing of this model keeps the process alive.
   */
  async close(): Promise<void> {
    await Promise.all([this.engine.close(), this.prep?.close()]);
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

  /** Deltas, then one 'done' event with the finish reason and usage. Concurrent calls run together in the engine. */
  async *streamEvents(messagesIn: Messages | ChatMessage[], opts: SamplingOptions = {}): AsyncGenerator<ChatEvent> {
    yield* this.generateEvents(toMessageList(messagesIn), null, opts);
  }

  /** A raw prompt (no chat template; special tokens such as <|user|> are parsed), as /v1/completions sends. */
  async *streamCompletion(prompt: string, opts: SamplingOptions = {}): AsyncGenerator<ChatEvent> {
    if (typeof prompt !== 'string' || !prompt) throw new ValidationError('the prompt must be a non-empty string');
    yield* this.generateEvents([], prompt, opts);
  }

  /** Structured outputs and forced tool calls are honoured (src/constrained, applied in the engine's sampler). */
  readonly constrainedDecoding = true;

  get vocabSize(): number {
    return this.tokenizer.vocabSize;
  }

  private async *generateEvents(messages: ChatMessage[], rawPrompt: string | null, opts: SamplingOptions): AsyncGenerator<ChatEvent> {
    const t0 = performance.now();
    const spec = samplerSpec(opts, this.tokenizer.vocabSize);
    const maxTokens = opts.maxTokens ?? DEFAULT_MAX_TOKENS;
    const stop = opts.stop === undefined ? [] : Array.isArray(opts.stop) ? opts.stop : [opts.stop];
    const prepared = rawPrompt === null ? preparePrompt(messages) : { messages: [], images: [], audios: [] };
    const so = opts.signal ? { signal: opts.signal } : {};
    const [images, audios] = await Promise.all([
      Promise.all(prepared.images.map((s) => loadImage(s as Parameters<typeof loadImage>[0], so))),
      Promise.all(prepared.audios.map((s) => loadAudio(s as Parameters<typeof loadAudio>[0], so))),
    ]);
    const promptText = rawPrompt ?? renderChat(this.tokenizer, prepared.messages, { addGenerationPrompt: true });
    const mode = inputModeOf(images.length, audios.length);
    const { ids, media } = await this.preparePrompt({ promptText, images, audios, mode }, [...prepared.images, ...prepared.audios]);
    const maxPos = this.config.text.max_position_embeddings;
    if (ids.length >= maxPos) throw new PromptError(`the prompt is ${ids.length} tokens; the model's context is ${maxPos}`);
    const text = new TokenTextStream(this.tokenizer, { stopIds: this.tokenizer.eosTokenIds, stopStrings: stop, maxTokens });
    // Logprob info of the tokens consumed since the last event (eos ids are not part of the output).
    const eos = new Set(this.tokenizer.eosTokenIds);
    let pending: TokenLogprob[] = [];
    const take = () => { const out = pending; pending = []; return spec.topLogprobs === undefined ? {} : { logprobs: out }; };
    let tFirst = 0, finish: FinishReason | null = null, cached = 0;
    const stream = this.engine.generate({ ids, mode, media, n: 1, maxTokens, stopIds: [...this.tokenizer.eosTokenIds], sampler: spec }, opts.signal, transferables(media));
    // EngineError (status 400: can never fit; 429: the engine is full) passes through as is.
    for await (const ev of stream) {
      if (ev.type === 'token') {
        if (!tFirst) tFirst = performance.now();
        if (ev.cachedTokens !== undefined) cached = ev.cachedTokens;
        if (ev.logprob !== undefined && !eos.has(ev.token)) {
          const lp = toTokenLogprob(this.tokenizer, { id: ev.token, logprob: ev.logprob, ...(ev.top ? { top: ev.top } : {}) });
          if (lp) pending.push(lp);
        }
        const step = text.push(ev.token);
        if (step.text) yield { type: 'delta', text: step.text, ...take() };
        if (step.finishReason) { finish = step.finishReason; break; } // a stop string: leaving the loop frees the sequence
        continue;
      }
      cached = ev.done.cachedTokens;
      if (ev.done.reason === 'cancelled') finish = 'cancelled';
      else {
        const last = text.end(ev.done.reason);
        if (last.text) yield { type: 'delta', text: last.text, ...take() };
        finish = ev.done.reason;
      }
    }
    if (!finish) finish = opts.signal?.aborted ? 'cancelled' : 'length';
    const tEnd = performance.now();
    if (!tFirst) tFirst = tEnd;
    const usage = makeUsage(ids.length, text.completionTokens, (tFirst - t0) / 1000, (tEnd - tFirst) / 1000);
    yield { type: 'done', finishReason: finish, usage: { ...usage, prompt_tokens_details: { cached_tokens: cached } }, ...take() };
  }

  /**
   * Token ids and processed media of a prompt: media and long prompts in the prompt worker, short text here.
   * Media buffers this call decoded itself move to the worker; the caller's own buffers are copied (or shared,
   * over a SharedArrayBuffer), never detached.
   */
  private async preparePrompt(input: PrepInput, sources: unknown[]): Promise<Prepared> {
    if (!this.prep || prepIsSmall(input)) return preparePromptInputs(this.tokenizer, this.imageCfg, input);
    const foreign = new Set<ArrayBufferLike>();
    for (const s of sources) for (const b of buffersOf(s)) foreign.add(b);
    const own = new Set<ArrayBuffer>();
    for (const a of [...input.images.map((i) => i.data), ...input.audios.map((x) => x.samples)]) {
      if (a.buffer instanceof ArrayBuffer && !foreign.has(a.buffer) && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) own.add(a.buffer);
    }
    const here = textIsSmall(input);
    const out = await this.prep.prepare(input, [...own], !here);
    return { ...out, ids: out.ids ?? promptIds(this.tokenizer, input.promptText, out) };
  }

  /**
   * Write the loaded (quantized) weights as a folder that loads without re-quantizing. The thread that holds the
   * weights writes them: this one on the inline host (or once `model` has loaded a copy here), the engine worker on
   * the worker host, whose scheduler waits while it writes. Deferred encoders and adapters are read first.
   */
  async saveQuantized(outDir: string): Promise<void> {
    if (typeof outDir !== 'string' || outDir === '') throw new ValidationError('saveQuantized: outDir must be a folder path');
    if (!this.local && this.workerSave) return this.workerSave(outDir);
    saveLoadedModel(this.local!, this.dir, outDir);
  }
}

/** The buffers a media input given by the caller may hold (bytes, pixels, samples, channels). */
function buffersOf(src: unknown): ArrayBufferLike[] {
  if (src instanceof ArrayBuffer) return [src];
  if (ArrayBuffer.isView(src)) return [src.buffer];
  if (!src || typeof src !== 'object') return [];
  const o = src as { data?: unknown; samples?: unknown; channels?: unknown };
  return [o.data, o.samples, ...(Array.isArray(o.channels) ? o.channels : [])].filter(ArrayBuffer.isView).map((v) => v.buffer);
}

function samplingParams(o: SamplingOptions, vocabLimit: number): SamplingParams {
  if (o === null || typeof o !== 'object') throw new ValidationError('sampling options must be an object');
  const unknown = Object.keys(o).filter((k) => !SAMPLING_KEYS.has(k));
  if (unknown.length) throw new ValidationError(`unknown sampling option(s) ${unknown.join(', ')}; known: ${[...SAMPLING_KEYS].join(', ')}`);
  if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new ValidationError(`maxTokens must be a positive integer (got ${o.maxTokens})`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new ValidationError(`seed must be an integer (got ${o.seed})`);
  const p: SamplingParams = { temperature: o.temperature ?? 0, vocabLimit };
  if (o.suppressIds !== undefined) p.suppressIds = o.suppressIds;
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

/** The request's sampler, as it crosses into the engine's worker. */
function samplerSpec(o: SamplingOptions, vocabSize: number): SamplerSpec {
  const spec: SamplerSpec = { params: samplingParams(o, vocabSize) };
  if (o.seed !== undefined) spec.seed = o.seed;
  if (o.logitBias !== undefined) spec.logitBias = Object.entries(o.logitBias).map(([id, b]) => [Number(id), b]);
  if (o.topLogprobs !== undefined) spec.topLogprobs = o.topLogprobs;
  if (o.constraint !== undefined) spec.constraint = o.constraint;
  try {
    validateSamplerSpec(spec, vocabSize);
  } catch (e) {
    throw new ValidationError((e as Error).message);
  }
  return spec;
}

export { Messages };
