// Shared pieces of the constrained-decoding tests: a schema corpus shaped like what clients send (OpenAI strict
// schemas, zod-to-json-schema output with $ref/definitions, nested objects, unions), and two random "models".
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { GrammarConstraint } from '../../src/constrained/index.js';
import { Rng } from '../../src/text/rng.js';
import type { Phi4Tokenizer } from '../../src/text/tokenizer.js';

const closerTables = new WeakMap<Phi4Tokenizer, { list: number[]; set: Set<number> }>();

/** Ordinary tokens whose bytes contain '"', ']' or '}' (short ones: a closer plus little else). */
function closerTable(tok: Phi4Tokenizer, vocab: number): { list: number[]; set: Set<number> } {
  let t = closerTables.get(tok);
  if (!t) {
    t = { list: [], set: new Set() };
    for (let id = 0; id < Math.min(vocab, tok.vocabSize); id++) {
      const bin = tok.tokenBinary(id);
      if (bin && !tok.addedToken(id) && bin.length <= 3 && /["\]}]/.test(bin)) { t.list.push(id); t.set.add(id); }
    }
    closerTables.set(tok, t);
  }
  return t;
}

/**
 * Schemas whose every string, array and number is bounded: i.i.d. random logits finish them within the token cap.
 * (An unbounded string under gibberish almost never closes: only a handful of the 200k tokens end it.)
 */
export const BOUNDED = new Set(['person', 'openaiStrict', 'zodRefs', 'oneOfDiscriminated', 'recursiveTree', 'scalarsAndConsts', 'topLevelArray']);

export const SCHEMAS: Record<string, object> = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 40 },
      age: { type: 'integer', minimum: 0, maximum: 150 },
      email: { type: ['string', 'null'], maxLength: 30 },
      tags: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 3 },
      verified: { type: 'boolean' },
    },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  openaiStrict: {
    type: 'object',
    properties: {
      steps: {
        type: 'array', minItems: 1, maxItems: 3,
        items: {
          type: 'object',
          properties: { explanation: { type: 'string', maxLength: 30 }, output: { type: 'string', maxLength: 30 } },
          required: ['explanation', 'output'], additionalProperties: false,
        },
      },
      final_answer: { type: 'string', maxLength: 30 },
    },
    required: ['steps', 'final_answer'],
    additionalProperties: false,
  },
  // What zod-to-json-schema emits for a reused sub-schema and a discriminated union.
  zodRefs: {
    type: 'object',
    properties: {
      from: { $ref: '#/definitions/Location' },
      to: { $ref: '#/definitions/Location' },
      mode: { type: 'string', enum: ['car', 'train', 'plane'] },
      payment: {
        anyOf: [
          { type: 'object', properties: { kind: { type: 'string', const: 'card' }, last4: { type: 'string', minLength: 4, maxLength: 4 } }, required: ['kind', 'last4'], additionalProperties: false },
          { type: 'object', properties: { kind: { type: 'string', const: 'cash' } }, required: ['kind'], additionalProperties: false },
        ],
      },
    },
    required: ['from', 'to', 'mode', 'payment'],
    additionalProperties: false,
    definitions: {
      Location: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 20 }, country: { type: 'string', maxLength: 2, minLength: 2 } },
        required: ['city'], additionalProperties: false,
      },
    },
    $schema: 'http://json-schema.org/draft-07/schema#',
  },
  oneOfDiscriminated: {
    oneOf: [
      { type: 'object', properties: { type: { const: 'circle' }, r: { type: 'number', minimum: 0 } }, required: ['type', 'r'], additionalProperties: false },
      { type: 'object', properties: { type: { const: 'rect' }, w: { type: 'number' }, h: { type: 'number' } }, required: ['type', 'w', 'h'], additionalProperties: false },
    ],
  },
  recursiveTree: {
    $ref: '#/$defs/Node',
    $defs: {
      Node: {
        type: 'object',
        properties: { label: { type: 'string', maxLength: 8 }, children: { type: 'array', items: { $ref: '#/$defs/Node' }, maxItems: 2 } },
        required: ['label'], additionalProperties: false,
      },
    },
  },
  scalarsAndConsts: {
    type: 'object',
    properties: {
      version: { const: 2 },
      ratio: { type: 'number' },
      count: { type: 'integer', exclusiveMinimum: 0 },
      big: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
      level: { enum: ['low', 'mid', 'high', null, 3] },
      nothing: { type: 'null' },
      pair: { type: 'array', prefixItems: [{ type: 'string', maxLength: 5 }, { type: 'integer' }], items: false, minItems: 2 },
      quote: { type: 'string', enum: ['say "hi"', 'tab\there', 'ünïcödé ✓'] },
    },
    required: ['version', 'ratio', 'count', 'level', 'pair', 'quote'],
  },
  mapOfNumbers: { type: 'object', additionalProperties: { type: 'number' } },
  anyJson: {},
  topLevelArray: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 9 }, minItems: 2, maxItems: 4 },
};

const ajv = new Ajv2020({ strict: false, allErrors: true });

/** An ajv (draft 2020-12) validator for `schema`; `$schema` is dropped so draft-07-tagged schemas load too. */
export function validator(schema: object): ValidateFunction & { explain(): string } {
  const { $schema: _drop, ...rest } = schema as Record<string, unknown>;
  const v = ajv.compile(rest) as ValidateFunction & { explain(): string };
  v.explain = () => ajv.errorsText(v.errors);
  return v;
}

export interface GenResult {
  ids: number[];
  /** EOS was sampled (the grammar accepted). */
  finished: boolean;
}

/**
 * The "random-weight model": i.i.d. uniform logits at every step, masked by the constraint, argmax. The hardest
 * case for a constraint: the model has no idea of JSON and picks whatever the mask lets through.
 */
export function generateRandomLogits(c: GrammarConstraint, vocab: number, seed: number, maxTokens: number): GenResult {
  const rng = new Rng(seed);
  const logits = new Float32Array(vocab);
  const ids: number[] = [];
  for (let step = 0; step < maxTokens; step++) {
    let x = rng.nextU32() | 1;
    for (let i = 0; i < vocab; i++) { // xorshift32: cheap per-element noise seeded from the Rng
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      logits[i] = (x >>> 0) / 4294967296;
    }
    c.mask(logits);
    let best = -1, bv = -Infinity;
    for (let i = 0; i < vocab; i++) if (logits[i]! > bv) { bv = logits[i]!; best = i; }
    if (best < 0) throw new Error('the mask left no token');
    c.accept(best);
    if (c.finished) return { ids, finished: true };
    ids.push(best);
  }
  return { ids, finished: false };
}

/**
 * Many-seed variant, cheap enough for unbounded schemas: an adversarial picker over exactly the allowed set
 * (GrammarConstraint.allowed(), the cache mask() applies). With probability `closeBias` it picks among allowed
 * tokens containing a closer byte (" ] }) so strings and containers end; otherwise uniformly among all allowed
 * tokens (what argmax over i.i.d. logits picks). EOS is taken with probability `eosBias` whenever allowed.
 */
export function generateUniform(c: GrammarConstraint, tok: Phi4Tokenizer, vocab: number,
  seed: number, maxTokens: number, closeBias = 0.3, eosBias = 0.5): GenResult {
  const closer = closerTable(tok, vocab);
  const rng = new Rng(seed);
  const ids: number[] = [];
  const pick = <T>(xs: ArrayLike<T>) => xs[Math.floor(rng.next() * xs.length)]!;
  for (let step = 0; step < maxTokens; step++) {
    const a = c.allowed();
    let id = -1;
    if (a.eos && rng.next() < eosBias) id = tok.eosTokenIds[0]!;
    else if (rng.next() < closeBias) {
      const pool = a.mode === 'allow' ? Array.from(a.ids).filter((x) => closer.set.has(x))
        : closer.list.filter((x) => c.allows(x));
      if (pool.length) id = pick(pool);
    }
    if (id < 0) {
      if (a.mode === 'allow') {
        if (a.ids.length) id = pick(a.ids);
      } else {
        for (let tries = 0; tries < 10_000 && id < 0; tries++) {
          const x = Math.floor(rng.next() * vocab);
          if (!tok.eosTokenIds.includes(x) && c.allows(x)) id = x;
        }
      }
    }
    if (id < 0 && a.eos) id = tok.eosTokenIds[0]!;
    if (id < 0) throw new Error('the mask left no token');
    c.accept(id);
    if (c.finished) return { ids, finished: true };
    ids.push(id);
  }
  return { ids, finished: false };
}
