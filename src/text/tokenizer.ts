// Phi-4-multimodal tokenizer: o200k_base byte-level BPE plus the Phi chat/tool/media added tokens, with HF
// `tokenizers` semantics (SPEC §1.5): added tokens are split out first (leftmost-longest), rstrip/lstrip tokens absorb
// adjacent whitespace, no BOS is added; every other span goes through the pre-tokenizer regex and BPE.

import { BpeVocab, binaryToByteLevel, byteLevelToBinary, isWhiteSpace, O200K_PATTERN, o200kVocab, rustPatternToRegExp, utf8Binary } from './bpe.js';
import { PHI4MM_CHAT_TEMPLATE } from './chat_template.js';
import { loadTokenizerDir } from './tokenizer_load.js';
import { type AddedToken, DEFAULT_EOS_IDS, ENDOFTEXT_TOKEN, PHI4MM_ADDED_TOKENS } from './special_tokens.js';

export type { AddedToken } from './special_tokens.js';

export interface DecodeOptions {
  /** Drop added tokens flagged `special` (chat headers, <|end|>, media placeholders). Tool tokens are not special. */
  skipSpecialTokens?: boolean;
}

export interface TokenizerParts {
  vocab: BpeVocab;
  addedTokens: readonly AddedToken[];
  /** Rust-syntax pre-tokenizer regex; default o200k_base. */
  pattern?: string;
  /** The checkpoint's chat template; default: the Phi-4-multimodal template. */
  chatTemplate?: string;
  eosToken?: string;
  bosToken?: string;
  padToken?: string;
  /** Stop ids for generation (generation_config.json `eos_token_id`). */
  eosTokenIds?: readonly number[];
  /** Where the vocabulary came from, for diagnostics. */
  source?: string;
}

interface AddedEntry {
  token: AddedToken;
  /** UTF-8 bytes of the content as a binary string (see bpe.ts). */
  binary: string;
}

const utf8Lossy = new TextDecoder('utf-8', { fatal: false });

export class Phi4Tokenizer {
  readonly chatTemplate: string;
  readonly eosToken: string;
  readonly bosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly eosTokenIds: readonly number[];
  readonly source: string;
  private readonly vocab: BpeVocab;
  private readonly pattern: RegExp;
  private readonly addedById = new Map<number, AddedEntry>();
  private readonly addedByContent = new Map<string, AddedToken>();
  /** Alternation of all added-token contents, longest first, so the regex finds the leftmost-longest match. */
  private readonly addedRegex: RegExp | undefined;
  readonly vocabSize: number;

  constructor(parts: TokenizerParts) {
    this.vocab = parts.vocab;
    this.pattern = rustPatternToRegExp(parts.pattern ?? O200K_PATTERN);
    for (const t of parts.addedTokens) {
      if (!t.content) throw new Error(`added token ${t.id} has empty content`);
      this.addedById.set(t.id, { token: t, binary: utf8Binary(t.content) });
      this.addedByContent.set(t.content, t);
    }
    const contents = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length);
    this.addedRegex = contents.length ? new RegExp(contents.map(escapeRegExp).join('|'), 'g') : undefined;
    this.chatTemplate = parts.chatTemplate ?? PHI4MM_CHAT_TEMPLATE;
    this.eosToken = parts.eosToken ?? ENDOFTEXT_TOKEN;
    this.bosToken = parts.bosToken;
    this.padToken = parts.padToken;
    this.eosTokenIds = parts.eosTokenIds ?? DEFAULT_EOS_IDS;
    this.source = parts.source ?? 'custom';
    let maxId = this.vocab.tokenById.length - 1;
    for (const id of this.addedById.keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  /** o200k_base ranks from js-tiktoken plus the Phi-4-multimodal added tokens; reads no files. */
  static offline(): Phi4Tokenizer {
    return new Phi4Tokenizer({ vocab: o200kVocab(), addedTokens: PHI4MM_ADDED_TOKENS, source: 'o200k_base (js-tiktoken)' });
  }

  /**
   * Tokenizer of a checkpoint folder: tokenizer.json (or vocab.json) when present, else the offline o200k ranks;
   * added tokens, chat template and eos from tokenizer_config.json / chat_template.jinja / generation_config.json.
   */
  static fromDir(dir: string): Phi4Tokenizer {
    return new Phi4Tokenizer(loadTokenizerDir(dir));
  }

  /**
   * Token ids of `text` (no BOS). Literal added-token strings become their control tokens, as in HF. The
   * `single_word` and `normalized` flags are not interpreted (false for every Phi-4 token; there is no normalizer).
   */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const ids: number[] = [];
    let cursor = 0;
    const re = this.addedRegex;
    if (re) {
      re.lastIndex = 0;
      for (let m = re.exec(text); m; m = re.exec(text)) {
        const token = this.addedByContent.get(m[0])!;
        let start = m.index, stop = start + m[0].length;
        if (token.lstrip) while (start > cursor && isWhiteSpace(text[start - 1]!)) start--;
        if (token.rstrip) while (stop < text.length && isWhiteSpace(text[stop]!)) stop++;
        this.encodeOrdinary(text.slice(cursor, start), ids);
        ids.push(token.id);
        cursor = re.lastIndex = stop;
      }
    }
    this.encodeOrdinary(text.slice(cursor), ids);
    return ids;
  }

  /** Pre-tokenizer + BPE only: added-token strings are treated as plain text (HF `split_special_tokens=True`). */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    if (!text) return out;
    for (const m of text.matchAll(this.pattern)) {
      for (const id of this.vocab.encodePiece(utf8Binary(m[0]))) out.push(id);
    }
    return out;
  }

  /** Concatenated token bytes. Ids without a token are skipped (as HF does). */
  decodeBytes(ids: ArrayLike<number>, opts: DecodeOptions = {}): Uint8Array {
    let bin = '';
    for (let i = 0; i < ids.length; i++) bin += this.tokenBinary(ids[i]!, opts.skipSpecialTokens ?? false) ?? '';
    return new Uint8Array(Buffer.from(bin, 'latin1'));
  }

  /** Text of `ids`; invalid UTF-8 becomes U+FFFD (HF byte-level decoder behaviour). */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return utf8Lossy.decode(this.decodeBytes(ids, opts));
  }

  /**
   * Bytes of one token as a binary string; undefined for ids without a token and for special tokens when skipped.
   * Used by the incremental detokenizer.
   */
  tokenBinary(id: number, skipSpecial = false): string | undefined {
    const added = this.addedById.get(id);
    if (added) return skipSpecial && added.token.special ? undefined : added.binary;
    return this.vocab.tokenById[id];
  }

  /** HF token string: byte-level form for vocabulary tokens (" world" → "Ġworld"), content for added tokens. */
  idToToken(id: number): string | undefined {
    const added = this.addedById.get(id);
    if (added) return added.token.content;
    const bin = this.vocab.tokenById[id];
    return bin === undefined ? undefined : binaryToByteLevel(bin);
  }

  tokenToId(token: string): number | undefined {
    const added = this.addedByContent.get(token);
    if (added) return added.id;
    const bin = byteLevelToBinary(token);
    return bin === undefined ? undefined : this.vocab.rankByBinary.get(bin);
  }

  /** The added token with this id, if any. */
  addedToken(id: number): AddedToken | undefined {
    return this.addedById.get(id)?.token;
  }

  get addedTokens(): AddedToken[] {
    return [...this.addedById.values()].map((e) => e.token).sort((a, b) => a.id - b.id);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.token.special ?? false;
  }

  /** Whether `id` has any text (vocabulary or added token); the model's 200064 rows include padding ids. */
  hasToken(id: number): boolean {
    return this.addedById.has(id) || this.vocab.tokenById[id] !== undefined;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
