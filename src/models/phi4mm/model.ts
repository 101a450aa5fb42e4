// Phi4MMForCausalLM: the language model plus the image and audio embedders (original layout:
// `model.embed_tokens_extend.{image_embed,audio_embed}`), the per-request routing (LoRA adapter and audio
// projection by input mode) and generation with the LongRoPE cache rebuild.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Backend } from '../../tensor/backend.js';
import { StrictWeights, type LoadReport, type StoragePolicy, type WeightSource } from '../../nn/weights.js';
import { loadConfig, type Phi4MMConfig } from './configuration.js';
import { CheckpointProvider } from './checkpoint.js';
import { Phi4MiniModel, type KVCache, type LmForwardResult } from './language_model.js';
import { Phi4MMImageEmbedding } from './vision.js';
import { Phi4MMAudioEmbedding } from './audio_encoder.js';
import { audioProjectionFor, inputModeOf, loraAdapterFor, mergeMediaEmbeddings, type InputMode } from './multimodal.js';
import type { ProcessedImages } from './image_processor.js';
import type { AudioFeatures } from './audio_processor.js';

export interface EmbeddedInputs {
  ids: Int32Array;
  /** [T, hidden], media rows merged in. */
  embeds: Float32Array;
  mode: InputMode;
  visionMs: number;
  audioMs: number;
}

export interface GenerateOptions {
  mode: InputMode;
  /** [T, hidden] for the prompt (from embedInputs); token lookup when absent. */
  inputsEmbeds?: Float32Array;
  maxNewTokens: number;
  /** Picks the next id from the last position's logits (the sampler); `generated` excludes the prompt. */
  sample: (logits: Float32Array, generated: readonly number[]) => number;
  stopIds?: ReadonlySet<number>;
  signal?: AbortSignal;
  /** Called once the prompt is processed (time to first token = prefill). */
  onPrefill?: (promptTokens: number) => void;
}

export class Phi4MMForCausalLM {
  readonly lm: Phi4MiniModel;
  readonly image_embed: Phi4MMImageEmbedding;
  readonly audio_embed: Phi4MMAudioEmbedding;

  constructor(ws: WeightSource, readonly config: Phi4MMConfig) {
    const hidden = config.text.hidden_size;
    this.lm = new Phi4MiniModel(ws, config.text, { vision: config.vision_lora, speech: config.speech_lora });
    this.image_embed = new Phi4MMImageEmbedding(ws, config.vision_config, hidden);
    this.audio_embed = new Phi4MMAudioEmbedding(ws, config.audio_config, hidden);
  }

  /** Load a checkpoint folder of either layout; strict: every tensor used or knowingly ignored. */
  static load(dir: string, policy?: StoragePolicy): { model: Phi4MMForCausalLM; report: LoadReport } {
    const config = loadConfig(dir);
    const provider = new CheckpointProvider(dir, config.layout);
    try {
      const ws = new StrictWeights(provider, policy);
      const model = new Phi4MMForCausalLM(ws, config);
      return { model, report: ws.finish() };
    } finally {
      provider.close();
    }
  }

  /** Token embeddings with the image (200010) and audio (200011) rows replaced by the encoders' features. */
  embedInputs(be: Backend, ids: Int32Array, images: ProcessedImages | null, audio: AudioFeatures | null): EmbeddedInputs {
    const nImg = images?.numImgTokens.length ?? 0, nAud = audio?.frames.length ?? 0;
    const mode = inputModeOf(nImg, nAud);
    const embeds = this.lm.embed(ids);
    let t0 = performance.now();
    const img = images && nImg ? this.image_embed.encode(be, images.pixelValues, images.attentionMask, images.imageSizes, images.numImgTokens) : [];
    const visionMs = performance.now() - t0;
    t0 = performance.now();
    // All clips of one prompt in one call: the reference builds the batch mask from them together.
    const aud = audio && nAud ? this.audio_embed.encode(be, audio.features, audio.frames, audioProjectionFor(mode)) : [];
    const audioMs = performance.now() - t0;
    mergeMediaEmbeddings(embeds, ids, this.config.text.hidden_size, img, aud);
    return { ids, embeds, mode, visionMs, audioMs };
  }

  /** One forward over `ids` (research API): logits of the last position by default, hidden states on request. */
  forward(be: Backend, ids: ArrayLike<number>, opts: { mode?: InputMode; inputsEmbeds?: Float32Array; cache?: KVCache; logits?: 'last' | 'all' | 'none'; outputHiddenStates?: boolean } = {}): LmForwardResult {
    const cache = opts.cache ?? this.lm.newCache();
    if (cache.length === 0) cache.long = this.lm.rope.useLong(ids.length);
    return this.lm.forward(be, ids, cache, {
      adapter: loraAdapterFor(opts.mode ?? 'language'),
      ...(opts.inputsEmbeds ? { inputsEmbeds: opts.inputsEmbeds } : {}),
      ...(opts.logits ? { logits: opts.logits } : {}),
      ...(opts.outputHiddenStates ? { outputHiddenStates: true } : {}),
    });
  }

  /**
   * Token ids one by one (stop ids included, then it ends). Between tokens it yields to the event loop so a
   * server can flush and notice disconnects. LongRoPE exactly like transformers' generate(): short factors
   * while the sequence fits original_max_position_embeddings; when it first grows past it, the cache is
   * dropped once and the whole sequence is recomputed with the long factors, which are then kept.
   */
  async *generate(be: Backend, promptIds: Int32Array, o: GenerateOptions): AsyncGenerator<number> {
    const lm = this.lm, hidden = this.config.text.hidden_size, maxPos = this.config.text.max_position_embeddings;
    const adapter = loraAdapterFor(o.mode);
    const cache = lm.newCache();
    cache.long = lm.rope.useLong(promptIds.length);
    const generated: number[] = [];
    let logits = lm.forward(be, promptIds, cache, { adapter, ...(o.inputsEmbeds ? { inputsEmbeds: o.inputsEmbeds } : {}) }).logits;
    o.onPrefill?.(promptIds.length);
    while (generated.length < o.maxNewTokens) {
      if (o.signal?.aborted) return;
      const id = o.sample(logits, generated);
      generated.push(id);
      yield id;
      if (o.stopIds?.has(id) || generated.length >= o.maxNewTokens || promptIds.length + generated.length >= maxPos) return;
      await yieldToEventLoop();
      if (o.signal?.aborted) return;
      const total = promptIds.length + generated.length;
      if (!cache.long && lm.rope.useLong(total)) {
        cache.reset();
        cache.long = true;
        const all = new Int32Array(total);
        all.set(promptIds);
        all.set(generated, promptIds.length);
        let embeds: Float32Array | undefined;
        if (o.inputsEmbeds) {
          embeds = new Float32Array(total * hidden);
          embeds.set(o.inputsEmbeds);
          embeds.set(lm.embed(generated), promptIds.length * hidden);
        }
        logits = lm.forward(be, all, cache, { adapter, ...(embeds ? { inputsEmbeds: embeds } : {}) }).logits;
      } else {
        logits = lm.forward(be, [id], cache, { adapter }).logits;
      }
    }
  }
}
