// What the scheduler needs from a model, and what crosses between the request side (HTTP, library) and the
// scheduler side (worker thread). Everything here is structured-clone safe except `BatchModel`, which lives
// with the scheduler.
import type { ConstraintSpec, LogitsConstraint, SamplerSpec, TopLogprob } from '../text/sampler.js';

// The decoder's unit of work and the input modes are the model's own types (defined once, in the model).
import type { InputMode } from '../models/phi4mm/multimodal.js';
export type { InputMode } from '../models/phi4mm/multimodal.js';
export type { BatchSeq } from '../models/phi4mm/decoder_batch.js';
import type { BatchSeq } from '../models/phi4mm/decoder_batch.js';

/** Processed media handed to the model's encoders (host arrays; structured-clone safe, transferable). */
export interface ImageBatchInput {
  pixelValues: Float32Array; // [nImg, maxCrops, 3, 448, 448]
  attentionMask: Float32Array; // [nImg, maxCrops, 32, 32]
  imageSizes: Array<[number, number]>;
  numImgTokens: number[];
}
export interface AudioBatchInput {
  features: Float32Array; // [n, maxFrames, 80]
  frames: number[];
}

/** The model as the scheduler sees it: a paged, ragged forward plus the encoders. */
export interface BatchModel {
  readonly vocabSize: number;
  readonly hidden: number;
  /** Positions the model takes (max_position_embeddings). */
  readonly maxPositions: number;
  /** Bytes of K+V one token takes in the store (all layers). */
  readonly kvBytesPerToken: number;
  /** Whether a sequence of `total` tokens uses the LongRoPE long factors. */
  useLong(total: number): boolean;
  /** (Re)allocates the paged store: `numBlocks` blocks of `blockSize` tokens. */
  allocKv(numBlocks: number, blockSize: number): void;
  /** Logits [#seqs with logits, vocab] in batch order; valid until the next call (the model may reuse the array). */
  forwardBatch(seqs: BatchSeq[]): Float32Array;
  /** Copies whole blocks (copy-on-write of a shared partial block), every layer. */
  copyBlocks(src: Int32Array, dst: Int32Array): void;
  /** Token embeddings [T, hidden] (the scheduler merges media rows into them). */
  embed(ids: Int32Array): Float32Array;
  /** Projected image features, one [tokens_i, hidden] array per image. */
  encodeImages(x: ImageBatchInput): Float32Array[];
  /** Projected audio features, one per clip (all clips of a prompt in one call). */
  encodeAudio(x: AudioBatchInput, projection: 'vision' | 'speech'): Float32Array[];
  /** Builds the token-level mask of a grammar constraint (structured outputs); absent = constraints refused. */
  constraints?(spec: ConstraintSpec): LogitsConstraint;
}

/** Media behind a run of placeholder rows. */
export interface MediaRef {
  kind: 'image' | 'audio';
  /** Content hash of the item + processor settings (+ projection for audio): the media cache key. */
  key: string;
  /** Placeholder rows of this item in the prompt, in order. */
  rows: number;
}

/** A group of media encoded together (all images, or all clips, of one prompt). */
export interface MediaGroup {
  kind: 'image' | 'audio';
  /** Cache key of the group's features (every item key + settings). */
  key: string;
  items: MediaRef[];
  /** The processed inputs (always sent; unused on a media-cache or prefix-cache hit). */
  image?: ImageBatchInput;
  audio?: AudioBatchInput;
  projection?: 'vision' | 'speech';
}

export interface EngineRequest {
  id: number;
  ids: Int32Array;
  mode: InputMode;
  media: MediaGroup[];
  sampler: SamplerSpec;
  /** Sequences to generate from the one prompt (OpenAI `n`); they share the prompt's blocks. */
  n: number;
  maxTokens: number;
  stopIds: number[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface SeqDone {
  reason: FinishReason;
  promptTokens: number;
  /** Prompt tokens whose KV came from the prefix cache. */
  cachedTokens: number;
  completionTokens: number;
  /** Seconds from submission to the first token, and from then to the end. */
  promptSec: number;
  complSec: number;
  /** Seconds spent in the encoders for this request (0 on a media-cache hit). */
  encoderSec: number;
}

/** Scheduler → request side. */
export type EngineEvent =
  /** The first token of a sequence also says how much of its prompt came from the prefix cache. */
  | { type: 'token'; id: number; index: number; token: number; cachedTokens?: number; logprob?: number; top?: TopLogprob[] }
  | { type: 'done'; id: number; index: number; done: SeqDone }
  | { type: 'error'; id: number; error: EngineErrorInfo };

export interface EngineErrorInfo {
  name: string;
  message: string;
  /** HTTP status the server answers with (400 never fits, 429 busy, 500 otherwise). */
  status: number;
  code: string | null;
}

/** A request the engine refuses: carries the HTTP status and an OpenAI-style code. */
export class EngineError extends Error {
  override name = 'EngineError';
  constructor(message: string, readonly status: number, readonly code: string | null = null) {
    super(message);
  }
  toInfo(): EngineErrorInfo {
    return { name: this.name, message: this.message, status: this.status, code: this.code };
  }
}

export interface EngineSettings {
  /** Tokens per KV block. */
  blockSize: number;
  /** KV blocks in the pool. */
  numBlocks: number;
  /** Sequences decoding/prefilling at once. */
  maxRunning: number;
  /** Requests allowed to wait for a slot; beyond that, 429. */
  maxWaiting: number;
  /** Prompt tokens prefilled per step, over all prefilling sequences (chunked prefill). */
  prefillChunk: number;
  /** Media cache budget in bytes (projected encoder outputs). */
  mediaCacheBytes: number;
  /** Share full blocks between requests with the same prefix (default true; off for cold benchmarks). */
  prefixCache?: boolean;
}

export interface EngineStats {
  running: number;
  waiting: number;
  blocksTotal: number;
  blocksFree: number;
  blocksCached: number;
  /** Blocks referenced by running sequences (the rest are free or evictable). */
  blocksInUse: number;
  blockSize: number;
  kvBytesPerToken: number;
  mediaCacheBytes: number;
  mediaCacheEntries: number;
  steps: number;
}
