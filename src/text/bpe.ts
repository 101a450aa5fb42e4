// Byte-level BPE core: a rank table over byte strings and the tiktoken merge algorithm.
//
// Byte strings are held as "binary" JS strings (one char per byte, codes 0..255), which makes them cheap Map keys.
// For o200k-derived vocabularies the token id is the merge rank, so "merge the adjacent pair whose concatenation has
// the lowest id" reproduces tiktoken (and HF BPE with merges ordered by rank).

import { createRequire } from 'node:module';
import { O200K_RANK_COUNT } from './special_tokens.js';

/** Binary string (one char per byte) of the UTF-8 encoding of `text`. */
export function utf8Binary(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

export function binaryToBytes(bin: string): Uint8Array {
  return new Uint8Array(Buffer.from(bin, 'latin1'));
}

// ---------------------------------------------------------------------------------------------------------------
// GPT-2 byte-level alphabet (`bytes_to_unicode`): printable bytes map to themselves, the other 68 bytes to U+0100…

let byteToUnicode: string[] | undefined;
let unicodeToByte: Map<string, number> | undefined;

function byteLevelTables(): { enc: string[]; dec: Map<string, number> } {
  if (!byteToUnicode || !unicodeToByte) {
    const enc: string[] = new Array(256);
    const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    let extra = 0;
    for (let b = 0; b < 256; b++) enc[b] = String.fromCharCode(printable(b) ? b : 256 + extra++);
    byteToUnicode = enc;
    unicodeToByte = new Map(enc.map((ch, b) => [ch, b]));
  }
  return { enc: byteToUnicode, dec: unicodeToByte };
}

/** Binary string → HF byte-level token string (e.g. " world" → "Ġworld"). */
export function binaryToByteLevel(bin: string): string {
  const { enc } = byteLevelTables();
  let out = '';
  for (let i = 0; i < bin.length; i++) out += enc[bin.charCodeAt(i)];
  return out;
}

/** HF byte-level token string → binary string, or undefined when a char is outside the byte-level alphabet. */
export function byteLevelToBinary(token: string): string | undefined {
  const { dec } = byteLevelTables();
  let out = '';
  for (const ch of token) {
    const b = dec.get(ch);
    if (b === undefined) return undefined;
    out += String.fromCharCode(b);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

const PIECE_CACHE_LIMIT = 100_000; // entries; the cache is dropped wholesale when full

/** Rank table: byte string ↔ id. Shared by every tokenizer built on the same vocabulary. */
export class BpeVocab {
  /** id → binary string (undefined for holes in the id space). */
  readonly tokenById: (string | undefined)[] = [];
  private readonly pieceCache = new Map<string, number[]>();

  constructor(readonly rankByBinary: Map<string, number>) {
    for (const [bin, id] of rankByBinary) this.tokenById[id] = bin;
    for (let b = 0; b < 256; b++) {
      if (!rankByBinary.has(String.fromCharCode(b))) {
        throw new Error(`BPE vocabulary lacks the single byte 0x${b.toString(16)}; a byte-level vocabulary must hold all 256 bytes`);
      }
    }
  }

  get size(): number {
    return this.rankByBinary.size;
  }

  /** Ids of one pre-tokenized piece (binary string). Results are cached per piece. */
  encodePiece(piece: string): number[] {
    const whole = this.rankByBinary.get(piece);
    if (whole !== undefined) return [whole];
    let ids = this.pieceCache.get(piece);
    if (!ids) {
      ids = bytePairMerge(piece, this.rankByBinary);
      if (this.pieceCache.size >= PIECE_CACHE_LIMIT) this.pieceCache.clear();
      this.pieceCache.set(piece, ids);
    }
    return ids;
  }
}

/** Byte string → rank; a Map, or a filtered view of one (merge derivation restricts ranks). */
export interface RankLookup {
  get(binary: string): number | undefined;
}

/**
 * tiktoken's merge loop: repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on
 * ties) until no adjacent pair is in the table. A heap of candidate pairs keeps long pieces O(n log n); stale heap
 * entries are detected by checking that the pair's span still consists of exactly two live parts.
 */
export function bytePairMerge(piece: string, ranks: RankLookup): number[] {
  const n = piece.length;
  const end = new Int32Array(n); // end[s] = end offset of the part starting at s; -1 when s is no longer a part start
  const prev = new Int32Array(n); // prev[s] = start of the part before the one at s
  for (let i = 0; i < n; i++) { end[i] = i + 1; prev[i] = i - 1; }

  const heap = new PairHeap();
  const pushPair = (start: number, stop: number) => {
    const rank = ranks.get(piece.slice(start, stop));
    if (rank !== undefined) heap.push(rank, start, stop);
  };
  for (let i = 0; i + 1 < n; i++) pushPair(i, i + 2);

  while (heap.length > 0) {
    const [start, stop] = heap.pop();
    const mid = end[start]!;
    if (mid < 0 || mid >= n || end[mid] !== stop) continue; // stale: a part changed since this pair was pushed
    end[start] = stop;
    end[mid] = -1;
    if (stop < n) prev[stop] = start;
    if (start > 0) pushPair(prev[start]!, stop);
    if (stop < n) pushPair(start, end[stop]!);
  }

  const ids: number[] = [];
  for (let s = 0; s < n; s = end[s]!) ids.push(ranks.get(piece.slice(s, end[s]))!);
  return ids;
}

/** Binary min-heap of (rank, start, stop) ordered by rank, then start (= leftmost first). */
class PairHeap {
  private readonly rank: number[] = [];
  private readonly start: number[] = [];
  private readonly stop: number[] = [];

  get length(): number {
    return this.rank.length;
  }

  push(rank: number, start: number, stop: number): void {
    this.rank.push(rank); this.start.push(start); this.stop.push(stop);
    let i = this.rank.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the minimum; returns [start, stop]. */
  pop(): [number, number] {
    const out: [number, number] = [this.start[0]!, this.stop[0]!];
    const last = this.rank.length - 1;
    this.swap(0, last);
    this.rank.pop(); this.start.pop(); this.stop.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.less(l, m)) m = l;
      if (r < last && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return out;
  }

  private less(a: number, b: number): boolean {
    const ra = this.rank[a]!, rb = this.rank[b]!;
    return ra < rb || (ra === rb && this.start[a]! < this.start[b]!);
  }

  private swap(a: number, b: number): void {
    for (const arr of [this.rank, this.start, this.stop]) { const t = arr[a]!; arr[a] = arr[b]!; arr[b] = t; }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizer regex: the tokenizer.json / tiktoken pattern is written for Rust/Oniguruma. Two constructs differ in JS:
// `(?i:…)` (no inline flags before V8 12.5) and `\s` (JS adds U+FEFF and lacks U+0085; Rust/Oniguruma use the
// Unicode White_Space property).

/** Unicode White_Space, as Rust `char::is_whitespace` and Oniguruma `\s` define it (class body, no brackets). */
export const WHITE_SPACE_CLASS = '\\t-\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const WHITE_SPACE_RE = new RegExp(`[${WHITE_SPACE_CLASS}]`, 'u');

export function isWhiteSpace(ch: string): boolean {
  return WHITE_SPACE_RE.test(ch);
}

/** The o200k_base pre-tokenizer (SPEC §1.2), in its Rust form. */
export const O200K_PATTERN =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
  "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
  "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Translates a Rust-syntax pre-tokenizer pattern into an equivalent JS `u`+`g` RegExp. */
export function rustPatternToRegExp(pattern: string): RegExp {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      const next = pattern[i + 1] ?? '';
      i++;
      if (next === 's') out += inClass ? WHITE_SPACE_CLASS : `[${WHITE_SPACE_CLASS}]`;
      else if (next === 'S' && !inClass) out += `[^${WHITE_SPACE_CLASS}]`;
      else out += ch + next;
    } else if (!inClass && pattern.startsWith('(?i:', i)) {
      const close = pattern.indexOf(')', i);
      if (close < 0) throw new Error(`pre-tokenizer pattern: unclosed "(?i:" at offset ${i}`);
      const body = pattern.slice(i + 4, close);
      if (/[\\[()]/.test(body)) throw new Error(`pre-tokenizer pattern: only literal alternations are supported inside (?i:…), got "${body}"`);
      out += '(?:' + body.replace(/[a-zA-Z]/g, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`) + ')';
      i = close;
    } else {
      if (ch === '[') inClass = true;
      else if (ch === ']') inClass = false;
      out += ch;
    }
  }
  try {
    return new RegExp(out, 'gu');
  } catch (e) {
    throw new Error(`pre-tokenizer pattern cannot be compiled in JS: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// o200k_base ranks from the js-tiktoken package, parsed once per process.

let o200k: BpeVocab | undefined;

interface TiktokenRanksFile {
  pat_str: string;
  bpe_ranks: string;
}

/** Parses js-tiktoken's compressed rank format: lines of `<tag> <first rank> <base64 token> <base64 token> …`. */
export function parseTiktokenRanks(bpeRanks: string): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const line of bpeRanks.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const first = Number.parseInt(fields[1]!, 10);
    for (let k = 2; k < fields.length; k++) ranks.set(Buffer.from(fields[k]!, 'base64').toString('latin1'), first + k - 2);
  }
  return ranks;
}

/** The o200k_base vocabulary (ids 0..199997), parsed on first use and shared by the whole process. */
export function o200kVocab(): BpeVocab {
  if (!o200k) {
    const ranks = parseTiktokenRanks(requireO200kRanks().bpe_ranks);
    if (ranks.size !== O200K_RANK_COUNT) throw new Error(`js-tiktoken o200k_base holds ${ranks.size} ranks, expected ${O200K_RANK_COUNT}; check the js-tiktoken version`);
    o200k = new BpeVocab(ranks);
  }
  return o200k;
}

function requireO200kRanks(): TiktokenRanksFile {
  // The ranks ship as an ESM module and a CJS twin; the CJS one can be loaded synchronously.
  const mod = createRequire(import.meta.url)('js-tiktoken/ranks/o200k_base') as TiktokenRanksFile;
  if (typeof mod?.bpe_ranks !== 'string') throw new Error('js-tiktoken/ranks/o200k_base has an unexpected shape (no bpe_ranks string); check the js-tiktoken version');
  return mod;
}
