// The constraint's promise: whatever the logits, the output parses as JSON and validates against the schema
// (ajv). Checked with the random-weight stand-ins of fixtures.ts over many seeds, on the real o200k vocabulary.
import { beforeAll, describe, expect, it } from 'vitest';
import { compileJsonSchema, compileResponseFormat, compileToolChoice, GrammarConstraint, type TokenTrie, tokenTrieFor } from '../../src/constrained/index.js';
import { MODEL_VOCAB_SIZE } from '../../src/text/special_tokens.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { parseToolCalls } from '../../src/text/tool_calls.js';
import { BOUNDED, generateRandomLogits, generateUniform, SCHEMAS, validator } from './fixtures.js';

const RANDOM_LOGIT_SEEDS = 2; // full 200k-logit steps: ~1-2 ms each
const UNIFORM_SEEDS = 20;
const MAX_TOKENS = 1500;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

let tok: Phi4Tokenizer;
let trie: TokenTrie;

beforeAll(() => {
  tok = Phi4Tokenizer.offline();
  trie = tokenTrieFor(tok);
});

function check(text: string, validate: ((v: unknown) => boolean) & { explain?: () => string }, label: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${label}: output does not parse: ${JSON.stringify(text)} (${(e as Error).message})`);
  }
  if (!validate(value)) throw new Error(`${label}: ${JSON.stringify(text)} fails the schema: ${validate.explain?.()}`);
  return value;
}

describe('generation under random logits always parses and validates', () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(name, () => {
      const grammar = compileJsonSchema(schema);
      const validate = validator(schema);
      if (BOUNDED.has(name)) {
        // Every bound is finite, so i.i.d. logits must finish within the cap.
        for (let seed = 0; seed < RANDOM_LOGIT_SEEDS; seed++) {
          const r = generateRandomLogits(new GrammarConstraint(grammar, trie), MODEL_VOCAB_SIZE, 1000 + seed, MAX_TOKENS);
          expect(r.finished, `${name} seed ${seed} did not finish`).toBe(true);
          check(tok.decode(r.ids), validate, `${name} seed ${seed}`);
        }
      }
      let finished = 0;
      for (let seed = 0; seed < UNIFORM_SEEDS; seed++) {
        const r = generateUniform(new GrammarConstraint(grammar, trie), tok, MODEL_VOCAB_SIZE, seed, MAX_TOKENS);
        if (r.finished) { check(tok.decode(r.ids), validate, `${name} uniform seed ${seed}`); finished++; }
      }
      // A run may hit the token cap only in unbounded schemas; most runs must still finish.
      expect(finished).toBeGreaterThanOrEqual(Math.ceil(0.9 * UNIFORM_SEEDS));
    });
  }

  it('json_object mode: any JSON object', () => {
    const grammar = compileResponseFormat({ type: 'json_object' })!;
    let finished = 0;
    for (let seed = 0; seed < UNIFORM_SEEDS; seed++) {
      const r = generateUniform(new GrammarConstraint(grammar, trie), tok, MODEL_VOCAB_SIZE, seed, MAX_TOKENS);
      if (!r.finished) continue;
      finished++;
      const v = check(tok.decode(r.ids), () => true, `json_object seed ${seed}`);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
    }
    expect(finished).toBeGreaterThanOrEqual(Math.ceil(0.9 * UNIFORM_SEEDS));
  });

  it('decoded text is valid UTF-8 and has no raw control characters inside strings', () => {
    const grammar = compileJsonSchema({ type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 4 });
    for (let seed = 0; seed < UNIFORM_SEEDS; seed++) {
      const r = generateUniform(new GrammarConstraint(grammar, trie), tok, MODEL_VOCAB_SIZE, seed, MAX_TOKENS);
      if (!r.finished) continue;
      const bytes = tok.decodeBytes(r.ids);
      expect(() => new TextDecoder('utf-8', { fatal: true }).decode(bytes), `seed ${seed}`).not.toThrow();
      const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as string[];
      for (const s of v) expect(LONE_SURROGATE.test(s), `seed ${seed}: lone surrogate`).toBe(false);
    }
  });

  it('tool_choice required / named: every output parses into calls of allowed functions with valid arguments', () => {
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', parameters: SCHEMAS.person } },
      { type: 'function' as const, function: { name: 'plan_trip', parameters: SCHEMAS.zodRefs } },
      { type: 'function' as const, function: { name: 'ping' } }, // no parameters: arguments {}
    ];
    const validators = new Map(tools.map((t) => [t.function.name, validator(t.function.parameters ?? { type: 'object', additionalProperties: false })]));
    const choices = ['required', { type: 'function', function: { name: 'plan_trip' } }] as const;
    for (const choice of choices) {
      const grammar = compileToolChoice(tools, choice)!;
      let finished = 0;
      for (let seed = 0; seed < UNIFORM_SEEDS; seed++) {
        const r = generateUniform(new GrammarConstraint(grammar, trie), tok, MODEL_VOCAB_SIZE, seed, MAX_TOKENS);
        if (!r.finished) continue;
        finished++;
        const text = tok.decode(r.ids, { skipSpecialTokens: true });
        const parsed = parseToolCalls(text);
        expect(parsed.content, text).toBe('');
        expect(parsed.toolCalls.length, text).toBeGreaterThanOrEqual(1);
        for (const call of parsed.toolCalls) {
          if (choice !== 'required') expect(call.function.name).toBe('plan_trip');
          const validate = validators.get(call.function.name);
          expect(validate, `unknown function ${call.function.name}`).toBeDefined();
          expect(validate!(JSON.parse(call.function.arguments)), `${call.function.arguments}: ${validate!.explain()}`).toBe(true);
        }
      }
      expect(finished).toBeGreaterThanOrEqual(Math.ceil(0.9 * UNIFORM_SEEDS));
    }
  });
});
