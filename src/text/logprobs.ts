// Sampler logprob info (ids) → OpenAI's `logprobs.content[]` entries (token text, UTF-8 bytes, alternatives).
import type { Phi4Tokenizer } from './tokenizer.js';
import type { SampleStep } from './sampler.js';
import type { TokenLogprob } from '../api/types.js';

/** OpenAI reports impossible tokens as -9999 (JSON has no -Infinity). */
const FLOOR_LOGPROB = -9999;
const finite = (x: number) => (x > FLOOR_LOGPROB ? x : FLOOR_LOGPROB);

const utf8Lossy = new TextDecoder('utf-8', { fatal: false });

/** Token text and the bytes it adds to the output. Special tokens (skipped in the text) show their name with no bytes. */
function describe(tok: Phi4Tokenizer, id: number): { token: string; bytes: number[] } {
  const added = tok.addedToken(id);
  if (added?.special) return { token: added.content, bytes: [] };
  const bin = tok.tokenBinary(id) ?? '';
  const bytes = [...Buffer.from(bin, 'latin1')];
  return { token: utf8Lossy.decode(Uint8Array.from(bytes)), bytes };
}

/** OpenAI logprob entry for one sampled step; null when the step carries no logprob info. */
export function toTokenLogprob(tok: Phi4Tokenizer, step: SampleStep): TokenLogprob | null {
  if (step.logprob === undefined) return null;
  return {
    ...describe(tok, step.id),
    logprob: finite(step.logprob),
    top_logprobs: (step.top ?? []).map((t) => ({ ...describe(tok, t.id), logprob: finite(t.logprob) })),
  };
}
