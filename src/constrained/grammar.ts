// Grammars for the OpenAI request surface: response_format (json_object, json_schema) and tool_choice
// (required / a named function). A `Grammar` is a plain object (strings and typed arrays): it survives
// structured clone into the engine worker, and `key` lets every sequence with the same grammar share one lazily
// built DFA and its mask cache there.
import { createHash } from 'node:crypto';
import { DEFAULT_LEX, JsonLexer } from './json_lexical.js';
import { type Frag, GrammarError, NfaBuilder, type NfaSpec } from './nfa.js';
import { SchemaCompiler, type SchemaOptions } from './schema.js';
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from '../text/tool_calls.js';

// Tool-call markers are the tokenizer's (non-special) added tokens <|tool_call|> / <|/tool_call|>.
export { TOOL_CALL_CLOSE, TOOL_CALL_OPEN };

export interface Grammar {
  /** Identifies the compiled automaton: equal keys mean equal automata. */
  key: string;
  /** What the grammar came from, for messages ("json_schema person", "tool_call get_weather|search"). */
  label: string;
  nfa: NfaSpec;
}

const GRAMMAR_VERSION = 1;

function makeGrammar(label: string, source: unknown, build: (b: NfaBuilder) => Frag | null): Grammar {
  const b = new NfaBuilder();
  const root = build(b);
  if (root === null) throw new GrammarError(`${label}: the schema admits no value that can be generated (false, an empty enum, or recursion without an exit)`);
  const key = createHash('sha256').update(JSON.stringify({ v: GRAMMAR_VERSION, source })).digest('hex').slice(0, 32);
  return { key, label, nfa: b.finish(root) };
}

/** A grammar for one JSON Schema (the value itself, at the top level; no leading/trailing whitespace). */
export function compileJsonSchema(schema: unknown, opts: SchemaOptions = {}, label = 'json_schema'): Grammar {
  return makeGrammar(label, { schema, opts }, (b) => new SchemaCompiler(b, schema, opts).compile(schema, '#'));
}

/** Any JSON object (json_object mode); nesting is bounded by `anyDepth`. */
export function compileJsonObject(opts: SchemaOptions = {}): Grammar {
  return makeGrammar('json_object', { jsonObject: true, opts }, (b) => new JsonLexer(b, { ...DEFAULT_LEX, ...opts }).anyObject());
}

/**
 * OpenAI `response_format`: `{type: "text"}` (or undefined) → null (no constraint); `{type: "json_object"}`;
 * `{type: "json_schema", json_schema: {name, schema, strict}}`. strict true/false compile the same (see schema.ts:
 * undeclared keys are never generated, so the output satisfies the strict reading too). Throws GrammarError.
 */
export function compileResponseFormat(format: unknown, opts: SchemaOptions = {}): Grammar | null {
  if (format === undefined || format === null) return null;
  if (typeof format !== 'object') throw new GrammarError('response_format must be an object');
  const f = format as { type?: unknown; json_schema?: { name?: unknown; schema?: unknown } };
  switch (f.type) {
    case 'text': return null;
    case 'json_object': return compileJsonObject(opts);
    case 'json_schema': {
      const js = f.json_schema;
      if (!js || typeof js !== 'object') throw new GrammarError('response_format.json_schema must be an object with a "schema"');
      const schema = js.schema ?? {}; // OpenAI treats a missing schema as "any JSON"
      return compileJsonSchema(schema, opts, `json_schema ${typeof js.name === 'string' ? js.name : ''}`.trim());
    }
    default: throw new GrammarError(`response_format.type must be "text", "json_object" or "json_schema", got ${JSON.stringify(f.type)}`);
  }
}

export interface ToolSpec {
  type?: 'function';
  function: { name: string; description?: string; parameters?: unknown; strict?: boolean | null };
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export interface ToolChoiceOptions extends SchemaOptions {
  /** OpenAI parallel_tool_calls (default true): allow several calls in one list; false: exactly one. */
  parallel?: boolean;
}

/**
 * The constraint for `tool_choice`. `auto` and `none` → null (no grammar: for `none` the caller should simply not
 * offer tools, or ban the <|tool_call|> id). `required` → one or more calls to any of `tools`; a named function →
 * calls to that function only. The output is written the way Phi-4-mini's template/model card shows calls:
 *   <|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>
 * with the markers as their added tokens and `arguments` following the function's `parameters` schema (absent
 * parameters: `{}`). parseToolCalls (src/text/tool_calls.ts) reads exactly this back.
 */
export function compileToolChoice(tools: readonly ToolSpec[] | undefined, choice: ToolChoice | undefined, opts: ToolChoiceOptions = {}): Grammar | null {
  if (choice === undefined || choice === 'auto' || choice === 'none') return null;
  if (!tools || tools.length === 0) throw new GrammarError('tool_choice requires a non-empty "tools" list');
  for (const [i, t] of tools.entries()) {
    if (!t || typeof t.function?.name !== 'string' || !t.function.name) throw new GrammarError(`tools[${i}].function.name must be a non-empty string`);
  }
  let chosen: readonly ToolSpec[];
  if (choice === 'required') chosen = tools;
  else if (typeof choice === 'object' && choice?.type === 'function' && typeof choice.function?.name === 'string') {
    chosen = tools.filter((t) => t.function.name === choice.function.name);
    if (!chosen.length) throw new GrammarError(`tool_choice names function "${choice.function.name}", which is not in tools (${tools.map((t) => t.function.name).join(', ')})`);
  } else {
    throw new GrammarError('tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}');
  }
  const parallel = opts.parallel ?? true;
  const source = { tools: chosen.map((t) => ({ name: t.function.name, parameters: t.function.parameters ?? null })), parallel, opts };
  return makeGrammar(`tool_call ${chosen.map((t) => t.function.name).join('|')}`, source, (b) => {
    const calls = chosen.map((t) => {
      const params = t.function.parameters ?? { type: 'object', properties: {}, additionalProperties: false };
      const compiler = new SchemaCompiler(b, params, opts);
      return () => {
        const args = compiler.compile(params, `tools[${t.function.name}].parameters`);
        if (args === null) return null;
        const { lex } = compiler;
        return b.seq(b.text('{'), lex.ws(), b.text('"name":'), lex.ws(), lex.literal(t.function.name), lex.ws(), b.text(','), lex.ws(),
          b.text('"arguments":'), lex.ws(), args, lex.ws(), b.text('}'));
      };
    });
    const lex = new JsonLexer(b, { ...DEFAULT_LEX, ...opts });
    // Probe once so a function whose parameters admit nothing is left out (or reported if none is left).
    const usable = calls.filter((make) => make() !== null);
    if (!usable.length) return null;
    const oneCall = () => b.alt(usable.map((make) => make()!));
    const list = lex.arrayOf(oneCall, 1, parallel ? undefined : 1);
    return b.seq(b.special(TOOL_CALL_OPEN), list, b.special(TOOL_CALL_CLOSE));
  });
}
