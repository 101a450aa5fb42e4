// The reference backend: plain TypeScript loops, simple enough to trust. It is the oracle the native
// kernels are tested against, and the fallback when the addon cannot load.
import { isQuantDType } from './dtype.js';
import { checkLinearShapes, type AttentionParams, type Backend } from './backend.js';
import type { Tensor } from './tensor.js';
import type { DeviceOps } from './device.js';
import { HostDevice } from './host_device.js';
import { weightRow } from './weight_row.js';

export { weightRow };
import { conv3x3s2, conv3x3s2Out, geluTanh, layerNorm, silu, swishGate } from './ops.js';

export class ReferenceBackend implements Backend {
  readonly name = 'reference' as const;
  private dev: HostDevice | null = null;
  constructor(public threads = 1) {}

  /** Backend v2 ops on host memory, every op in plain TypeScript (the oracle of the device backends). */
  get device(): DeviceOps {
    return (this.dev ??= new HostDevice(this));
  }

  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new Error(`threads must be a positive integer, got ${n}`);
    this.threads = n; // single-threaded by design; kept so callers can treat backends alike
  }

  conv3x3s2(x: Float32Array, h: number, w: number, c: number, cin: number, weight: Float32Array, bias: Float32Array, relu: boolean, out?: Float32Array): Float32Array {
    return conv3x3s2(x, h, w, c, cin, weight, bias, relu, out);
  }

  conv3x3s2Pair(x: Float32Array, h: number, w: number, c: number, w0: Float32Array, b0: Float32Array, w1: Float32Array, b1: Float32Array, out?: Float32Array): Float32Array {
    const first = conv3x3s2(x, h, w, c, 1, w0, b0, true);
    return conv3x3s2(first, conv3x3s2Out(h), conv3x3s2Out(w), c, c, w1, b1, false, out);
  }

  swishGate(x: Float32Array, rows: number, w: number, b1: Float32Array | null, b2: Float32Array | null, out?: Float32Array): Float32Array {
    return swishGate(x, rows, w, b1, b2, out);
  }

  silu(x: Float32Array, out?: Float32Array): Float32Array {
    return silu(x, out);
  }

  relu(x: Float32Array): Float32Array {
    for (let i = 0; i < x.length; i++) if (!(x[i]! > 0)) x[i] = 0;
    return x;
  }

  geluTanh(x: Float32Array, out?: Float32Array): Float32Array {
    return geluTanh(x, out ?? new Float32Array(x.length));
  }

  layerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array, b: Float32Array | null, eps: number, out?: Float32Array): Float32Array {
    return layerNorm(x, rows, dim, w, b, eps, out ?? new Float32Array(rows * dim));
  }

  linear(x: Float32Array, m: number, w: Tensor, bias?: Float32Array | null, out?: Float32Array): Float32Array {
    const { n, k } = checkLinearShapes(x, m, w, bias);
    const y = out ?? new Float32Array(m * n);
    const row = new Float32Array(k);
    const wc = isQuantDType(w.dtype) ? w : w.contiguous();
    for (let j = 0; j < n; j++) {
      weightRow(wc, j, k, row);
      const b = bias ? bias[j]! : 0;
      for (let i = 0; i < m; i++) {
        let s = 0;
        const xo = i * k;
        for (let t = 0; t < k; t++) s += x[xo + t]! * row[t]!;
        y[i * n + j] = s + b;
      }
    }
    return y;
  }

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB = false, out?: Float32Array): Float32Array {
    const c = out ?? new Float32Array(m * n);
    for (let i = 0; i < m; i++) {
      const co = i * n, ao = i * k;
      if (transB) {
        // B given as [N, K]: each output is a row-by-row dot product.
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t < k; t++) s += a[ao + t]! * b[j * k + t]!;
          c[co + j] = s;
        }
        continue;
      }
      c.fill(0, co, co + n);
      for (let t = 0; t < k; t++) {
        const av = a[ao + t]!, bo = t * n;
        for (let j = 0; j < n; j++) c[co + j] += av * b[bo + j]!;
      }
    }
    return c;
  }

  attention(p: AttentionParams): Float32Array {
    return referenceAttention(p);
  }
}

/** Scaled dot-product attention in plain loops (the oracle; see Backend.attention). */
export function referenceAttention(p: AttentionParams): Float32Array {
  const { q, k, v, tq, tk, nHeads, nKvHeads, headDim: d, scale } = p;
  if (nHeads % nKvHeads !== 0) throw new Error(`attention: ${nHeads} heads is not a multiple of ${nKvHeads} kv heads`);
  const out = p.out ?? new Float32Array(tq * nHeads * d);
  const group = nHeads / nKvHeads;
  const scores = new Float64Array(tk);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / group);
    for (let i = 0; i < tq; i++) {
      const qo = (i * nHeads + h) * d;
      const limit = p.causalOffset === undefined ? tk : Math.min(tk, p.causalOffset + i + 1);
      let mx = -Infinity;
      for (let j = 0; j < limit; j++) {
        const ko = (j * nKvHeads + kh) * d;
        let s = 0;
        for (let t = 0; t < d; t++) s += q[qo + t]! * k[ko + t]!;
        s = Math.fround(s * scale);
        if (p.mask) s += p.mask[i * tk + j]!;
        if (p.bias) s += p.bias[(h * tq + i) * tk + j]!;
        scores[j] = s;
        if (s > mx) mx = s;
      }
      let sum = 0;
      for (let j = 0; j < limit; j++) {
        const e = Math.exp(scores[j]! - mx);
        scores[j] = e;
        sum += e;
      }
      const oo = (i * nHeads + h) * d;
      for (let t = 0; t < d; t++) out[oo + t] = 0;
      for (let j = 0; j < limit; j++) {
        const pj = scores[j]! / sum;
        const vo = (j * nKvHeads + kh) * d;
        for (let t = 0; t < d; t++) out[oo + t] += pj * v[vo + t]!;
      }
    }
  }
  return out;
}
