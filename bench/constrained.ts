// Cost of grammar-constrained decoding on the real o200k vocabulary (200,064 logits): trie build, grammar
// compile, and GrammarConstraint.mask() per generated token, split into cold steps (first visit of a DFA state:
// one trie walk) and warm ones (cached mask applied). Tokens come from the "random-weight model" (i.i.d. logits,
// argmax) for bounded schemas and from the closer-biased uniform picker for unbounded ones (test/constrained).
//   npx tsx bench/constrained.ts [--seeds 5]
import { parseArgs } from 'node:util';
import { compileJsonSchema, compileResponseFormat, compileToolChoice, type Grammar, GrammarConstraint, tokenTrieFor } from '../src/constrained/index.js';
import { MODEL_VOCAB_SIZE } from '../src/text/special_tokens.js';
import { Phi4Tokenizer } from '../src/text/tokenizer.js';
import { BOUNDED, generateRandomLogits, generateUniform, SCHEMAS } from '../test/constrained/fixtures.js';

const { values } = parseArgs({ options: { seeds: { type: 'string', default: '5' } } });
const SEEDS = Number(values.seeds);
const MAX_TOKENS = 1500;

const ms = (t0: number) => performance.now() - t0;
const pct = (xs: number[], p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : NaN);
const f = (x: number) => x.toFixed(3);

let t0 = performance.now();
const tok = Phi4Tokenizer.offline();
console.log(`tokenizer load ${ms(t0).toFixed(0)} ms`);
t0 = performance.now();
const trie = tokenTrieFor(tok);
console.log(`token trie build ${ms(t0).toFixed(0)} ms: ${trie.numNodes} nodes, max depth ${trie.maxDepth}`);

/**
 * Times every mask() call (CPU time of this process, which the machine's load disturbs far less than wall time);
 * a call is cold when the runtime's cache lacked the state. The uniform picker reads allowed() instead of
 * masking, so there allowed() first runs mask() on a scratch buffer of random logits, timed the same way.
 */
function timed(c: GrammarConstraint, cold: number[], warm: number[]): GrammarConstraint {
  const rt = (c as unknown as { rt: { masks: Map<number, unknown> } }).rt;
  const inner = c.mask.bind(c);
  const innerAllowed = c.allowed.bind(c);
  const scratch = new Float32Array(MODEL_VOCAB_SIZE);
  for (let i = 0; i < scratch.length; i++) scratch[i] = Math.random();
  c.mask = (logits: Float32Array) => {
    const state = (c as unknown as { state: number }).state;
    const wasCached = rt.masks.has(state);
    const t = process.cpuUsage();
    inner(logits);
    const d = process.cpuUsage(t);
    (wasCached ? warm : cold).push((d.user + d.system) / 1000);
  };
  c.allowed = () => {
    c.mask(scratch.slice());
    return innerAllowed();
  };
  return c;
}

const tools = [
  { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 40 }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city'], additionalProperties: false } } },
  { type: 'function' as const, function: { name: 'search', parameters: { type: 'object', properties: { query: { type: 'string', maxLength: 60 }, limit: { type: 'integer', minimum: 1, maximum: 50 } }, required: ['query'], additionalProperties: false } } },
];
const cases: [string, () => Grammar, boolean][] = [
  ...Object.entries(SCHEMAS).map(([name, s]): [string, () => Grammar, boolean] => [name, () => compileJsonSchema(s), BOUNDED.has(name)]),
  ['json_object', () => compileResponseFormat({ type: 'json_object' })!, false],
  ['tool_choice required', () => compileToolChoice(tools, 'required')!, true],
];

/** One pass over every case; `tag` makes fresh grammar keys, so each pass starts with cold runtime caches. */
function pass(tag: string, report: boolean): number[] {
  if (report) console.log('\nmask() CPU ms per token (cold = first visit of a DFA state by any request with this grammar)\n' +
    'case                   compile ms  tokens   cold: n   p50     p99     max    | warm p50  p99    | all p50  p99');
  const allTimes: number[] = [];
  for (const [name, make, bounded] of cases) {
    let t0 = performance.now();
    const grammar = { ...make(), key: `${tag}:${name}` };
    const compileMs = ms(t0);
    const cold: number[] = [], warm: number[] = [];
    let tokens = 0;
    for (let seed = 0; seed < SEEDS; seed++) {
      const c = timed(new GrammarConstraint(grammar, trie), cold, warm);
      const r = bounded ? generateRandomLogits(c, MODEL_VOCAB_SIZE, seed, MAX_TOKENS) : generateUniform(c, tok, MODEL_VOCAB_SIZE, seed, MAX_TOKENS);
      tokens += r.ids.length + (r.finished ? 1 : 0);
    }
    const all = [...cold, ...warm].sort((a, b) => a - b);
    allTimes.push(...all);
    cold.sort((a, b) => a - b); warm.sort((a, b) => a - b);
    if (report) {
      console.log(`${name.padEnd(22)} ${compileMs.toFixed(1).padStart(9)}  ${String(tokens).padStart(6)}  ${String(cold.length).padStart(7)}  ${f(pct(cold, 0.5))}  ${f(pct(cold, 0.99))}  ${f(cold.at(-1) ?? NaN)} | ${f(pct(warm, 0.5))}  ${f(pct(warm, 0.99))} | ${f(pct(all, 0.5))}  ${f(pct(all, 0.99))}`);
    }
  }
  return allTimes.sort((a, b) => a - b);
}

pass('warmup', false); // JIT warm-up: the first pass also pays for V8 compiling the walk and the DFA code
const allTimes = pass('measured', true);
console.log(`\nall cases: ${allTimes.length} masked tokens, p50 ${f(pct(allTimes, 0.5))} ms, p99 ${f(pct(allTimes, 0.99))} ms, max ${f(allTimes.at(-1)!)} ms`);
