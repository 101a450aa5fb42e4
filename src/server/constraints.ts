// Request-side grammar compilation for constrained decoding (structured outputs, forced tool calls): a 400 that
// names what cannot be honoured (unsupported schema keywords included), before any work is queued.
import { compileResponseFormat, compileToolChoice, GrammarError, type Grammar } from '../constrained/index.js';
import { HttpError } from './http.js';
import type { RouteContext } from './common.js';
import type { FunctionTool, ResponseFormat, ToolChoice } from './schema.js';

/** The grammar for a forced tool call or a JSON response format; null when neither asks for one. */
export function compileConstraint(ctx: RouteContext, r: { tools?: FunctionTool[] | null | undefined; tool_choice?: ToolChoice | null | undefined; parallel_tool_calls?: boolean | null | undefined; response_format?: ResponseFormat | null | undefined }, params: { tools: string; format: string }): Grammar | null {
  let grammar: Grammar | null = null, param = params.format;
  try {
    grammar = compileResponseFormat(r.response_format ?? undefined);
    if (!grammar && r.tools?.length) {
      param = params.tools;
      // A named tool_choice forces one call to that function (as OpenAI does); "required" may call several
      // unless parallel_tool_calls is false.
      const parallel = typeof r.tool_choice === 'object' && r.tool_choice !== null ? false : (r.parallel_tool_calls ?? true);
      grammar = compileToolChoice(r.tools, r.tool_choice ?? undefined, { parallel });
    }
  } catch (e) {
    if (!(e instanceof GrammarError)) throw e;
    const code = e.keywords.length ? 'unsupported_schema_keyword' : 'invalid_value';
    throw new HttpError(400, 'invalid_request_error', `${param}: ${e.message}`, param, code);
  }
  if (grammar && !ctx.engine.constrainedDecoding) {
    throw new HttpError(400, 'invalid_request_error', `${param}: ${grammar.label} needs grammar-constrained decoding, which this model engine does not offer`, param, 'unsupported_value');
  }
  return grammar;
}
