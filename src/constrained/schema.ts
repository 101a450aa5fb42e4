// JSON Schema → byte NFA. The automaton accepts a subset of the instances the schema accepts (never an instance it
// rejects), written as JSON with bounded whitespace:
// - objects: declared properties in schema order; optional ones may be skipped. Keys that are not declared are
//   never generated, whatever `additionalProperties` says (absent/true allows them, it does not require them), so
//   strict and non-strict schemas compile the same. `additionalProperties: <schema>` without `properties` is a map
//   with arbitrary string keys. `{type: "object"}` alone is any JSON object (bounded depth).
// - arrays: `items` with minItems/maxItems; tuples via `prefixItems` (or a draft-07 `items` array).
// - strings: minLength/maxLength (code points). Numbers/integers: bounded digits; minimum/maximum only where a
//   sign restriction or a small integer range enforces them exactly.
// - `enum`/`const` as JSON.stringify writes them; `anyOf`; `oneOf` only when its branches are provably disjoint
//   (different types, or different const/enum values, or a required property whose const/enum values differ) —
//   then anyOf and oneOf accept the same instances; otherwise a clear error. `allOf` with one branch.
// - `$ref` to any JSON pointer inside the document ("#", "#/$defs/X", "#/definitions/X", "#/properties/a"). A
//   recursive schema is unrolled `maxRefDepth` levels; past that the recursive branch is left out (optional
//   properties are skipped, arrays stay empty), and a schema that cannot terminate that way is an error.
// Every other keyword is rejected with an error naming it (the server answers 400 with it).
import { DEFAULT_LEX, JsonLexer, type JsonLexOptions, MAX_INT_DIGITS } from './json_lexical.js';
import { type Frag, GrammarError, NfaBuilder } from './nfa.js';

export interface SchemaOptions extends Partial<JsonLexOptions> {
  /** How many times one `$ref` may be expanded inside itself (recursive schemas). */
  maxRefDepth?: number;
}

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated',
  'readOnly', 'writeOnly', '$defs', 'definitions']);
const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems',
  'additionalItems', 'minItems', 'maxItems', 'uniqueItems', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref',
  'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'propertyNames']);
const TYPES = ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'] as const;
type JsonType = (typeof TYPES)[number];
const MAX_INT = 10 ** MAX_INT_DIGITS - 1;
/** Integer ranges up to this many values are enumerated exactly. */
const MAX_ENUMERATED_RANGE = 1024;

type Schema = Record<string, unknown>;

function isObj(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function jsonTypeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

function typeMatches(v: unknown, t: JsonType): boolean {
  const vt = jsonTypeOf(v);
  return vt === t || (t === 'number' && vt === 'integer');
}

export class SchemaCompiler {
  readonly lex: JsonLexer;
  private readonly refDepth = new Map<string, number>();
  private readonly maxRefDepth: number;

  constructor(readonly b: NfaBuilder, private readonly root: unknown, opts: SchemaOptions = {}) {
    this.lex = new JsonLexer(b, { ...DEFAULT_LEX, ...opts });
    this.maxRefDepth = opts.maxRefDepth ?? 3;
    this.check(root, '#');
  }

  /** The fragment for `schema`, or null when no instance can be generated (false, empty enum, too deep). */
  compile(schema: unknown, path: string): Frag | null {
    const { b, lex } = this;
    if (schema === true) return lex.anyValue();
    if (schema === false) return null;
    if (!isObj(schema)) throw new GrammarError(`schema at ${path} must be an object or a boolean`);
    const keys = Object.keys(schema).filter((k) => !ANNOTATIONS.has(k));
    if (typeof schema.$ref === 'string') {
      if (keys.length > 1) this.siblings(path, '$ref', keys);
      return this.ref(schema.$ref, path);
    }
    for (const comb of ['anyOf', 'oneOf', 'allOf'] as const) {
      if (schema[comb] === undefined) continue;
      const branches = schema[comb];
      if (!Array.isArray(branches) || branches.length === 0) throw new GrammarError(`${path}/${comb} must be a non-empty array`);
      if (keys.length > 1) this.siblings(path, comb, keys);
      if (comb === 'allOf') {
        if (branches.length > 1) throw new GrammarError(`${path}/allOf with more than one branch is not supported`, ['allOf']);
        return this.compile(branches[0], `${path}/allOf/0`);
      }
      if (comb === 'oneOf') this.checkDisjoint(branches, path);
      const frags = branches.map((s, i) => this.compile(s, `${path}/${comb}/${i}`)).filter((f): f is Frag => f !== null);
      return frags.length ? b.alt(frags) : null;
    }
    const types = this.types(schema, path);
    if ('const' in schema) return types.some((t) => typeMatches(schema.const, t)) ? lex.literal(schema.const) : null;
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum)) throw new GrammarError(`${path}/enum must be an array`);
      const vals = schema.enum.filter((v) => types.some((t) => typeMatches(v, t)) && this.literalOk(schema, v));
      return vals.length ? b.alt(vals.map((v) => lex.literal(v))) : null;
    }
    const frags = types.map((t) => this.typed(t, schema, path)).filter((f): f is Frag => f !== null);
    return frags.length ? b.alt(frags) : null;
  }

  private siblings(path: string, kw: string, keys: string[]): never {
    const others = keys.filter((k) => k !== kw);
    throw new GrammarError(`${path}: "${kw}" next to other keywords (${others.join(', ')}) is not supported; move them into the ${kw} branches`, others);
  }

  /** Keywords of every subschema are checked up front, so an error names all unsupported keywords at once. */
  private check(schema: unknown, path: string): void {
    if (typeof schema === 'boolean') return;
    if (!isObj(schema)) throw new GrammarError(`schema at ${path} must be an object or a boolean`);
    const bad = Object.keys(schema).filter((k) => !SUPPORTED.has(k) && !ANNOTATIONS.has(k));
    if (schema.uniqueItems === true) bad.push('uniqueItems');
    // Keys are always strings: `propertyNames: {type: "string"}` (zod records) constrains nothing; others do.
    const pn = schema.propertyNames;
    if (pn !== undefined && pn !== true && !(isObj(pn) && Object.keys(pn).every((k) => ANNOTATIONS.has(k) || (k === 'type' && pn.type === 'string')))) {
      bad.push('propertyNames');
    }
    for (const k of ['exclusiveMinimum', 'exclusiveMaximum']) if (typeof schema[k] === 'boolean') bad.push(`${k} (boolean form)`);
    if (bad.length) throw new GrammarError(`unsupported JSON Schema keyword${bad.length > 1 ? 's' : ''} at ${path}: ${bad.join(', ')}`, bad);
    const sub = (v: unknown, p: string) => this.check(v, p);
    for (const k of ['properties', '$defs', 'definitions']) {
      const m = schema[k];
      if (m === undefined) continue;
      if (!isObj(m)) throw new GrammarError(`${path}/${k} must be an object`);
      for (const [name, s] of Object.entries(m)) sub(s, `${path}/${k}/${name}`);
    }
    for (const k of ['anyOf', 'oneOf', 'allOf', 'prefixItems']) {
      const arr = schema[k];
      if (Array.isArray(arr)) arr.forEach((s, i) => sub(s, `${path}/${k}/${i}`));
    }
    if (Array.isArray(schema.items)) schema.items.forEach((s, i) => sub(s, `${path}/items/${i}`));
    else if (schema.items !== undefined) sub(schema.items, `${path}/items`);
    for (const k of ['additionalProperties', 'additionalItems']) if (schema[k] !== undefined) sub(schema[k], `${path}/${k}`);
  }

  private ref(ref: string, path: string): Frag | null {
    const depth = this.refDepth.get(ref) ?? 0;
    if (depth >= this.maxRefDepth) return null;
    const target = this.resolve(ref, path);
    this.refDepth.set(ref, depth + 1);
    try {
      return this.compile(target, ref);
    } finally {
      this.refDepth.set(ref, depth);
    }
  }

  resolve(ref: string, path: string): unknown {
    if (ref !== '#' && !ref.startsWith('#/')) {
      throw new GrammarError(`${path}: only local $ref ("#/...") is supported, got "${ref}"`, ['$ref']);
    }
    let node: unknown = this.root;
    for (const raw of ref.slice(2).split('/').filter((s, i, a) => !(a.length === 1 && s === ''))) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObj(node) && !Array.isArray(node)) throw new GrammarError(`${path}: $ref "${ref}" does not resolve`);
      node = (node as Record<string, unknown>)[key];
      if (node === undefined) throw new GrammarError(`${path}: $ref "${ref}" does not resolve`);
    }
    return node;
  }

  private types(schema: Schema, path: string): JsonType[] {
    const t = schema.type;
    if (t !== undefined) {
      const list = Array.isArray(t) ? t : [t];
      for (const x of list) {
        if (!TYPES.includes(x as JsonType)) throw new GrammarError(`${path}/type: unknown type ${JSON.stringify(x)}`);
      }
      return list as JsonType[];
    }
    if ('const' in schema) return [jsonTypeOf(schema.const)];
    if (Array.isArray(schema.enum)) return [...new Set(schema.enum.map(jsonTypeOf))];
    const inferred: JsonType[] = [];
    if (['properties', 'required', 'additionalProperties'].some((k) => k in schema)) inferred.push('object');
    if (['items', 'prefixItems', 'minItems', 'maxItems'].some((k) => k in schema)) inferred.push('array');
    if (['minLength', 'maxLength'].some((k) => k in schema)) inferred.push('string');
    if (['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].some((k) => k in schema)) inferred.push('number');
    return inferred.length ? inferred : ['null', 'boolean', 'object', 'array', 'number', 'string'];
  }

  /** enum/const values must also satisfy the sibling bounds we would otherwise enforce. */
  private literalOk(schema: Schema, v: unknown): boolean {
    if (typeof v === 'string') {
      const n = [...v].length;
      return n >= ((schema.minLength as number) ?? 0) && n <= ((schema.maxLength as number) ?? Infinity);
    }
    if (typeof v === 'number') {
      const lo = this.num(schema, 'minimum'), hi = this.num(schema, 'maximum');
      const xlo = this.num(schema, 'exclusiveMinimum'), xhi = this.num(schema, 'exclusiveMaximum');
      return (lo === undefined || v >= lo) && (hi === undefined || v <= hi) && (xlo === undefined || v > xlo) && (xhi === undefined || v < xhi);
    }
    return true;
  }

  private num(schema: Schema, k: string): number | undefined {
    const v = schema[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new GrammarError(`"${k}" must be a finite number`);
    return v;
  }

  private count(schema: Schema, k: string): number | undefined {
    const v = schema[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new GrammarError(`"${k}" must be a non-negative integer`);
    return v;
  }

  private typed(t: JsonType, schema: Schema, path: string): Frag | null {
    const { b, lex } = this;
    switch (t) {
      case 'null': return lex.literal(null);
      case 'boolean': return lex.boolean();
      case 'string': {
        const min = this.count(schema, 'minLength') ?? 0, max = this.count(schema, 'maxLength');
        return max !== undefined && max < min ? null : lex.string(min, max);
      }
      case 'integer':
      case 'number': return this.numeric(t, schema, path);
      case 'object': return this.object(schema, path);
      case 'array': return this.array(schema, path);
    }
    return b.empty(); // unreachable: types() validated t
  }

  private numeric(t: 'integer' | 'number', schema: Schema, path: string): Frag | null {
    const { lex } = this;
    const min = this.num(schema, 'minimum'), max = this.num(schema, 'maximum');
    const xmin = this.num(schema, 'exclusiveMinimum'), xmax = this.num(schema, 'exclusiveMaximum');
    if (t === 'integer') {
      // Inclusive integer bounds.
      const lo = Math.max(min === undefined ? -Infinity : Math.ceil(min), xmin === undefined ? -Infinity : Math.floor(xmin) + 1);
      const hi = Math.min(max === undefined ? Infinity : Math.floor(max), xmax === undefined ? Infinity : Math.ceil(xmax) - 1);
      if (lo > hi) return null;
      if (hi - lo < MAX_ENUMERATED_RANGE) {
        const vals: Frag[] = [];
        for (let v = lo; v <= hi; v++) vals.push(lex.literal(v));
        return this.b.alt(vals);
      }
      if (hi < MAX_INT) this.unsupportedBound(path, 'maximum/exclusiveMaximum', t);
      if (lo <= -MAX_INT) return lex.integer('any');
      if (lo <= 0) return lex.integer('nonneg');
      if (lo <= 1) return lex.integer('positive');
      return this.unsupportedBound(path, 'minimum/exclusiveMinimum', t);
    }
    const BIG = 1e116; // beyond every number the generator can write
    if ((max !== undefined && max < BIG) || (xmax !== undefined && xmax < BIG)) this.unsupportedBound(path, 'maximum/exclusiveMaximum', t);
    const lo = Math.max(min ?? -Infinity, xmin ?? -Infinity);
    if (lo <= -BIG) return lex.number('any');
    if ((min ?? -Infinity) <= 0 && (xmin ?? -Infinity) < 0) return lex.number('nonneg');
    return this.unsupportedBound(path, 'minimum/exclusiveMinimum', t);
  }

  private unsupportedBound(path: string, kw: string, t: string): never {
    throw new GrammarError(`${path}: this ${kw} bound on a${t === 'integer' ? 'n' : ''} ${t} is not supported ` +
      `(supported: integer ranges of up to ${MAX_ENUMERATED_RANGE} values, lower bounds 0 or 1, bounds beyond the generated range)`, [kw]);
  }

  private object(schema: Schema, path: string): Frag | null {
    const { b, lex } = this;
    const props = schema.properties ?? {};
    if (!isObj(props)) throw new GrammarError(`${path}/properties must be an object`);
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) {
      throw new GrammarError(`${path}/required must be an array of property names`);
    }
    for (const r of required) {
      if (!(r in props)) throw new GrammarError(`${path}: required property "${r}" is not declared in properties (declare it so its value can be generated)`);
    }
    const names = Object.keys(props);
    const addl = schema.additionalProperties;
    if (names.length === 0) {
      if (addl === false) return b.seq(b.bytes('{'), lex.ws(), b.bytes('}'));
      if (isObj(addl) && Object.keys(addl).some((k) => !ANNOTATIONS.has(k))) {
        const probe = this.compile(addl, `${path}/additionalProperties`);
        if (probe === null) return b.seq(b.bytes('{'), lex.ws(), b.bytes('}'));
        return lex.objectOf(() => lex.string(), () => this.compile(addl, `${path}/additionalProperties`)!);
      }
      return lex.anyObject();
    }
    // States: cur0 = "no member written yet", cur1 = "at least one written" (the next member needs a comma).
    const open = b.seq(b.bytes('{'), lex.ws());
    let cur0: number | null = open.end, cur1: number | null = null;
    for (const name of names) {
      const isReq = required.includes(name);
      const value = this.compile(props[name], `${path}/properties/${name}`);
      if (value === null) {
        if (isReq) return null;
        continue;
      }
      const member = b.seq(lex.literal(name), b.bytes(':'), lex.ws(), value, lex.ws());
      const next1 = b.state();
      if (cur0 !== null) b.epsilon(cur0, member.start);
      if (cur1 !== null) {
        const comma = b.seq(b.bytes(','), lex.ws());
        b.epsilon(cur1, comma.start);
        b.epsilon(comma.end, member.start);
        if (!isReq) b.epsilon(cur1, next1);
      }
      b.epsilon(member.end, next1);
      if (isReq) cur0 = null;
      cur1 = next1;
    }
    const close = b.bytes('}');
    if (cur0 !== null) b.epsilon(cur0, close.start);
    if (cur1 !== null) b.epsilon(cur1, close.start);
    return { start: open.start, end: close.end };
  }

  private array(schema: Schema, path: string): Frag | null {
    const { b, lex } = this;
    const minItems = this.count(schema, 'minItems') ?? 0, maxItems = this.count(schema, 'maxItems');
    if (maxItems !== undefined && maxItems < minItems) return null;
    const tuple = Array.isArray(schema.prefixItems) ? schema.prefixItems : Array.isArray(schema.items) ? schema.items : undefined;
    if (tuple) {
      // Only the tuple's own items are generated; extra items are allowed by some schemas but never required.
      const n = maxItems === undefined ? tuple.length : Math.min(tuple.length, maxItems);
      if (minItems > n) throw new GrammarError(`${path}: minItems ${minItems} exceeds the ${n} tuple items that can be generated`, ['minItems']);
      const key = Array.isArray(schema.prefixItems) ? 'prefixItems' : 'items';
      const frags: Frag[] = [];
      for (let i = 0; i < n; i++) {
        const f = this.compile(tuple[i], `${path}/${key}/${i}`);
        if (f === null) break;
        frags.push(f);
      }
      if (frags.length < minItems) return null;
      // Prefixes of length minItems..frags.length.
      const open = b.seq(b.bytes('['), lex.ws());
      const close = b.bytes(']');
      let cur = open.end;
      for (let i = 0; i < frags.length; i++) {
        if (i >= minItems) b.epsilon(cur, close.start);
        const sep = i === 0 ? b.empty() : b.seq(b.bytes(','), lex.ws());
        const step = b.seq(sep, frags[i]!, lex.ws());
        b.epsilon(cur, step.start);
        cur = step.end;
      }
      b.epsilon(cur, close.start);
      return { start: open.start, end: close.end };
    }
    const items = schema.items;
    const probe = items === undefined ? lex.anyValue() : this.compile(items, `${path}/items`);
    if (probe === null) return minItems === 0 ? b.seq(b.bytes('['), lex.ws(), b.bytes(']')) : null;
    let first = true;
    const make = (): Frag => {
      if (first) { first = false; return probe; } // reuse the probe as the first copy
      return items === undefined ? lex.anyValue() : this.compile(items, `${path}/items`)!;
    };
    return lex.arrayOf(make, minItems, maxItems);
  }

  /** oneOf is compiled like anyOf, which is exact only when no instance can match two branches. */
  private checkDisjoint(branches: unknown[], path: string): void {
    const info = branches.map((s) => this.summary(s, 0));
    for (let i = 0; i < info.length; i++) {
      for (let j = i + 1; j < info.length; j++) {
        if (!disjoint(info[i]!, info[j]!)) {
          throw new GrammarError(`${path}/oneOf: branches ${i} and ${j} may both match one instance, which oneOf forbids; ` +
            'use anyOf, or make them differ by type or by a required const/enum property', ['oneOf']);
        }
      }
    }
  }

  private summary(s: unknown, depth: number): Summary {
    if (isObj(s) && typeof s.$ref === 'string' && depth < 8) return this.summary(this.resolve(s.$ref, '#'), depth + 1);
    if (!isObj(s)) return { types: null, values: null, discr: new Map() };
    const values = 'const' in s ? [JSON.stringify(s.const)] : Array.isArray(s.enum) ? s.enum.map((v) => JSON.stringify(v)) : null;
    const types = s.type !== undefined ? new Set((Array.isArray(s.type) ? s.type : [s.type]) as string[])
      : values ? new Set(values.map((v) => jsonTypeOf(JSON.parse(v)) as string)) : null;
    const discr = new Map<string, string[]>();
    if (isObj(s.properties) && Array.isArray(s.required)) {
      for (const r of s.required as string[]) {
        const p = this.summary(s.properties[r], depth + 1);
        if (p.values) discr.set(r, p.values);
      }
    }
    return { types, values, discr };
  }
}

interface Summary {
  types: Set<string> | null;
  values: string[] | null;
  discr: Map<string, string[]>;
}

function disjoint(a: Summary, b: Summary): boolean {
  if (a.types && b.types) {
    const widen = (t: Set<string>) => (t.has('number') ? new Set([...t, 'integer']) : t);
    const ta = widen(a.types), tb = widen(b.types);
    if (![...ta].some((t) => tb.has(t))) return true;
  }
  if (a.values && b.values && !a.values.some((v) => b.values!.includes(v))) return true;
  for (const [k, va] of a.discr) {
    const vb = b.discr.get(k);
    if (vb && !va.some((v) => vb.includes(v))) return true;
  }
  return false;
}
