// Deterministic test signals built from integer arithmetic only (no Math.cos/log, whose last bits may vary
// between engines), so the committed ggml oracle data stays reproducible. The generator is also what fed
// ggml's C reference when that data was produced (see data/ggml_oracle.json).

/** Numerical Recipes LCG; returns uniforms k/2^24 in [0, 1), exact in float32. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 16777216;
  };
}

export type SignalKind = 'irwin-hall' | 'outliers' | 'positive' | 'ties';

/**
 * n float32 values:
 *  irwin-hall  ≈ N(0, 0.05²): (u1+u2+u3+u4 − 2)·0.05·√3
 *  outliers    irwin-hall·0.4, every 61st value ×40 (one large weight per few sub-blocks)
 *  positive    u·3 + 0.5 (no negative values: exercises min > 0 → 0)
 *  ties        multiples of 1/8 in [−1, 1] (many exact rounding ties)
 */
export function signal(kind: SignalKind, seed: number, n: number): Float32Array {
  const u = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const ih = u() + u() + u() + u() - 2;
    switch (kind) {
      case 'irwin-hall': out[i] = ih * 0.05 * Math.sqrt(3); break;
      case 'outliers': out[i] = ih * 0.02 * (i % 61 === 7 ? 40 : 1); break;
      case 'positive': out[i] = u() * 3 + 0.5; break;
      case 'ties': out[i] = Math.round((u() - 0.5) * 16) / 8; break;
    }
  }
  return out;
}

/** ggml test-quantize-fns.cpp generate_data: 0.1 + 2·cos(i + offset). */
export function cosSignal(offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 0.1 + 2 * Math.cos(i + offset);
  return out;
}
