// Access to the golden fixtures. The folder comes from PHI4MM_GOLDEN_DIR (default ../shared/golden from the
// project root) so the same tests run unchanged against another fixture set of the same layout.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { SafetensorsFile } from '../../src/io/safetensors.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const GOLDEN_DIR = resolve(ROOT, process.env.PHI4MM_GOLDEN_DIR ?? '../shared/golden');
export const SPEC_DIR = resolve(ROOT, process.env.PHI4MM_SPEC_DIR ?? join(GOLDEN_DIR, '../spec'));

export interface GoldenTensor {
  shape: number[];
  data: Float32Array;
}

export interface Golden {
  /** The `X.json` sidecar. */
  json: any;
  has(key: string): boolean;
  keys(): string[];
  /** A tensor as f32 (integer tensors converted exactly below 2^24). */
  tensor(key: string): GoldenTensor;
  /** Raw bytes (for U8 canvases and exact comparisons). */
  raw(key: string): Uint8Array;
}

const cache = new Map<string, Golden>();

export function golden(name: string): Golden {
  const hit = cache.get(name);
  if (hit) return hit;
  const st = SafetensorsFile.open(join(GOLDEN_DIR, `${name}.safetensors`));
  const jsonPath = join(GOLDEN_DIR, `${name}.json`);
  const g: Golden = {
    json: existsSync(jsonPath) ? JSON.parse(readFileSync(jsonPath, 'utf8')) : {},
    has: (k) => st.tensors.has(k),
    keys: () => st.names(),
    tensor: (k) => ({ shape: st.info(k).shape, data: st.readF32(k) }),
    raw: (k) => st.readRaw(k),
  };
  cache.set(name, g);
  return g;
}

export function goldenPath(...parts: string[]): string {
  return join(GOLDEN_DIR, ...parts);
}

export function specJson(name: string): any {
  return JSON.parse(readFileSync(join(SPEC_DIR, name), 'utf8'));
}

export interface CloseStats {
  maxAbs: number;
  maxAbsRef: number;
  worstIndex: number;
}

export function closeStats(actual: ArrayLike<number>, expected: ArrayLike<number>): CloseStats {
  let maxAbs = 0, maxAbsRef = 0, worstIndex = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= maxAbs)) { maxAbs = d; worstIndex = i; } // NaN-safe: a NaN always becomes the worst
    maxAbsRef = Math.max(maxAbsRef, Math.abs(expected[i]!));
  }
  return { maxAbs, maxAbsRef, worstIndex };
}

/** Elementwise |a - e| <= atol + rtol·|e| (numpy allclose), with a message naming the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol?: number }, label = ''): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const rtol = tol.rtol ?? 0;
  let bad = -1, worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    const excess = Math.abs(a - e) - (tol.atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (bad < 0 || !(excess <= worstExcess))) { bad = i; worstExcess = excess; }
  }
  if (bad >= 0) {
    const s = closeStats(actual, expected);
    throw new Error(`${label}: not close (atol ${tol.atol}, rtol ${rtol}); worst at [${bad}]: got ${actual[bad]}, expected ${expected[bad]}; max abs diff ${s.maxAbs.toExponential(3)} (max |ref| ${s.maxAbsRef.toFixed(3)})`);
  }
}
