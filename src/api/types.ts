// Public request/response types of the library API (shaped like mistral.rs's SDK: messages with images and
// audio, sampling options, a usage block with average tok/s).
import type { MediaSource } from '../io/media.js';
import type { ConstraintSpec } from '../text/sampler.js';

/** 'tool' carries a tool result back to the model (rendered `<|tool|>…<|end|>` by the Phi template). */
export type Role = 'system' | 'user' | 'assistant' | 'tool';

/** Anything the IO layer accepts: URL, path, file://, data: URL, base64, encoded bytes, or decoded pixels. */
export type ImageInput = MediaSource | { width: number; height: number; data: Uint8Array; channels?: 3 | 4 };
/** Anything the IO layer accepts, or decoded mono/multichannel samples with their rate. */
export type AudioInput = MediaSource | { samples: Float32Array; sampleRate: number } | { channels: Float32Array[]; sampleRate: number };

export type ContentPart = { type: 'text'; text: string } | { type: 'image'; image: ImageInput } | { type: 'audio'; audio: AudioInput };

export interface ChatMessage {
  role: Role;
  content: string | ContentPart[];
  /** System messages only: the tool list as JSON text, rendered `<|tool|>…<|/tool|>` in the system turn. */
  tools?: string;
}

export interface SamplingOptions {
  /** Default 1024. */
  maxTokens?: number;
  /** 0 = greedy (default 0). */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  repetitionPenalty?: number;
  stop?: string | string[];
  seed?: number;
  signal?: AbortSignal;
  /** Token id → bias in [-100, 100], added to the logits before the draw (OpenAI logit_bias). */
  logitBias?: Record<number, number>;
  /** Capture each generated token's logprob and this many alternatives (0..20); omitted = none. */
  topLogprobs?: number;
  /** Ids never chosen (e.g. `<|tool_call|>` under tool_choice "none"). */
  suppressIds?: number[];
  /** Grammar the output must follow (structured outputs, forced tool calls). */
  constraint?: ConstraintSpec;
}

/** One generated token as OpenAI reports it in `logprobs.content[]`. */
export interface TokenLogprob {
  token: string;
  logprob: number;
  /** UTF-8 bytes this token adds to the text ([] for special tokens, which print nothing). */
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  avg_tok_per_sec: number;
  avg_prompt_tok_per_sec: number;
  avg_compl_tok_per_sec: number;
  total_time_sec: number;
  total_prompt_time_sec: number;
  total_completion_time_sec: number;
  /** OpenAI's shape: prompt tokens whose KV came from the engine's prefix cache. */
  prompt_tokens_details?: { cached_tokens: number };
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface ChatResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
}

/** `logprobs` (when asked for) covers the tokens consumed since the previous event; eos ids are left out. */
export type ChatEvent =
  | { type: 'delta'; text: string; logprobs?: TokenLogprob[] }
  | { type: 'done'; finishReason: FinishReason; usage: Usage; logprobs?: TokenLogprob[] };

/** Live engine figures for /metrics (whatever the engine can tell; absent fields are not reported). */
export interface EngineStats {
  queueDepth?: number;
  runningSequences?: number;
  kvBlocksInUse?: number;
  kvBlocksTotal?: number;
}

/** What an engine with its own scheduler reports about its load (a subset of src/engine's EngineStats). */
export interface EngineLoad {
  running: number;
  waiting: number;
  blocksInUse: number;
  blocksTotal: number;
}

/** What the server needs from a model: the library's Phi4MM implements it. */
export interface ChatEngine {
  readonly modelId: string;
  /**
   * Present when the engine schedules concurrent requests itself: throws (status 429) when it is full. The
   * server then calls it instead of running requests one at a time.
   */
  admit?(): void;
  streamEvents(messages: ChatMessage[], opts?: SamplingOptions): AsyncGenerator<ChatEvent>;
  /** Raw prompt text (no chat template; special tokens allowed), for /v1/completions. */
  streamCompletion?(prompt: string, opts?: SamplingOptions): AsyncGenerator<ChatEvent>;
  /** Whether `constraint` sampling options can be honoured (grammar-constrained decoding is built in). */
  readonly constrainedDecoding?: boolean;
  /** Ids 0..vocabSize-1 are valid logit_bias keys. */
  readonly vocabSize?: number;
  /** The engine's load when it schedules requests itself (the library's engine: src/engine). */
  stats?(): Promise<EngineLoad>;
  /** Frees the model (the library's Phi4MM stops its worker threads); a server calls it only for a model it owns. */
  close?(): Promise<void> | void;
}

export function makeUsage(promptTokens: number, completionTokens: number, promptSec: number, complSec: number): Usage {
  const total = promptSec + complSec;
  const rate = (n: number, s: number) => (s > 0 ? n / s : 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    avg_tok_per_sec: rate(promptTokens + completionTokens, total),
    avg_prompt_tok_per_sec: rate(promptTokens, promptSec),
    avg_compl_tok_per_sec: rate(completionTokens, complSec),
    total_time_sec: total,
    total_prompt_time_sec: promptSec,
    total_completion_time_sec: complSec,
  };
}
