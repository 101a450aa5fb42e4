// Phi4MMForCausalLM: the language model plus the image and audio embedders (original layout:
// `model.embed_tokens_extend.{image_embed,audio_embed}`), the per-request routing (LoRA adapter and audio
// projection by input mode) and generation with the LongRoPE cache rebuild.
//
// Built from a deferring source (api/load.ts with lazyMedia, the default), the media parts are checked at load
// and read on first use: the image encoder on the first image, the audio encoder on the first audio, each LoRA
// adapter on the first forward of its mode. Text-only use holds the language model alone.
import type { Backend } from '../../tensor/backend.js';
import { withComputePrecision, type ComputePrecision } from '../../tensor/precision.js';
import { StrictWeights, type Deferred, type LoadReport, type StoragePolicy, type WeightSource } from '../../nn/weights.js';
import { deferOrBuild } from '../../nn/lazy_weights.js';
import type { Phi4MMConfig } from './config.js';
import { openCheckpoint } from './checkpoint.js';
import { Phi4MiniDecoder, type DecoderForwardOptions, type DecoderOutput } from './decoder.js';
import { generateTokens, type GenerateTokensOptions } from './generate.js';
import { Phi4MMImageEmbedding } from './vision.js';
import { Phi4MMAudioEmbedding } from './audio_encoder.js';
import { audioProjectionFor, inputModeOf, mergeMediaEmbeddings, type InputMode } from './multimodal.js';
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

export type GenerateOptions = GenerateTokensOptions;

/** Which parts' weights are in memory (all true unless loaded lazily). */
export interface LoadedParts {
  image_embed: boolean;
  audio_embed: boolean;
  vision_lora: boolean;
  speech_lora: boolean;
}

export class Phi4MMForCausalLM {
  readonly lm: Phi4MiniDecoder;
  private readonly media: { image: Deferred<Phi4MMImageEmbedding>; audio: Deferred<Phi4MMAudioEmbedding> };
  /**
   * The image and audio encoders' linears over bf16 weights: 'f32' (exact products with f32 activations, as the
   * golden fixtures) or 'bf16' (activations rounded to bf16, vdpbf16ps; see tensor/precision.ts).
   */
  encoderPrecision: ComputePrecision = 'f32';

  constructor(ws: WeightSource, readonly config: Phi4MMConfig) {
    const hidden = config.text.hidden_size;
    // Encoders first: deferred, this only checks them, so the reads that follow (and the progress) are the LM's.
    this.media = {
      image: deferOrBuild(ws, 'image encoder', (w) => new Phi4MMImageEmbedding(w, config.vision_config, hidden)),
      audio: deferOrBuild(ws, 'audio encoder', (w) => new Phi4MMAudioEmbedding(w, config.audio_config, hidden)),
    };
    this.lm = new Phi4MiniDecoder(ws, config.text, { vision: config.vision_lora, speech: config.speech_lora });
  }

  /** SigLIP, separators and projection (`model.embed_tokens_extend.image_embed`), read on first access if deferred. */
  get image_embed(): Phi4MMImageEmbedding {
    return this.media.image.get();
  }

  /** The conformer and both projections (`model.embed_tokens_extend.audio_embed`), read on first access if deferred. */
  get audio_embed(): Phi4MMAudioEmbedding {
    return this.media.audio.get();
  }

  loadedParts(): LoadedParts {
    return { image_embed: this.media.image.loaded, audio_embed: this.media.audio.loaded, vision_lora: this.lm.adapterLoaded('vision'), speech_lora: this.lm.adapterLoaded('speech') };
  }

  /** Reads every deferred part now (saving a quantized copy needs them all). */
  loadAll(): void {
    void this.image_embed;
    void this.audio_embed;
    for (const a of this.lm.adapterNames) this.lm.useAdapter(a);
  }

  /** Load a checkpoint folder of either layout; strict: every tensor used or knowingly ignored. */
  static load(dir: string, policy?: StoragePolicy): { model: Phi4MMForCausalLM; report: LoadReport } {
    const { config, provider } = openCheckpoint(dir);
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
    const enc = withComputePrecision(be, this.encoderPrecision);
    let t0 = performance.now();
    const img = images && nImg ? this.image_embed.encode(enc, images.pixelValues, images.attentionMask, images.imageSizes, images.numImgTokens) : [];
    const visionMs = performance.now() - t0;
    t0 = performance.now();
    // All clips of one prompt in one call: the reference builds the batch mask from them together.
    const aud = audio && nAud ? this.audio_embed.encode(enc, audio.features, audio.frames, audioProjectionFor(mode)) : [];
    const audioMs = performance.now() - t0;
    mergeMediaEmbeddings(embeds, ids, this.config.text.hidden_size, img, aud);
    return { ids, embeds, mode, visionMs, audioMs };
  }

  /** One forward over `ids` (research API): logits of the last position by default, hidden states on request. */
  forward(be: Backend, ids: ArrayLike<number>, opts: DecoderForwardOptions = {}): DecoderOutput {
    return this.lm.forward(be, ids, opts);
  }

  /** Token ids one by one, LongRoPE cache rebuild included (see generateTokens). */
  generate(be: Backend, promptIds: Int32Array, o: GenerateOptions): AsyncGenerator<number> {
    return generateTokens(be, this.lm, promptIds, o);
  }
}
