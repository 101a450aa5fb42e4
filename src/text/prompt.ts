// Prompt ids with media placeholders (SPEC §2.2, the reference processor's _convert_images_audios_text_to_inputs):
//   1. <|image_N|> → <|endoftext10|> and <|audio_N|> → <|endoftext11|> (the number N is ignored),
//   2. tokenize,
//   3. the k-th 200010 becomes imageTokenCounts[k] copies of 200010 and the m-th 200011 audioTokenCounts[m] copies
//      of 200011 (items bound in textual order),
//   4. the placeholder counts must equal the numbers of images and audios.

import { AUDIO_TOKEN, AUDIO_TOKEN_ID, ENDOFTEXT_ID, IMAGE_TOKEN, IMAGE_TOKEN_ID } from './special_tokens.js';
import type { Phi4Tokenizer } from './tokenizer.js';

const IMAGE_TAG = /<\|image_(\d+)\|>/g;
const AUDIO_TAG = /<\|audio_(\d+)\|>/g;

/** Step 1: the user-facing tags become the placeholder tokens' text. */
export function rewriteMediaTags(text: string): string {
  return text.replace(IMAGE_TAG, IMAGE_TOKEN).replace(AUDIO_TAG, AUDIO_TOKEN);
}

export interface BuildInputIdsOptions {
  /** Also require <|image_N|> / <|audio_N|> numbers to run 1..K in order of appearance (vLLM v0's rule). */
  strictNumbering?: boolean;
}

/** Prompt text (chat template already applied) → model input ids with every media placeholder expanded. */
export function buildInputIds(
  tok: Phi4Tokenizer,
  promptText: string,
  imageTokenCounts: readonly number[] = [],
  audioTokenCounts: readonly number[] = [],
  opts: BuildInputIdsOptions = {},
): Int32Array {
  if (opts.strictNumbering) checkMediaTagNumbering(promptText);
  return expandMediaPlaceholders(tok.encode(rewriteMediaTags(promptText)), imageTokenCounts, audioTokenCounts);
}

/** Steps 3–4 on already tokenized ids. */
export function expandMediaPlaceholders(ids: readonly number[], imageTokenCounts: readonly number[], audioTokenCounts: readonly number[]): Int32Array {
  checkCounts('image', imageTokenCounts);
  checkCounts('audio', audioTokenCounts);
  let nImage = 0, nAudio = 0;
  for (const id of ids) {
    if (id === IMAGE_TOKEN_ID) nImage++;
    else if (id === AUDIO_TOKEN_ID) nAudio++;
  }
  if (nImage !== imageTokenCounts.length) throw new Error(mismatch('image', nImage, imageTokenCounts.length));
  if (nAudio !== audioTokenCounts.length) throw new Error(mismatch('audio', nAudio, audioTokenCounts.length));

  const total = ids.length - nImage - nAudio + sum(imageTokenCounts) + sum(audioTokenCounts);
  const out = new Int32Array(total);
  let w = 0, k = 0, m = 0;
  for (const id of ids) {
    const copies = id === IMAGE_TOKEN_ID ? imageTokenCounts[k++]! : id === AUDIO_TOKEN_ID ? audioTokenCounts[m++]! : 1;
    out.fill(id, w, w + copies);
    w += copies;
  }
  return out;
}

/**
 * For a message that carries media but no tags of that kind, prepend <|image_i|>… then <|audio_j|>… (numbered from
 * firstImage / firstAudio, so a conversation can number its media globally), as mistral.rs does. A message that
 * already has tags of a kind must have exactly one per item of that kind.
 */
export function insertMediaTags(content: string, media: { images?: number; audios?: number; firstImage?: number; firstAudio?: number }): string {
  const images = media.images ?? 0, audios = media.audios ?? 0;
  const tags = (kind: 'image' | 'audio', n: number, first: number) => Array.from({ length: n }, (_, i) => `<|${kind}_${first + i}|>`).join('');
  let prefix = '';
  for (const [kind, n, first, re] of [['image', images, media.firstImage ?? 1, IMAGE_TAG], ['audio', audios, media.firstAudio ?? 1, AUDIO_TAG]] as const) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`number of ${kind}s must be a non-negative integer, got ${n}`);
    const present = content.match(re)?.length ?? 0;
    if (present === 0) prefix += tags(kind, n, first);
    else if (present !== n) throw new Error(`message has ${present} <|${kind}_N|> tag(s) but ${n} ${kind}(s) attached; use one tag per ${kind} or none`);
  }
  return prefix + content;
}

/** Throws unless the <|image_N|> numbers (and separately the <|audio_N|> numbers) read 1, 2, …, K in order. */
export function checkMediaTagNumbering(text: string): void {
  for (const [kind, re] of [['image', IMAGE_TAG], ['audio', AUDIO_TAG]] as const) {
    const numbers = [...text.matchAll(re)].map((m) => Number(m[1]));
    numbers.forEach((n, i) => {
      if (n !== i + 1) throw new Error(`<|${kind}_N|> tags must be numbered 1..${numbers.length} in order; tag ${i + 1} is <|${kind}_${n}|>`);
    });
  }
}

function checkCounts(kind: string, counts: readonly number[]): void {
  counts.forEach((c, i) => {
    if (!Number.isInteger(c) || c <= 0) throw new RangeError(`${kind} ${i + 1}: token count must be a positive integer, got ${c}`);
  });
}

function mismatch(kind: string, placeholders: number, items: number): string {
  return `prompt has ${placeholders} ${kind} placeholder(s) (<|${kind}_N|> or <|endoftext${kind === 'image' ? 10 : 11}|>) but ${items} ${kind}(s) were given; reference each ${kind} exactly once`;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export interface PaddedBatch {
  /** [batch, seqLen], left-padded. */
  inputIds: Int32Array;
  /** [batch, seqLen]: 1 on real tokens, 0 on padding. */
  attentionMask: Uint8Array;
  batch: number;
  seqLen: number;
}

/** Left-pads prompts to a common length with pad_token_id (199999), as the reference processor does for batches. */
export function padBatchLeft(seqs: readonly ArrayLike<number>[], padId = ENDOFTEXT_ID): PaddedBatch {
  if (seqs.length === 0) throw new Error('padBatchLeft needs at least one sequence');
  const seqLen = Math.max(...seqs.map((s) => s.length));
  const inputIds = new Int32Array(seqs.length * seqLen).fill(padId);
  const attentionMask = new Uint8Array(seqs.length * seqLen);
  seqs.forEach((s, b) => {
    const offset = b * seqLen + seqLen - s.length;
    inputIds.set(s, offset);
    attentionMask.fill(1, offset, offset + s.length);
  });
  return { inputIds, attentionMask, batch: seqs.length, seqLen };
}
