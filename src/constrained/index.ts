// Grammar-constrained decoding: structured outputs (response_format) and forced tool calls (tool_choice).
//
// Usage (server edge, then the engine worker):
//
//   import { compileResponseFormat, compileToolChoice, GrammarConstraint, tokenTrieFor, GrammarError } from '../constrained/index.js';
//
//   // 1. At the edge, per request. Throws GrammarError (message names unsupported keywords in `.keywords`):
//   //    answer 400 with err.message. null = no constraint.
//   const grammar = compileResponseFormat(body.response_format)            // text → null; json_object; json_schema
//     ?? compileToolChoice(body.tools, body.tool_choice, { parallel: body.parallel_tool_calls ?? true });
//                                                                           // auto/none → null; required/named → grammar
//   // `grammar` is a plain object (strings + typed arrays): put it in the SamplerSpec as is; it survives
//   // structured clone into the worker.
//
//   // 2. In the worker, per sequence (the trie is built once per tokenizer and cached; ~1 s for o200k):
//   const c = new GrammarConstraint(grammar, tokenTrieFor(tokenizer));
//   // each step:
//   c.mask(logits);          // disallowed ids → -Infinity (EOS only where the grammar accepts), before sampling
//   const id = sample(logits);
//   c.accept(id);            // advance; throws GrammarError if id was not allowed
//   // stop when id is EOS (c.finished), or when c.isComplete() (only EOS may follow: the caller may end the
//   // sequence right away, finish_reason "stop"). c.canEnd(): the output so far is complete JSON.
//   // c.allows(id): cheap check for a sample-first fast path (sample unmasked, mask only on a miss).
//   // c.allowed(): the cached allowed set ({mode: 'allow'|'deny', ids, eos}) without touching logits.
//   // Errors: GrammarError from compile* (→ 400); from mask()/accept() only for an id the mask did not allow
//   // or an automaton past its state cap (end that sequence with an error).
//   // tool_choice "none": no grammar; ban trie.addedId(TOOL_CALL_OPEN) through logit bias if wanted.
//   // Decode the output keeping <|tool_call|> / <|/tool_call|> (they are not "special", so skipSpecialTokens keeps
//   // them) and feed it to ToolCallStreamParser / parseToolCalls.
//
// The mask for a DFA state is computed once (one trie walk, a few ms cold) and cached per grammar key; grammars
// with the same key share the cache across sequences and requests. Inside strings, where nearly every token is
// allowed, the set is decided by character count (plain.ts) plus a walk of the ~11.6k other tokens. Output is
// compact-or-indented JSON (optional newline + up to 16 spaces between tokens; `{maxIndent: 0}` for compact only),
// with bounded number digits; see schema.ts for the schema subset.
// With tool_choice the output is `<|tool_call|>[{"name": …, "arguments": {…}}]<|/tool_call|>`, which
// parseToolCalls / ToolCallStreamParser in src/text/tool_calls.ts turn into OpenAI tool_calls.
export { GrammarConstraint, GrammarRuntime, grammarRuntime } from './constraint.js';
export { LazyDfa } from './dfa.js';
export {
  compileJsonObject, compileJsonSchema, compileResponseFormat, compileToolChoice, type Grammar, TOOL_CALL_CLOSE,
  TOOL_CALL_OPEN, type ToolChoice, type ToolChoiceOptions, type ToolSpec,
} from './grammar.js';
export { GrammarError, type NfaSpec } from './nfa.js';
export type { SchemaOptions } from './schema.js';
export { TokenTrie, tokenTrieFor, type TrieTokenSource } from './trie.js';
