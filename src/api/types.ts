// Public request/response types of the library API (shaped like mistral.rs's SDK: messages with images and
// audio, sampling options, a usage block with average tok/s).
import type { MediaSource } from '../io/media.js';

export type Role = 'system' | 'user' | 'assistant';

/** Anything the IO layer accepts: URL, path, file://, data: URL, base64, encoded bytes, or decoded pixels. */
export type ImageInput = MediaSource | { width: number; height: number; data: Uint8Array; channels?: 3 | 4 };
/** Anything the IO layer accepts, or decoded mono/multichannel samples with their rate. */
export type AudioInput = MediaSource | { samples: Float32Array; sampleRate: number } | { channels: Float32Array[]; sampleRate: number };

export type ContentPart = { type: 'text'; text: string } | { type: 'image'; image: ImageInput } | { type: 'audio'; audio: AudioInput };

export interface ChatMessage {
  role: Role;
  content: string | ContentPart[];
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

export type ChatEvent = { type: 'delta'; text: string } | { type: 'done'; finishReason: FinishReason; usage: Usage };

/** What the server needs from a model: the library's Phi4MM implements it. */
export interface ChatEngine {
  readonly modelId: string;
  /**
   * Present when the engine schedules concurrent requests itself: throws (status 429) when it is full. The
   * server then calls it instead of running requests one at a time.
   */
  admit?(): void;
  streamEvents(messages: ChatMessage[], opts?: SamplingOptions): AsyncGenerator<ChatEvent>;
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
