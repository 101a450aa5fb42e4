// End to end through the library's generation loop: the tiny golden random-weight model (real 200,064-row
// vocabulary, gibberish logits) decodes under a constraint, and the output parses and validates; a forced tool
// call comes back through parseToolCalls with schema-valid arguments.
import { describe, expect, it } from 'vitest';
import { compileJsonSchema, compileToolChoice, GrammarConstraint, type Grammar, tokenTrieFor } from '../../src/constrained/index.js';
import { generateTokens } from '../../src/models/phi4mm/generate.js';
import { Rng } from '../../src/text/rng.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { parseToolCalls } from '../../src/text/tool_calls.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { loadDecoder } from '../lm/load.js';
import { SCHEMAS, validator } from './fixtures.js';

const SEEDS = 2;
const MAX_NEW_TOKENS = 400;
const be = new ReferenceBackend();
const tok = Phi4Tokenizer.offline();

/** Gumbel-max sampling at temperature 1 over the masked logits (seeded), through the constraint. */
async function run(grammar: Grammar, seed: number): Promise<{ text: string; finished: boolean }> {
  const lm = loadDecoder('orig');
  const c = new GrammarConstraint(grammar, tokenTrieFor(tok, lm.cfg.vocab_size));
  const rng = new Rng(seed);
  const prompt = Int32Array.from(tok.encode('<|user|>Give me JSON.<|end|><|assistant|>'));
  const ids: number[] = [];
  const sample = (logits: Float32Array) => {
    c.mask(logits);
    let best = -1, bv = -Infinity;
    for (let i = 0; i < logits.length; i++) {
      if (logits[i] === -Infinity) continue;
      const v = logits[i]! - Math.log(-Math.log(rng.next() || Number.MIN_VALUE));
      if (v > bv) { bv = v; best = i; }
    }
    c.accept(best);
    return best;
  };
  for await (const id of generateTokens(be, lm, prompt, { mode: 'language', maxNewTokens: MAX_NEW_TOKENS, sample, stopIds: tok.eosTokenIds })) {
    if (!tok.eosTokenIds.includes(id)) ids.push(id);
  }
  return { text: tok.decode(ids), finished: c.finished };
}

describe('tiny golden model under a constraint', () => {
  for (const name of ['person', 'zodRefs', 'oneOfDiscriminated']) {
    it(`${name}: output parses and validates`, async () => {
      const schema = SCHEMAS[name]!;
      const validate = validator(schema);
      for (let seed = 0; seed < SEEDS; seed++) {
        const { text, finished } = await run(compileJsonSchema(schema), seed);
        expect(finished, `seed ${seed}: ${text}`).toBe(true);
        expect(validate(JSON.parse(text)), `seed ${seed}: ${text} ${validate.explain()}`).toBe(true);
      }
    });
  }

  it('tool_choice required: a call to an allowed function with schema-valid arguments', async () => {
    const params = {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 20 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'], additionalProperties: false,
    };
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', parameters: params } },
      { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string', maxLength: 10 } }, required: ['tz'] } } },
    ];
    const validators = new Map(tools.map((t) => [t.function.name, validator(t.function.parameters)]));
    for (let seed = 0; seed < SEEDS; seed++) {
      const grammar = compileToolChoice(tools, 'required', { parallel: false })!;
      const { text, finished } = await run(grammar, seed);
      expect(finished).toBe(true);
      const parsed = parseToolCalls(text);
      expect(parsed.content, text).toBe('');
      expect(parsed.toolCalls).toHaveLength(1);
      const call = parsed.toolCalls[0]!;
      const validate = validators.get(call.function.name);
      expect(validate, `unknown function ${call.function.name}`).toBeDefined();
      expect(validate!(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
    }
  });
});
