// Shared setup of the native kernel tests: the backend (or the reason it is missing), a seeded RNG and a
// per-element tolerance check.
import { expect } from 'vitest';
import { NativeBackend } from '../../src/tensor/native.js';

/** PHI4MM_NO_NATIVE=1 declares that the addon is not built here; otherwise a missing addon fails the tests. */
export const NO_NATIVE = process.env.PHI4MM_NO_NATIVE === '1';

export function loadNative(): { backend: NativeBackend | null; error: Error | null } {
  if (NO_NATIVE) return { backend: null, error: null };
  try {
    return { backend: NativeBackend.create(), error: null };
  } catch (e) {
    return { backend: null, error: e as Error };
  }
}

/** Deterministic uniform values in [lo, hi) (mulberry32). */
export function rng(seed: number): (n: number, lo?: number, hi?: number) => Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * next());
}

/** |actual[i] − expected[i]| ≤ tol[i] for every i; reports the worst offender. */
export function expectWithin(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1, worstRatio = 1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    const ratio = err / tol[i]!;
    if (!(err <= tol[i]!) && (worst < 0 || !(ratio <= worstRatio))) { worst = i; worstRatio = ratio; }
  }
  if (worst >= 0) {
    throw new Error(`${label}: [${worst}] got ${actual[worst]}, expected ${expected[worst]} (|diff| ${Math.abs(actual[worst]! - expected[worst]!).toExponential(3)} > tol ${Number(tol[worst]).toExponential(3)})`);
  }
}

/** f32 unit roundoff 2^-24. */
export const U32 = 2 ** -24;
