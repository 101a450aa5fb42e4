// Byte-level NFA with epsilon edges, built Thompson-style. Symbols 0..255 are bytes; symbol SPECIAL_BASE + k
// stands for the added token `specials[k]` (e.g. <|tool_call|>), which the token trie matches by id, never by
// bytes. Fragments have one start and one end; a fragment is used at exactly one place (build a fresh one for
// every use), which keeps the construction trivially correct. The finished automaton is a plain object of typed
// arrays (`NfaSpec`): structured-clone-safe, so a grammar crosses into the engine worker as is.

export const SPECIAL_BASE = 256;
/** Default cap on NFA states; a schema past it gets a clear error instead of eating memory. */
export const DEFAULT_MAX_STATES = 300_000;

export class GrammarError extends Error {
  /** Schema keywords that are not supported, when that is the reason. */
  readonly keywords: string[];
  constructor(message: string, keywords: string[] = []) {
    super(message);
    this.name = 'GrammarError';
    this.keywords = keywords;
  }
}

export interface Frag {
  start: number;
  end: number;
}

export interface NfaSpec {
  numStates: number;
  start: number;
  /** The single accepting state. */
  accept: number;
  /** Edges as [from, lo, hi, to] quadruples; lo..hi is an inclusive symbol range. */
  edges: Int32Array;
  /** Epsilon edges as [from, to] pairs. */
  eps: Int32Array;
  /** Added-token contents; symbol SPECIAL_BASE + k is specials[k]. */
  specials: string[];
}

export class NfaBuilder {
  private n = 0;
  private readonly edgeList: number[] = [];
  private readonly epsList: number[] = [];
  readonly specials: string[] = [];

  constructor(private readonly maxStates = DEFAULT_MAX_STATES) {}

  get numStates(): number {
    return this.n;
  }

  state(): number {
    if (this.n >= this.maxStates) {
      throw new GrammarError(`the grammar needs more than ${this.maxStates} automaton states; simplify the schema ` +
        '(fewer or smaller maxItems/maxLength bounds, less nesting)');
    }
    return this.n++;
  }

  edge(from: number, lo: number, hi: number, to: number): void {
    this.edgeList.push(from, lo, hi, to);
  }

  epsilon(from: number, to: number): void {
    this.epsList.push(from, to);
  }

  /** The empty string. */
  empty(): Frag {
    const s = this.state();
    return { start: s, end: s };
  }

  /** A literal byte string (binary string: one char per byte, or UTF-8 text via `text`). */
  bytes(bin: string): Frag {
    const start = this.state();
    let cur = start;
    for (let i = 0; i < bin.length; i++) {
      const next = this.state();
      const b = bin.charCodeAt(i);
      this.edge(cur, b, b, next);
      cur = next;
    }
    return { start, end: cur };
  }

  text(s: string): Frag {
    return this.bytes(Buffer.from(s, 'utf8').toString('latin1'));
  }

  /** One symbol out of a set of inclusive ranges. */
  ranges(...r: [number, number][]): Frag {
    const start = this.state(), end = this.state();
    for (const [lo, hi] of r) this.edge(start, lo, hi, end);
    return { start, end };
  }

  /** The added token with this content (matched by token id). */
  special(content: string): Frag {
    let k = this.specials.indexOf(content);
    if (k < 0) k = this.specials.push(content) - 1;
    return this.ranges([SPECIAL_BASE + k, SPECIAL_BASE + k]);
  }

  seq(...parts: Frag[]): Frag {
    if (parts.length === 0) return this.empty();
    for (let i = 1; i < parts.length; i++) this.epsilon(parts[i - 1]!.end, parts[i]!.start);
    return { start: parts[0]!.start, end: parts[parts.length - 1]!.end };
  }

  alt(parts: Frag[]): Frag {
    if (parts.length === 1) return parts[0]!;
    const start = this.state(), end = this.state();
    for (const p of parts) {
      this.epsilon(start, p.start);
      this.epsilon(p.end, end);
    }
    return { start, end };
  }

  optional(f: Frag): Frag {
    const start = this.state(), end = this.state();
    this.epsilon(start, f.start);
    this.epsilon(f.end, end);
    this.epsilon(start, end);
    return { start, end };
  }

  /** `make()` repeated min..max times (max undefined: unbounded; one loop copy). */
  repeat(make: () => Frag, min: number, max: number | undefined): Frag {
    const start = this.state();
    let cur = start;
    for (let i = 0; i < min; i++) {
      const f = make();
      this.epsilon(cur, f.start);
      cur = f.end;
    }
    if (max === undefined) {
      const f = make();
      const loop = this.state();
      this.epsilon(cur, loop);
      this.epsilon(loop, f.start);
      this.epsilon(f.end, loop);
      return { start, end: loop };
    }
    const end = this.state();
    for (let i = min; i < max; i++) {
      this.epsilon(cur, end);
      const f = make();
      this.epsilon(cur, f.start);
      cur = f.end;
    }
    this.epsilon(cur, end);
    return { start, end };
  }

  /** `item (sep item)*` with min..max items (max undefined: unbounded). */
  list(item: () => Frag, sep: () => Frag, min: number, max: number | undefined): Frag {
    if (max === 0) return this.empty();
    const first = item();
    const rest = this.repeat(() => this.seq(sep(), item()), Math.max(min - 1, 0), max === undefined ? undefined : max - 1);
    const full = this.seq(first, rest);
    return min === 0 ? this.optional(full) : full;
  }

  finish(root: Frag): NfaSpec {
    return {
      numStates: this.n,
      start: root.start,
      accept: root.end,
      edges: Int32Array.from(this.edgeList),
      eps: Int32Array.from(this.epsList),
      specials: [...this.specials],
    };
  }
}
