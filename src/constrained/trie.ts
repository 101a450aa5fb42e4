// Token trie over the vocabulary's byte strings, flattened in preorder: node i holds one byte at depth[i], the
// token id ending there (or -1), and end[i], the index just past its subtree. Walking it against an automaton is
// one linear scan that skips a whole subtree as soon as its prefix is rejected, so tokens sharing a prefix share
// the work. Added tokens (chat markers, <|tool_call|>, EOS) are not in the byte trie: they are matched by id,
// as special symbols of the grammar, and EOS only where the grammar accepts.
import type { Phi4Tokenizer } from '../text/tokenizer.js';
import { plainChars } from './plain.js';
import { MODEL_VOCAB_SIZE } from '../text/special_tokens.js';

export interface TrieTokenSource {
  /** Rows of the logits vector; ids at or past the tokens' range are always masked. */
  vocabSize: number;
  /** Ordinary tokens: id and bytes (binary string, one char per byte). */
  tokens: Iterable<{ id: number; bytes: string }>;
  /** Added tokens by content (never matched as bytes). */
  added: Iterable<{ id: number; content: string }>;
  eosIds: readonly number[];
  /** Build the plain-token index (default true; false for the index's own sub-trie). */
  plainIndex?: boolean;
}

/** Plain string-content tokens by character count, and the trie of all other ordinary tokens (see plain.ts). */
export interface PlainIndex {
  /** Plain token ids sorted by character count. */
  ids: Int32Array;
  /** ids[0 .. upTo[c]) hold at most c characters (c = 0..maxChars). */
  upTo: Int32Array;
  maxChars: number;
  /** Every ordinary token that is not plain. */
  rest: TokenTrie;
}

export class TokenTrie {
  readonly vocabSize: number;
  readonly nodeByte: Uint8Array;
  readonly nodeDepth: Uint16Array;
  readonly nodeEnd: Int32Array;
  readonly nodeToken: Int32Array;
  /** Further ids whose bytes equal an earlier token's (node index → ids); nodeHasDup flags those nodes. */
  readonly dupTokens = new Map<number, number[]>();
  readonly nodeHasDup: Uint8Array;
  readonly maxDepth: number;
  readonly eosIds: Int32Array;
  readonly plain: PlainIndex | undefined;
  private readonly addedByContent = new Map<string, number>();
  /** Bytes of ordinary token `id`: tokenData[tokenStart[id] .. tokenStart[id + 1]). */
  private readonly tokenData: Uint8Array;
  private readonly tokenStart: Int32Array;
  private readonly addedIds = new Set<number>();

  constructor(src: TrieTokenSource) {
    this.vocabSize = src.vocabSize;
    this.eosIds = Int32Array.from(src.eosIds);
    for (const a of src.added) {
      this.addedByContent.set(a.content, a.id);
      this.addedIds.add(a.id);
    }
    const list: { id: number; bytes: string }[] = [];
    const lengths = new Int32Array(this.vocabSize);
    let total = 0;
    for (const t of src.tokens) {
      if (t.bytes.length === 0 || this.addedIds.has(t.id) || t.id >= this.vocabSize || lengths[t.id]) continue;
      list.push(t);
      lengths[t.id] = t.bytes.length;
      total += t.bytes.length;
    }
    this.tokenStart = new Int32Array(this.vocabSize + 1);
    for (let id = 0; id < this.vocabSize; id++) this.tokenStart[id + 1] = this.tokenStart[id]! + lengths[id]!;
    this.tokenData = new Uint8Array(total);
    for (const t of list) {
      const at = this.tokenStart[t.id]!;
      for (let k = 0; k < t.bytes.length; k++) this.tokenData[at + k] = t.bytes.charCodeAt(k);
    }
    list.sort((a, b) => (a.bytes < b.bytes ? -1 : a.bytes > b.bytes ? 1 : a.id - b.id));
    const bytes: number[] = [], depth: number[] = [], token: number[] = [];
    const path: number[] = []; // node index per depth along the previous token
    let prev = '';
    let maxDepth = 0;
    for (const t of list) {
      let lcp = 0;
      while (lcp < prev.length && lcp < t.bytes.length && prev.charCodeAt(lcp) === t.bytes.charCodeAt(lcp)) lcp++;
      for (let d = lcp; d < t.bytes.length; d++) {
        path[d] = bytes.length;
        bytes.push(t.bytes.charCodeAt(d));
        depth.push(d);
        token.push(-1);
      }
      const node = path[t.bytes.length - 1]!;
      if (token[node] === -1) token[node] = t.id;
      else {
        const dups = this.dupTokens.get(node) ?? [];
        dups.push(t.id);
        this.dupTokens.set(node, dups);
      }
      maxDepth = Math.max(maxDepth, t.bytes.length);
      prev = t.bytes;
    }
    const n = bytes.length;
    this.nodeByte = Uint8Array.from(bytes);
    this.nodeDepth = Uint16Array.from(depth);
    this.nodeToken = Int32Array.from(token);
    this.nodeEnd = new Int32Array(n);
    const open: number[] = [];
    for (let i = 0; i < n; i++) {
      while (open.length && this.nodeDepth[open[open.length - 1]!]! >= this.nodeDepth[i]!) this.nodeEnd[open.pop()!] = i;
      open.push(i);
    }
    for (const i of open) this.nodeEnd[i] = n;
    this.maxDepth = maxDepth;
    this.nodeHasDup = new Uint8Array(n);
    for (const i of this.dupTokens.keys()) this.nodeHasDup[i] = 1;
    this.plain = src.plainIndex === false ? undefined : buildPlainIndex(list, src.vocabSize);
  }

  get numNodes(): number {
    return this.nodeByte.length;
  }

  /** Bytes of an ordinary token; undefined for added tokens and ids without a token. */
  tokenBytes(id: number): Uint8Array | undefined {
    if (!(id >= 0 && id < this.vocabSize)) return undefined;
    const a = this.tokenStart[id]!, b = this.tokenStart[id + 1]!;
    return a === b ? undefined : this.tokenData.subarray(a, b);
  }

  /** Id of the added token with this content. */
  addedId(content: string): number | undefined {
    return this.addedByContent.get(content);
  }

  isAdded(id: number): boolean {
    return this.addedIds.has(id);
  }
}

function buildPlainIndex(list: { id: number; bytes: string }[], vocabSize: number): PlainIndex {
  const plain: { id: number; chars: number }[] = [];
  const rest: { id: number; bytes: string }[] = [];
  for (const t of list) {
    const chars = plainChars(t.bytes);
    if (chars > 0) plain.push({ id: t.id, chars });
    else rest.push(t);
  }
  plain.sort((a, b) => a.chars - b.chars || a.id - b.id);
  const maxChars = plain.length ? plain[plain.length - 1]!.chars : 0;
  const upTo = new Int32Array(maxChars + 1);
  let k = 0;
  for (let c = 0; c <= maxChars; c++) {
    while (k < plain.length && plain[k]!.chars <= c) k++;
    upTo[c] = k;
  }
  return {
    ids: Int32Array.from(plain, (p) => p.id),
    upTo,
    maxChars,
    rest: new TokenTrie({ vocabSize, tokens: rest, added: [], eosIds: [], plainIndex: false }),
  };
}

const trieCache = new WeakMap<Phi4Tokenizer, Map<number, TokenTrie>>();

/**
 * The trie of a tokenizer's vocabulary, built once per tokenizer (and logits width) and cached. `vocabSize` is
 * the logits length (the model's 200,064 rows; ids past the tokenizer's are padding and always masked).
 */
export function tokenTrieFor(tokenizer: Phi4Tokenizer, vocabSize = Math.max(tokenizer.vocabSize, MODEL_VOCAB_SIZE)): TokenTrie {
  let byWidth = trieCache.get(tokenizer);
  if (!byWidth) trieCache.set(tokenizer, (byWidth = new Map()));
  const hit = byWidth.get(vocabSize);
  if (hit) return hit;
  const tokens: { id: number; bytes: string }[] = [];
  const added: { id: number; content: string }[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const a = tokenizer.addedToken(id);
    if (a) { added.push({ id, content: a.content }); continue; }
    const bytes = tokenizer.tokenBinary(id);
    if (bytes !== undefined) tokens.push({ id, bytes });
  }
  const trie = new TokenTrie({ vocabSize, tokens, added, eosIds: tokenizer.eosTokenIds });
  byWidth.set(vocabSize, trie);
  return trie;
}
