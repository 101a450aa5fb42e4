// Writes HF-format tokenizer files for Phi-4-multimodal from the offline o200k ranks (for generated checkpoints
// and tests).
//
// tokenizer.json merges: HF BPE needs a merge list, tiktoken has only ranks. For every multi-byte token T we run
// tiktoken's BPE on T's bytes using only ranks below rank(T); the two parts left at the end are the pair whose merge
// creates T (the "last merge" of training). Merges are listed in the order of rank(T), so merge priority equals
// tiktoken rank. This is one merge per token, like the hub's merges.txt (2.42 MB for ~200k tokens). For o200k every
// one of the 199,742 multi-byte tokens ends in exactly two parts; a token of another vocabulary that does not would
// get no merge (HF still finds it as a whole word, since `ignore_merges` is set).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BpeVocab, binaryToByteLevel, bytePairMerge, O200K_PATTERN, o200kVocab } from './bpe.js';
import { PHI4MM_CHAT_TEMPLATE } from './chat_template.js';
import { type AddedToken, ENDOFTEXT_TOKEN, MODEL_MAX_LENGTH, PHI4MM_ADDED_TOKENS } from './special_tokens.js';

export interface WriteTokenizerOptions {
  /** Also write tokenizer.json (~8 MB, ~1 s to derive merges). Default true. */
  tokenizerJson?: boolean;
  /** chat_template stored in tokenizer_config.json; default the Phi-4-multimodal template. */
  chatTemplate?: string;
}

/** Writes tokenizer_config.json (and tokenizer.json) into `dir`; returns the paths written. */
export function writeTokenizerFiles(dir: string, opts: WriteTokenizerOptions = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const configPath = join(dir, 'tokenizer_config.json');
  writeFileSync(configPath, JSON.stringify(tokenizerConfigJson(opts.chatTemplate ?? PHI4MM_CHAT_TEMPLATE), null, 2) + '\n');
  written.push(configPath);
  if (opts.tokenizerJson ?? true) {
    const tokPath = join(dir, 'tokenizer.json');
    writeFileSync(tokPath, JSON.stringify(tokenizerJson(o200kVocab(), PHI4MM_ADDED_TOKENS)));
    written.push(tokPath);
  }
  return written;
}

export function tokenizerConfigJson(chatTemplate: string): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  for (const t of PHI4MM_ADDED_TOKENS) {
    decoder[String(t.id)] = { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special };
  }
  return {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: ENDOFTEXT_TOKEN,
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: ENDOFTEXT_TOKEN,
    extra_special_tokens: {},
    model_max_length: MODEL_MAX_LENGTH,
    pad_token: ENDOFTEXT_TOKEN,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: ENDOFTEXT_TOKEN,
  };
}

/**
 * HF tokenizers JSON in the Xenova/gpt-4o layout. Added tokens are also placed in `model.vocab` under their ids:
 * HF assigns an added token that is missing from the vocab the next free id, which would be wrong here.
 */
export function tokenizerJson(vocab: BpeVocab, added: readonly AddedToken[]): Record<string, unknown> {
  const vocabJson: Record<string, number> = {};
  for (let id = 0; id < vocab.tokenById.length; id++) {
    const bin = vocab.tokenById[id];
    if (bin !== undefined) vocabJson[binaryToByteLevel(bin)] = id;
  }
  for (const t of added) vocabJson[t.content] = t.id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({ id: t.id, content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: O200K_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true,
      vocab: vocabJson,
      merges: deriveMerges(vocab).map(([l, r]) => `${binaryToByteLevel(l)} ${binaryToByteLevel(r)}`),
    },
  };
}

let mergesCache: { vocab: BpeVocab; merges: [string, string][] } | undefined;

/** One (left, right) binary-string pair per multi-byte token, in rank order (see the file comment). */
export function deriveMerges(vocab: BpeVocab): [string, string][] {
  if (mergesCache?.vocab === vocab) return mergesCache.merges;
  const merges: [string, string][] = [];
  const ranks = vocab.rankByBinary;
  for (let id = 0; id < vocab.tokenById.length; id++) {
    const token = vocab.tokenById[id];
    if (token === undefined || token.length < 2) continue;
    const below = { get: (b: string) => { const r = ranks.get(b); return r !== undefined && r < id ? r : undefined; } };
    const parts = bytePairMerge(token, below);
    if (parts.length !== 2) continue;
    const at = vocab.tokenById[parts[0]!]!.length;
    merges.push([token.slice(0, at), token.slice(at)]);
  }
  mergesCache = { vocab, merges };
  return merges;
}
