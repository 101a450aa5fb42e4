// Text side of the runtime: tokenizer, chat template, prompt ids with media placeholders, sampling, streaming.

export { Phi4Tokenizer, type DecodeOptions, type TokenizerParts } from './tokenizer.js';
export { writeTokenizerFiles, tokenizerConfigJson, tokenizerJson, deriveMerges, type WriteTokenizerOptions } from './tokenizer_files.js';
export { BpeVocab, o200kVocab, O200K_PATTERN } from './bpe.js';
export { applyChatTemplate, renderChat, type ChatMessage, type ChatTemplateOptions } from './chat.js';
export { PHI4MM_CHAT_TEMPLATE } from './chat_template.js';
export { buildInputIds, expandMediaPlaceholders, insertMediaTags, rewriteMediaTags, checkMediaTagNumbering, padBatchLeft, type BuildInputIdsOptions, type PaddedBatch } from './prompt.js';
export { sample, argmax, penalizedScores, samplingDistribution, validateSamplingParams, SamplingState, type SamplingParams } from './sampling.js';
export { Rng } from './rng.js';
export { IncrementalDetokenizer, StopMatcher, TokenTextStream, type FinishReason, type TextStreamOptions, type TextStreamStep } from './stream.js';
export * from './special_tokens.js';
