// Schema compilation: what is refused (with the keyword named), what each supported construct accepts and
// rejects, checked by running byte strings through the automaton.
import { describe, expect, it } from 'vitest';
import { compileJsonSchema, compileResponseFormat, compileToolChoice, type Grammar, GrammarError, LazyDfa } from '../../src/constrained/index.js';
import { DEAD } from '../../src/constrained/dfa.js';

/** Whether the grammar accepts exactly this text (bytes). */
function accepts(g: Grammar, text: string): boolean {
  const dfa = new LazyDfa(g.nfa);
  let s = dfa.start;
  for (const b of Buffer.from(text, 'utf8')) {
    s = dfa.next(s, b);
    if (s === DEAD) return false;
  }
  return dfa.accepting(s);
}

function errorOf(f: () => unknown): GrammarError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(GrammarError);
    return e as GrammarError;
  }
  throw new Error('expected a GrammarError');
}

describe('unsupported input is refused with the keyword named', () => {
  it.each([
    [{ type: 'string', pattern: '^a+$' }, 'pattern'],
    [{ type: 'string', format: 'email' }, 'format'],
    [{ type: 'number', multipleOf: 2 }, 'multipleOf'],
    [{ type: 'object', properties: { a: { not: { type: 'null' } } } }, 'not'],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, 'uniqueItems'],
    [{ type: 'object', patternProperties: { '^x': {} } }, 'patternProperties'],
    [{ if: { type: 'string' }, then: {} }, 'if'],
    [{ type: 'object', minProperties: 1 }, 'minProperties'],
    [{ type: 'object', propertyNames: { maxLength: 3 } }, 'propertyNames'],
  ])('%j', (schema, kw) => {
    const err = errorOf(() => compileJsonSchema(schema));
    expect(err.keywords).toContain(kw);
    expect(err.message).toContain(kw);
  });

  it('names every unsupported keyword of a nested schema at once, with its path', () => {
    const err = errorOf(() => compileJsonSchema({ type: 'object', properties: { a: { type: 'string', pattern: 'x', format: 'uri' } } }));
    expect(err.keywords).toEqual(['pattern', 'format']);
    expect(err.message).toContain('#/properties/a');
  });

  it('other refusals say what to do', () => {
    expect(errorOf(() => compileJsonSchema({ type: 'integer', minimum: 5 })).message).toMatch(/minimum/);
    expect(errorOf(() => compileJsonSchema({ type: 'number', minimum: 0, maximum: 1 })).message).toMatch(/maximum/);
    expect(errorOf(() => compileJsonSchema({ oneOf: [{ type: 'string' }, { type: 'string', maxLength: 3 }] })).message).toMatch(/anyOf/);
    expect(errorOf(() => compileJsonSchema({ $ref: '#/$defs/Missing' })).message).toMatch(/does not resolve/);
    expect(errorOf(() => compileJsonSchema({ $ref: 'https://example.com/s.json' })).message).toMatch(/local \$ref/);
    expect(errorOf(() => compileJsonSchema({ type: 'object', properties: {}, required: ['x'] })).message).toMatch(/"x" is not declared/);
    expect(errorOf(() => compileJsonSchema({ type: 'strin' })).message).toMatch(/unknown type/);
    expect(errorOf(() => compileJsonSchema({ enum: [] })).message).toMatch(/admits no value/);
    expect(errorOf(() => compileJsonSchema({ type: 'string', maxLength: 100_000 })).keywords).toContain('maxLength');
    // Recursion that cannot stop: every level requires another level.
    expect(errorOf(() => compileJsonSchema({ $defs: { N: { type: 'object', properties: { n: { $ref: '#/$defs/N' } }, required: ['n'] } }, $ref: '#/$defs/N' })).message).toMatch(/admits no value/);
    expect(errorOf(() => compileResponseFormat({ type: 'xml' })).message).toMatch(/response_format.type/);
    expect(errorOf(() => compileToolChoice([], 'required')).message).toMatch(/non-empty "tools"/);
    expect(errorOf(() => compileToolChoice([{ type: 'function', function: { name: 'a' } }], { type: 'function', function: { name: 'b' } })).message).toMatch(/"b", which is not in tools/);
  });
});

describe('what the automaton accepts', () => {
  it('objects: schema order, optional properties skippable, no undeclared keys, bounded whitespace', () => {
    const g = compileJsonSchema({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } }, required: ['b'] });
    expect(accepts(g, '{"b":"x"}')).toBe(true);
    expect(accepts(g, '{"a":1,"b":"x","c":true}')).toBe(true);
    expect(accepts(g, '{\n  "a": 1,\n  "b": "x"\n}')).toBe(true);
    expect(accepts(g, '{"b":"x","a":1}')).toBe(false); // out of schema order
    expect(accepts(g, '{"a":1}')).toBe(false); // b is required
    expect(accepts(g, '{"b":"x","d":1}')).toBe(false); // undeclared, even though additionalProperties is absent
    expect(accepts(g, '{,"b":"x"}')).toBe(false);
    expect(accepts(g, `{${' '.repeat(17)}"b":"x"}`)).toBe(false); // past the whitespace bound
    expect(accepts(g, ' {"b":"x"}')).toBe(false);
  });

  it('strings: escapes, UTF-8, no control characters, no surrogate escapes, length in code points', () => {
    const g = compileJsonSchema({ type: 'string', minLength: 2, maxLength: 3 });
    expect(accepts(g, '"ab"')).toBe(true);
    expect(accepts(g, '"a\\n\\u00e9"')).toBe(true);
    expect(accepts(g, '"é😀"')).toBe(true); // 2 code points, 6 bytes
    expect(accepts(g, '"a"')).toBe(false);
    expect(accepts(g, '"abcd"')).toBe(false);
    expect(accepts(g, '"a\tb"')).toBe(false);
    expect(accepts(g, '"a\\ud800"')).toBe(false);
    expect(accepts(g, '"a\\x"')).toBe(false);
  });

  it('numbers: bounded digits, integer bounds as sign rules or exact ranges', () => {
    const n = compileJsonSchema({ type: 'number' });
    for (const ok of ['0', '-0.5', '12e3', '1.25E-07', '999999999999999.999999999999999e99']) expect(accepts(n, ok), ok).toBe(true);
    for (const bad of ['01', '1.', '.5', '+1', '1e', '1e100', '1234567890123456', 'NaN']) expect(accepts(n, bad), bad).toBe(false);
    const pos = compileJsonSchema({ type: 'integer', exclusiveMinimum: 0 });
    expect(accepts(pos, '7')).toBe(true);
    expect(accepts(pos, '0')).toBe(false);
    expect(accepts(pos, '-3')).toBe(false);
    const range = compileJsonSchema({ type: 'integer', minimum: -2, maximum: 12 });
    expect(accepts(range, '-2') && accepts(range, '12') && accepts(range, '0')).toBe(true);
    expect(accepts(range, '13') || accepts(range, '-3')).toBe(false);
  });

  it('enum/const literals, anyOf, type arrays, tuples, maps, min/maxItems', () => {
    expect(accepts(compileJsonSchema({ enum: ['a"b', 1, null, { x: [1] }] }), '{"x":[1]}')).toBe(true);
    expect(accepts(compileJsonSchema({ enum: ['a"b'] }), '"a\\"b"')).toBe(true);
    expect(accepts(compileJsonSchema({ type: 'string', enum: ['a', 1] }), '1')).toBe(false); // 1 is not a string
    const u = compileJsonSchema({ anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'null' }, maxItems: 1 }] });
    expect(accepts(u, '"x"') && accepts(u, '[null]') && accepts(u, '[]')).toBe(true);
    expect(accepts(u, '[null,null]')).toBe(false);
    const t = compileJsonSchema({ type: ['integer', 'null'] });
    expect(accepts(t, 'null') && accepts(t, '3')).toBe(true);
    const tuple = compileJsonSchema({ type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], minItems: 1 });
    expect(accepts(tuple, '["a",1]') && accepts(tuple, '["a"]')).toBe(true);
    expect(accepts(tuple, '[]') || accepts(tuple, '[1]')).toBe(false);
    const map = compileJsonSchema({ type: 'object', propertyNames: { type: 'string' }, additionalProperties: { type: 'boolean' } });
    expect(accepts(map, '{"any key":true,"k2":false}') && accepts(map, '{}')).toBe(true);
    expect(accepts(map, '{"k":1}')).toBe(false);
    const arr = compileJsonSchema({ type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 3 });
    expect(accepts(arr, '[1, 2]') && accepts(arr, '[1,2,3]')).toBe(true);
    expect(accepts(arr, '[1]') || accepts(arr, '[1,2,3,4]') || accepts(arr, '[1,2,]')).toBe(false);
  });

  it('$ref to $defs, definitions, a property path and the root; recursion unrolled to a bounded depth', () => {
    const g = compileJsonSchema({
      type: 'object',
      properties: { a: { $ref: '#/definitions/A' }, b: { $ref: '#/properties/a' }, next: { $ref: '#' } },
      definitions: { A: { type: 'string', maxLength: 1 } },
      additionalProperties: false,
    });
    expect(accepts(g, '{"a":"x","b":"y","next":{"a":"z"}}')).toBe(true);
    expect(accepts(g, '{"b":"yy"}')).toBe(false);
    expect(accepts(g, '{"next":{"next":{"next":{}}}}')).toBe(true);
    expect(accepts(g, '{"next":{"next":{"next":{"next":{}}}}}')).toBe(false); // past maxRefDepth (3)
  });

  it('oneOf with provably disjoint branches is compiled like anyOf', () => {
    const g = compileJsonSchema({ oneOf: [{ type: 'object', properties: { k: { const: 'a' } }, required: ['k'] }, { type: 'object', properties: { k: { const: 'b' }, v: { type: 'integer' } }, required: ['k', 'v'] }] });
    expect(accepts(g, '{"k":"a"}') && accepts(g, '{"k":"b","v":1}')).toBe(true);
  });

  it('json_object mode is any object, nesting bounded', () => {
    const g = compileResponseFormat({ type: 'json_object' })!;
    expect(accepts(g, '{"a":[1,{"b":null}],"c":"d"}')).toBe(true);
    expect(accepts(g, '[1]')).toBe(false);
    expect(compileResponseFormat({ type: 'text' })).toBeNull();
  });

  it('grammars are plain, structured-clone-safe objects with stable keys', () => {
    const g = compileJsonSchema({ type: 'object', properties: { a: { type: 'string' } } });
    const clone = structuredClone(g);
    expect(clone.key).toBe(g.key);
    expect(accepts(clone, '{"a":"x"}')).toBe(true);
    expect(compileJsonSchema({ type: 'object', properties: { a: { type: 'string' } } }).key).toBe(g.key);
    expect(compileJsonSchema({ type: 'object', properties: { a: { type: 'number' } } }).key).not.toBe(g.key);
  });
});
