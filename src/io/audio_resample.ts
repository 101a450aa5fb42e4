// Band-limited polyphase resampling that reproduces scipy.signal.resample_poly(x, up, down) with its default
// window ('kaiser', 5.0) and padtype 'constant' (zeros outside the signal):
//   h = firwin(2·half_len+1, 1/max(up,down), window=('kaiser', 5.0)) · up,  half_len = 10·max(up,down)
//   y[i] = Σ_k h[k] · xu[i·down + half_len − k],  xu = x upsampled by `up` with zeros in between
// i.e. upfirdn with the filter's group delay removed (zero phase), output length ceil(N·up/down).
// Everything is computed in float64 (like scipy on float64 input) and rounded to float32 once at the end.

const KAISER_BETA = 5.0;
/** scipy's resample_poly: half filter length per unit of max(up, down). */
const HALF_LEN_PER_RATE = 10;
/** Cached filter designs; a typical run only needs one or two rate pairs. */
const MAX_CACHED_FILTERS = 8;
/** Guard against pathological rate pairs whose filter would take hundreds of MB (taps are float64). */
const MAX_FILTER_TAPS = 8_000_001;

/** Modified Bessel function of the first kind, order 0 (power series; converges to full precision for |x| ≤ ~50). */
export function besselI0(x: number): number {
  const q = (x * x) / 4;
  let term = 1, sum = 1;
  for (let k = 1; k < 500; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** scipy.signal.windows.kaiser(M, beta, sym=True). */
export function kaiserWindow(m: number, beta: number): Float64Array {
  const w = new Float64Array(m);
  if (m === 1) { w[0] = 1; return w; }
  const alpha = (m - 1) / 2;
  const denom = besselI0(beta);
  for (let n = 0; n < m; n++) {
    const r = (n - alpha) / alpha;
    w[n] = besselI0(beta * Math.sqrt(1 - r * r)) / denom;
  }
  return w;
}

/** numpy.sinc: sin(πx)/(πx), 1 at 0. */
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

/**
 * scipy.signal.firwin(numtaps, cutoff, window=('kaiser', beta)) for a low-pass (pass_zero=True, scale=True);
 * `cutoff` is relative to Nyquist (0 < cutoff < 1). Scaling makes the DC gain exactly 1.
 */
export function firwinLowpass(numtaps: number, cutoff: number, beta = KAISER_BETA): Float64Array {
  if (!(cutoff > 0 && cutoff < 1)) throw new Error(`firwin cutoff must be in (0, 1) relative to Nyquist, got ${cutoff}`);
  const alpha = 0.5 * (numtaps - 1);
  const win = kaiserWindow(numtaps, beta);
  const h = new Float64Array(numtaps);
  let dcGain = 0;
  for (let i = 0; i < numtaps; i++) {
    h[i] = cutoff * sinc(cutoff * (i - alpha)) * win[i]!;
    dcGain += h[i]!; // scale_frequency 0 → cos(0) = 1
  }
  for (let i = 0; i < numtaps; i++) h[i]! /= dcGain;
  return h;
}

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The resample_poly filter split into `up` phases: phase p holds h[p], h[p+up], h[p+2·up], … (already × up). */
interface PolyphaseFilter {
  up: number;
  down: number;
  halfLen: number;
  phases: Float64Array[];
}

const filterCache = new Map<string, PolyphaseFilter>();

function polyphaseFilter(up: number, down: number): PolyphaseFilter {
  const key = `${up}/${down}`;
  const hit = filterCache.get(key);
  if (hit) return hit;
  const maxRate = Math.max(up, down);
  const halfLen = HALF_LEN_PER_RATE * maxRate;
  const numtaps = 2 * halfLen + 1;
  if (numtaps > MAX_FILTER_TAPS) {
    throw new Error(`resampling by ${up}/${down} needs a ${numtaps}-tap filter; choose sample rates with a larger common divisor`);
  }
  const h = firwinLowpass(numtaps, 1 / maxRate);
  const phases: Float64Array[] = [];
  for (let p = 0; p < up; p++) {
    const n = Math.ceil((numtaps - p) / up);
    const taps = new Float64Array(Math.max(n, 0));
    for (let q = 0; q < n; q++) taps[q] = h[p + q * up]! * up;
    phases.push(taps);
  }
  const f: PolyphaseFilter = { up, down, halfLen, phases };
  if (filterCache.size >= MAX_CACHED_FILTERS) filterCache.delete(filterCache.keys().next().value!);
  filterCache.set(key, f);
  return f;
}

/**
 * scipy.signal.resample_poly(x, up, down) (default Kaiser window, zero padding), returned as float32.
 * `up`/`down` are reduced by their gcd first, as scipy does.
 */
export function resamplePoly(x: ArrayLike<number>, up: number, down: number): Float32Array {
  if (!Number.isInteger(up) || !Number.isInteger(down) || up < 1 || down < 1) {
    throw new Error(`resamplePoly: up and down must be integers ≥ 1, got up=${up}, down=${down}`);
  }
  const g = gcd(up, down);
  up /= g; down /= g;
  const n = x.length;
  if (up === 1 && down === 1) return Float32Array.from(x);
  const nOut = Math.ceil((n * up) / down);
  const { phases, halfLen } = polyphaseFilter(up, down);
  const y = new Float32Array(nOut);
  for (let i = 0; i < nOut; i++) {
    // Output i sits at upsampled position m0 = i·down + halfLen − k for tap k; only taps with (m0 − k) % up == 0
    // hit a real input sample: k = p + q·up, input index base − q.
    const m0 = i * down + halfLen;
    const p = m0 % up;
    const base = (m0 - p) / up;
    const taps = phases[p]!;
    // Valid q: 0 ≤ base − q < n.
    const qMin = Math.max(0, base - n + 1);
    const qMax = Math.min(taps.length - 1, base);
    let acc = 0;
    for (let q = qMin; q <= qMax; q++) acc += taps[q]! * x[base - q]!;
    y[i] = acc;
  }
  return y;
}

/** Resample between integer rates in Hz with resamplePoly(x, to/g, from/g). Identity when the rates are equal. */
export function resampleRate(x: Float32Array, fromRate: number, toRate: number): Float32Array {
  for (const [name, r] of [['source', fromRate], ['target', toRate]] as const) {
    if (!Number.isInteger(r) || r <= 0) throw new Error(`${name} sample rate must be a positive integer in Hz, got ${r}`);
  }
  if (fromRate === toRate) return x;
  const g = gcd(toRate, fromRate);
  return resamplePoly(x, toRate / g, fromRate / g);
}
