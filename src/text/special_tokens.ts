// Phi-4-multimodal-instruct added tokens and id constants.
// Copied from the spec's special_tokens.json (itself the hub tokenizer_config.json `added_tokens_decoder`),
// so the product works without the spec folder at run time.

export interface AddedToken {
  id: number;
  content: string;
  /** Dropped by decode({skipSpecialTokens: true}); tool tokens are not special and stay. */
  special: boolean;
  /** Whitespace right after the token is absorbed into it (HF added-token semantics). */
  rstrip: boolean;
  /** Whitespace right before the token is absorbed into it. */
  lstrip: boolean;
  normalized: boolean;
  single_word: boolean;
}

export const PHI4MM_ADDED_TOKENS: readonly AddedToken[] = [
  { id: 199999, content: "<|endoftext|>", special: true, rstrip: false, lstrip: false, normalized: false, single_word: false },
  { id: 200010, content: "<|endoftext10|>", special: true, rstrip: false, lstrip: false, normalized: false, single_word: false },
  { id: 200011, content: "<|endoftext11|>", special: true, rstrip: false, lstrip: false, normalized: false, single_word: false },
  { id: 200018, content: "<|endofprompt|>", special: true, rstrip: false, lstrip: false, normalized: false, single_word: false },
  { id: 200019, content: "<|assistant|>", special: true, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200020, content: "<|end|>", special: true, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200021, content: "<|user|>", special: true, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200022, content: "<|system|>", special: true, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200023, content: "<|tool|>", special: false, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200024, content: "<|/tool|>", special: false, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200025, content: "<|tool_call|>", special: false, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200026, content: "<|/tool_call|>", special: false, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200027, content: "<|tool_response|>", special: false, rstrip: true, lstrip: false, normalized: false, single_word: false },
  { id: 200028, content: "<|tag|>", special: true, rstrip: true, lstrip: false, normalized: false, single_word: false },
];

export const ENDOFTEXT_ID = 199999; // bos = eos(tokenizer) = pad = unk
export const IMAGE_TOKEN_ID = 200010; // <|endoftext10|>, alias <|image_N|>
export const AUDIO_TOKEN_ID = 200011; // <|endoftext11|>, alias <|audio_N|>
export const END_ID = 200020; // <|end|>, end of turn
export const IMAGE_TOKEN = '<|endoftext10|>';
export const AUDIO_TOKEN = '<|endoftext11|>';
export const ENDOFTEXT_TOKEN = '<|endoftext|>';
/** generation_config.json eos_token_id: stop on either. */
export const DEFAULT_EOS_IDS: readonly number[] = [200020, 199999];
/** Rows of the model's embedding / lm_head (config.json vocab_size); ids past the known tokens are padding. */
export const MODEL_VOCAB_SIZE = 200064;
/** Number of o200k_base ranks (ids 0..199997). */
export const O200K_RANK_COUNT = 199998;
export const MODEL_MAX_LENGTH = 128000;
