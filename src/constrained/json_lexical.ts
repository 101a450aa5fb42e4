// JSON lexical pieces as NFA fragments: bounded whitespace, strings (valid JSON escapes, valid UTF-8, no raw
// control characters), numbers with bounded digit counts, literals, and "any JSON value" to a bounded depth.
// Every bound here exists so that gibberish logits cannot loop forever inside one lexeme and so that every
// number parses to a finite double.
import { type Frag, GrammarError, NfaBuilder } from './nfa.js';

/** Most integer digits: |x| <= 999_999_999_999_999 < 2^53, so every integer is exact and safe. */
export const MAX_INT_DIGITS = 15;
/** Most fraction digits. */
export const MAX_FRACTION_DIGITS = 15;
/** Most exponent digits: |exponent| <= 99 keeps every number finite (< 1e115). */
export const MAX_EXPONENT_DIGITS = 2;
/** Most string characters a min/maxLength bound may unroll to. */
export const MAX_LENGTH_BOUND = 4096;

export interface JsonLexOptions {
  /** Whitespace between tokens: an optional newline, then up to this many spaces. 0 = compact JSON only. */
  maxIndent: number;
  /** Nesting depth of objects/arrays in "any JSON value" positions (json_object mode, `{}` schemas). */
  anyDepth: number;
}

export const DEFAULT_LEX: JsonLexOptions = { maxIndent: 16, anyDepth: 4 };

const c = (ch: string) => ch.charCodeAt(0);

export class JsonLexer {
  constructor(readonly b: NfaBuilder, readonly opts: JsonLexOptions) {}

  /** `\n? {0,maxIndent}` — bounded, so whitespace alone can never run forever. */
  ws(): Frag {
    const { b } = this;
    if (this.opts.maxIndent <= 0) return b.empty();
    const nl = b.optional(b.bytes('\n'));
    return b.seq(nl, b.repeat(() => b.bytes(' '), 0, this.opts.maxIndent));
  }

  /** One JSON string character: unescaped UTF-8 (well-formed, no surrogates) or an escape (no surrogate \u). */
  char(): Frag {
    const { b } = this;
    const s = b.state(), e = b.state();
    b.edge(s, 0x20, 0x21, e);
    b.edge(s, 0x23, 0x5b, e);
    b.edge(s, 0x5d, 0x7f, e);
    const t1 = b.state(); // one continuation byte left
    const t2 = b.state(); // two left
    b.edge(t1, 0x80, 0xbf, e);
    b.edge(t2, 0x80, 0xbf, t1);
    b.edge(s, 0xc2, 0xdf, t1);
    const e0 = b.state(); b.edge(s, 0xe0, 0xe0, e0); b.edge(e0, 0xa0, 0xbf, t1);
    b.edge(s, 0xe1, 0xec, t2);
    const ed = b.state(); b.edge(s, 0xed, 0xed, ed); b.edge(ed, 0x80, 0x9f, t1);
    b.edge(s, 0xee, 0xef, t2);
    const t3 = b.state(); b.edge(t3, 0x80, 0xbf, t2);
    const f0 = b.state(); b.edge(s, 0xf0, 0xf0, f0); b.edge(f0, 0x90, 0xbf, t2);
    b.edge(s, 0xf1, 0xf3, t3);
    const f4 = b.state(); b.edge(s, 0xf4, 0xf4, f4); b.edge(f4, 0x80, 0x8f, t2);
    // Escapes: \" \\ \/ \b \f \n \r \t, or \uXXXX outside D800-DFFF.
    const esc = b.state();
    b.edge(s, 0x5c, 0x5c, esc);
    for (const ch of '"\\/bfnrt') b.edge(esc, c(ch), c(ch), e);
    const u1 = b.state(), u2 = b.state(), u2low = b.state(), u3 = b.state(), u4 = b.state();
    b.edge(esc, c('u'), c('u'), u1);
    const hex = (from: number, to: number) => {
      b.edge(from, c('0'), c('9'), to); b.edge(from, c('a'), c('f'), to); b.edge(from, c('A'), c('F'), to);
    };
    b.edge(u1, c('0'), c('9'), u2); b.edge(u1, c('a'), c('c'), u2); b.edge(u1, c('A'), c('C'), u2);
    b.edge(u1, c('e'), c('f'), u2); b.edge(u1, c('E'), c('F'), u2);
    b.edge(u1, c('d'), c('d'), u2low); b.edge(u1, c('D'), c('D'), u2low);
    hex(u2, u3);
    b.edge(u2low, c('0'), c('7'), u3);
    hex(u3, u4);
    hex(u4, e);
    return { start: s, end: e };
  }

  /** A JSON string of minLength..maxLength characters (code points; escapes count as one, as ajv counts). */
  string(minLength = 0, maxLength?: number): Frag {
    const { b } = this;
    if (Math.max(minLength, maxLength ?? 0) > MAX_LENGTH_BOUND) {
      throw new GrammarError(`string length bounds above ${MAX_LENGTH_BOUND} are not supported (minLength/maxLength)`, ['maxLength']);
    }
    let body: Frag;
    if (minLength === 0 && maxLength === undefined) {
      const ch = this.char();
      b.epsilon(ch.end, ch.start);
      body = { start: ch.start, end: ch.start };
    } else {
      body = b.repeat(() => this.char(), minLength, maxLength);
    }
    return b.seq(b.bytes('"'), body, b.bytes('"'));
  }

  private digits(min: number, max: number): Frag {
    return this.b.repeat(() => this.b.ranges([c('0'), c('9')]), min, max);
  }

  /** Integer without exponent: `-?(0|[1-9][0-9]{0,14})`; `sign: 'nonneg'` drops '-', `'positive'` also 0. */
  integer(sign: 'any' | 'nonneg' | 'positive' = 'any'): Frag {
    const { b } = this;
    const nonzero = b.seq(b.ranges([c('1'), c('9')]), this.digits(0, MAX_INT_DIGITS - 1));
    const magnitude = sign === 'positive' ? nonzero : b.alt([b.bytes('0'), nonzero]);
    return sign === 'any' ? b.seq(b.optional(b.bytes('-')), magnitude) : magnitude;
  }

  /** JSON number with bounded digits: int part, optional fraction, optional exponent (finite by construction). */
  number(sign: 'any' | 'nonneg' = 'any'): Frag {
    const { b } = this;
    const frac = b.optional(b.seq(b.bytes('.'), this.digits(1, MAX_FRACTION_DIGITS)));
    const exp = b.optional(b.seq(b.ranges([c('e'), c('e')], [c('E'), c('E')]),
      b.optional(b.ranges([c('+'), c('+')], [c('-'), c('-')])), this.digits(1, MAX_EXPONENT_DIGITS)));
    return b.seq(this.integer(sign), frac, exp);
  }

  /** A JSON value written exactly as JSON.stringify writes it. */
  literal(value: unknown): Frag {
    return this.b.text(JSON.stringify(value));
  }

  boolean(): Frag {
    return this.b.alt([this.b.text('true'), this.b.text('false')]);
  }

  /** `{ ws (key : ws value ws (, ws key : ws value ws)*)? }` with one copy of the value (a loop). */
  objectOf(key: () => Frag, value: () => Frag, allowEmpty = true): Frag {
    const { b } = this;
    const open = b.seq(b.bytes('{'), this.ws());
    const member = b.seq(key(), b.bytes(':'), this.ws(), value(), this.ws());
    const after = b.state();
    b.epsilon(open.end, member.start);
    b.epsilon(member.end, after);
    const comma = b.seq(b.bytes(','), this.ws());
    b.epsilon(after, comma.start);
    b.epsilon(comma.end, member.start);
    const close = b.bytes('}');
    b.epsilon(after, close.start);
    if (allowEmpty) b.epsilon(open.end, close.start);
    return { start: open.start, end: close.end };
  }

  /** Any JSON value; objects/arrays nest at most `depth` levels (at depth 0 only `{}` and `[]`). */
  anyValue(depth = this.opts.anyDepth): Frag {
    const { b } = this;
    const parts = [this.string(), this.number(), this.boolean(), b.text('null'), this.anyObject(depth), this.anyArray(depth)];
    return b.alt(parts);
  }

  anyObject(depth = this.opts.anyDepth): Frag {
    const { b } = this;
    if (depth <= 0) return b.seq(b.bytes('{'), this.ws(), b.bytes('}'));
    return this.objectOf(() => this.string(), () => this.anyValue(depth - 1));
  }

  anyArray(depth = this.opts.anyDepth): Frag {
    const { b } = this;
    if (depth <= 0) return b.seq(b.bytes('['), this.ws(), b.bytes(']'));
    return this.arrayOf(() => this.anyValue(depth - 1), 0, undefined);
  }

  /** `[ ws (item ws (, ws item ws)*)? ]` with minItems..maxItems. */
  arrayOf(item: () => Frag, minItems: number, maxItems: number | undefined): Frag {
    const { b } = this;
    const items = b.list(() => b.seq(item(), this.ws()), () => b.seq(b.bytes(','), this.ws()), minItems, maxItems);
    return b.seq(b.bytes('['), this.ws(), items, b.bytes(']'));
  }
}
