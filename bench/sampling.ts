// Per-token cost of sampling over the full Phi-4 vocabulary (200 064 logits): greedy and temperature + top-p,
// with and without penalties. `npx tsx bench/sampling.ts`
import { sample, SamplingState, type SamplingParams } from '../src/text/sampling.js';

const VOCAB = 200_064, STEPS = 200;
const logits = new Float32Array(VOCAB);
for (let i = 0; i < VOCAB; i++) logits[i] = Math.sin(i * 12.9898) * 8;
const cases: Array<[string, SamplingParams]> = [
  ['greedy', { temperature: 0 }],
  ['greedy + repetition/frequency penalties', { temperature: 0, repetitionPenalty: 1.1, frequencyPenalty: 0.5 }],
  ['temperature 0.8 + top-p 0.95', { temperature: 0.8, topP: 0.95 }],
];
for (const [name, p] of cases) {
  const st = new SamplingState({ seed: 1, promptIds: Array.from({ length: 500 }, (_, i) => i * 7) });
  for (let i = 0; i < 20; i++) sample(logits, p, st); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < STEPS; i++) sample(logits, p, st);
  console.log(`${name.padEnd(42)} ${((performance.now() - t0) / STEPS).toFixed(2)} ms/token`);
}
