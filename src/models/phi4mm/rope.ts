// LongRoPE on the first rotaryDim dims of each head (Phi-4-mini: 96 of 128), as transformers v4.51.3 computes it:
// inv_freq and the angles in float32, cos/sin × attention factor, one factor set for the whole sequence.
import { rotaryDim, type TextConfig } from './config.js';

export class LongRope {
  readonly rotaryDim: number;
  /** sqrt(1 + ln(max_pos / orig_max) / ln(orig_max)) (1.19023807 for Phi-4-mini), or 1 without scaling. */
  readonly attentionFactor: number;
  private readonly invShort: Float32Array; // [rotaryDim / 2]
  private readonly invLong: Float32Array; // [rotaryDim / 2]

  constructor(readonly cfg: TextConfig) {
    this.rotaryDim = rotaryDim(cfg);
    const half = this.rotaryDim / 2;
    const rs = cfg.rope_scaling;
    const ones = new Array<number>(half).fill(1);
    // 1 / (factor_k · theta^(2k/dim)), each step rounded to float32 like torch's float32 tensors.
    const invFreq = (factors: number[]) => Float32Array.from({ length: half }, (_, k) => {
      const pow = Math.fround(Math.pow(cfg.rope_theta, Math.fround((2 * k) / this.rotaryDim)));
      return Math.fround(1 / Math.fround(Math.fround(factors[k]!) * pow));
    });
    this.invShort = invFreq(rs ? rs.short_factor : ones);
    this.invLong = invFreq(rs ? rs.long_factor : ones);
    const scale = cfg.max_position_embeddings / cfg.original_max_position_embeddings;
    this.attentionFactor = rs && scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(cfg.original_max_position_embeddings)) : 1;
  }

  /**
   * The reference picks the factors per forward from max(position_ids) + 1: long factors for EVERY position once
   * that exceeds original_max_position_embeddings, short factors otherwise.
   */
  useLong(maxPositionPlusOne: number): boolean {
    return this.cfg.rope_scaling !== null && maxPositionPlusOne > this.cfg.original_max_position_embeddings;
  }

  /** cos/sin [n, rotaryDim] for positions start..start+n-1 (halves duplicated, as cat(freqs, freqs)). */
  tables(start: number, n: number, long: boolean, out?: { cos: Float32Array; sin: Float32Array }): { cos: Float32Array; sin: Float32Array } {
    const inv = long ? this.invLong : this.invShort;
    const d = this.rotaryDim, half = d / 2;
    const cos = out?.cos ?? new Float32Array(n * d), sin = out?.sin ?? new Float32Array(n * d);
    const af = Math.fround(this.attentionFactor);
    for (let t = 0; t < n; t++) {
      const pos = start + t;
      for (let k = 0; k < half; k++) {
        const ang = Math.fround(inv[k]! * pos); // float32 matmul inv_freq ⊗ position
        const c = Math.fround(Math.fround(Math.cos(ang)) * af), s = Math.fround(Math.fround(Math.sin(ang)) * af);
        cos[t * d + k] = cos[t * d + k + half] = c;
        sin[t * d + k] = sin[t * d + k + half] = s;
      }
    }
    return { cos, sin };
  }
}

/**
 * x·cos + rotate_half(x)·sin on the first rotaryDim dims of every head, in place; the rest passes through.
 * x [T, nHeads, headDim]; cos/sin [T, rotaryDim]; rotate_half pairs dims (i, i + rotaryDim/2).
 */
export function applyRope(x: Float32Array, t: number, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array, rotaryDim: number): void {
  const half = rotaryDim / 2;
  for (let i = 0; i < t; i++) {
    const c = i * rotaryDim;
    for (let h = 0; h < nHeads; h++) {
      const o = (i * nHeads + h) * headDim;
      for (let k = 0; k < half; k++) {
        const x1 = x[o + k]!, x2 = x[o + k + half]!;
        x[o + k] = x1 * cos[c + k]! - x2 * sin[c + k]!;
        x[o + k + half] = x2 * cos[c + k + half]! + x1 * sin[c + k + half]!;
      }
    }
  }
}
