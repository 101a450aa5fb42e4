// Prompt preparation, the request-side work that grows with the input: tokenizing the rendered prompt, image
// preprocessing (resize, normalize, dynamic-HD crops), audio features, and the media groups' content keys (sha256
// over the crops). A 400 000-character prompt without spaces takes about 0.5 s to tokenize and a 36 MP image
// about 1.6 s to process, so with the worker host this runs in a worker (prep_pool.ts) and the calling thread,
// a server's event loop, stays free. One function serves both threads, so the ids and tensors are the same.
import type { Phi4Tokenizer } from '../text/tokenizer.js';
import { buildInputIds } from '../text/prompt.js';
import { processImages, type ImageProcessorConfig } from '../models/phi4mm/image_processor.js';
import { extractAudioFeatures } from '../models/phi4mm/audio_processor.js';
import type { InputMode } from '../models/phi4mm/multimodal.js';
import type { RgbImage } from '../io/image.js';
import type { AudioData } from '../io/audio.js';
import { mediaGroups } from './request.js';
import type { MediaGroup } from './types.js';

export interface PrepInput {
  /** The prompt after the chat template, with <|image_N|>/<|audio_N|> tags. */
  promptText: string;
  images: RgbImage[];
  audios: AudioData[];
  mode: InputMode;
}

export interface PreparedMedia {
  media: MediaGroup[];
  /** Placeholder tokens per image and per audio clip, in prompt order. */
  imageTokens: number[];
  audioTokens: number[];
}

export interface Prepared extends PreparedMedia {
  ids: Int32Array;
}

/** Crops, features and content keys; needs no tokenizer, so the worker loads one only for long prompts. */
export function prepareMedia(imageCfg: ImageProcessorConfig, input: PrepInput): PreparedMedia {
  const pi = input.images.length ? processImages(input.images, imageCfg) : null;
  const af = input.audios.length ? extractAudioFeatures(input.audios) : null;
  return { media: mediaGroups(pi, af, input.mode, imageCfg), imageTokens: pi?.numImgTokens ?? [], audioTokens: af?.embedSizes ?? [] };
}

export function promptIds(tok: Phi4Tokenizer, promptText: string, m: PreparedMedia): Int32Array {
  return buildInputIds(tok, promptText, m.imageTokens, m.audioTokens);
}

export function preparePromptInputs(tok: Phi4Tokenizer, imageCfg: ImageProcessorConfig, input: PrepInput): Prepared {
  const m = prepareMedia(imageCfg, input);
  return { ...m, ids: promptIds(tok, input.promptText, m) };
}

/**
 * Below this many prompt characters, a prompt without media is tokenized on the calling thread: at worst (no
 * spaces) about 15 ms here, less than a worker round trip can cost when a large job is ahead of it in the queue.
 */
export const INLINE_PREP_CHARS = 8192;

/** The prompt text is short enough to tokenize on the calling thread. */
export function textIsSmall(input: PrepInput): boolean {
  return input.promptText.length <= INLINE_PREP_CHARS;
}

/** Nothing worth a worker: short text and no media. */
export function prepIsSmall(input: PrepInput): boolean {
  return !input.images.length && !input.audios.length && textIsSmall(input);
}
