// Token ids → text stream: incremental detokenization that never splits a UTF-8 character, stop-string matching
// that never emits (part of) a stop string, and a combined per-request text stream with stop ids and max_tokens.

import type { Phi4Tokenizer } from './tokenizer.js';

/** Emits the text of ids fed one at a time. Concatenated deltas + flush() equal tokenizer.decode(all ids). */
export class IncrementalDetokenizer {
  // stream:true holds an incomplete UTF-8 sequence back until its remaining bytes arrive.
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private readonly skipSpecialTokens: boolean;

  constructor(private readonly tok: Phi4Tokenizer, opts: { skipSpecialTokens?: boolean } = {}) {
    this.skipSpecialTokens = opts.skipSpecialTokens ?? true;
  }

  /** Text completed by this token ('' while a character is still incomplete or the token is skipped). */
  push(id: number): string {
    const bin = this.tok.tokenBinary(id, this.skipSpecialTokens);
    if (!bin) return '';
    return this.decoder.decode(Buffer.from(bin, 'latin1'), { stream: true });
  }

  /** Whatever is held back (an incomplete character becomes U+FFFD). */
  flush(): string {
    return this.decoder.decode();
  }
}

/**
 * Holds back text that could be the start of a stop string. push() returns the text that is safe to emit; once a stop
 * string appears, the text before it is emitted, the stop string and everything after it are not.
 */
export class StopMatcher {
  private held = '';
  private matched: string | undefined;
  private readonly stops: readonly string[];

  constructor(stops: readonly string[]) {
    for (const s of stops) if (typeof s !== 'string' || s.length === 0) throw new Error(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    this.stops = [...stops];
  }

  /** The stop string that matched, once one has. */
  get stoppedOn(): string | undefined {
    return this.matched;
  }

  push(text: string): { text: string; stopped: boolean } {
    if (this.matched !== undefined) return { text: '', stopped: true };
    const buf = this.held + text;
    let at = -1, which: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) { at = i; which = s; }
    }
    if (which !== undefined) {
      this.matched = which;
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    const keep = this.partialSuffixLength(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation without a stop: the held text is plain text after all. */
  flush(): string {
    const out = this.matched === undefined ? this.held : '';
    this.held = '';
    return out;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialSuffixLength(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > best; n--) {
        if (buf.endsWith(s.slice(0, n))) { best = n; break; }
      }
    }
    return best;
  }
}

export type FinishReason = 'stop' | 'length';

export interface TextStreamOptions {
  /** Ids that end generation and add no text (generation_config eos: [200020, 199999]). */
  stopIds?: readonly number[];
  stopStrings?: readonly string[];
  /** Generated-token budget; the stream finishes with 'length' when it is used up. */
  maxTokens?: number;
  skipSpecialTokens?: boolean;
}

export interface TextStreamStep {
  /** Text to show now (may be ''). */
  text: string;
  /** Set on the step that ends generation; the caller stops feeding ids. */
  finishReason: FinishReason | null;
}

/** Per-request text stream: ids in, text deltas and a finish reason out. Counts tokens for usage. */
export class TokenTextStream {
  private readonly detok: IncrementalDetokenizer;
  private readonly stopper: StopMatcher;
  private readonly stopIds: Set<number>;
  private readonly maxTokens: number;
  /** Tokens consumed (including a final stop id), for usage.completion_tokens. */
  completionTokens = 0;
  finishReason: FinishReason | null = null;

  constructor(tok: Phi4Tokenizer, opts: TextStreamOptions = {}) {
    const max = opts.maxTokens ?? Infinity;
    if (!(max === Infinity || (Number.isInteger(max) && max > 0))) throw new RangeError(`max_tokens must be a positive integer, got ${opts.maxTokens}`);
    this.maxTokens = max;
    this.detok = new IncrementalDetokenizer(tok, opts.skipSpecialTokens === undefined ? {} : { skipSpecialTokens: opts.skipSpecialTokens });
    this.stopper = new StopMatcher(opts.stopStrings ?? []);
    this.stopIds = new Set(opts.stopIds ?? tok.eosTokenIds);
  }

  push(id: number): TextStreamStep {
    if (this.finishReason) throw new Error('TokenTextStream: push after the stream finished');
    this.completionTokens++;
    if (this.stopIds.has(id)) return this.finish('stop', '');
    const step = this.stopper.push(this.detok.push(id));
    if (step.stopped) return this.finish('stop', step.text, false);
    if (this.completionTokens >= this.maxTokens) return this.finish('length', step.text);
    return { text: step.text, finishReason: null };
  }

  /** Ends the stream from outside (e.g. the context is full): returns the held-back text. */
  end(reason: FinishReason = 'length'): TextStreamStep {
    if (this.finishReason) return { text: '', finishReason: this.finishReason };
    return this.finish(reason, '');
  }

  /** The stop string that ended generation, if any. */
  get stoppedOn(): string | undefined {
    return this.stopper.stoppedOn;
  }

  private finish(reason: FinishReason, text: string, drain = true): TextStreamStep {
    this.finishReason = reason;
    if (drain) {
      // Flush held bytes through the stop matcher so a stop string completed by the flush is still honoured.
      const last = this.stopper.push(this.detok.flush());
      text += last.text + (last.stopped ? '' : this.stopper.flush());
    }
    return { text, finishReason: reason };
  }
}
