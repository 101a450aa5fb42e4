// Tools on the OpenAI surface: the request's tools rendered the way the Phi chat template takes them (a JSON
// list in the system turn, `<|tool|>…<|/tool|>`), past assistant tool calls written back as the model emits them
// (`<|tool_call|>[{"name": …, "arguments": {…}}]<|/tool_call|>`), and tool_choice turned into a sampling plan.
// Parsing the output back into calls is src/text/tool_calls.ts; forcing a call is src/constrained.
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from '../text/tool_calls.js';
import type { FunctionTool, ToolChoice } from './schema.js';

export const TOOL_CALL_ID = 200025; // <|tool_call|>
/** The model card's system prompt for tool use, used when the request brings tools but no system message. */
export const DEFAULT_TOOL_SYSTEM = 'You are a helpful assistant with some tools.';

/** The tool list as the template's `tools` string: `[{"name", "description", "parameters"}]`. */
export function renderTools(tools: readonly FunctionTool[]): string {
  return JSON.stringify(tools.map((t) => ({
    name: t.function.name,
    ...(t.function.description !== undefined ? { description: t.function.description } : {}),
    parameters: t.function.parameters ?? { type: 'object', properties: {} },
  })));
}

/** An assistant turn that called tools, as the model would have written it. */
export function renderAssistantCalls(content: string, calls: ReadonlyArray<{ function: { name: string; arguments: string } }>, param: string): string {
  const list = calls.map((c, i) => {
    let args: unknown;
    try {
      args = c.function.arguments.trim() ? JSON.parse(c.function.arguments) : {};
    } catch {
      throw new Error(`${param}.tool_calls.${i}.function.arguments is not valid JSON`);
    }
    return { name: c.function.name, arguments: args };
  });
  return `${content}${TOOL_CALL_OPEN}${JSON.stringify(list)}${TOOL_CALL_CLOSE}`;
}

export interface ToolPlan {
  /** Parse tool calls out of the output (tools given and tool_choice is not "none"). */
  parse: boolean;
  /** Ids the sampler must never choose (tool_choice "none" bans <|tool_call|>). */
  suppressIds: number[];
  /** parallel_tool_calls: false keeps at most one call (the grammar forces one when the call is forced). */
  parallel: boolean;
}

export function toolPlan(tools: readonly FunctionTool[] | null | undefined, choice: ToolChoice | null | undefined, parallel: boolean | null | undefined): ToolPlan {
  const par = parallel ?? true;
  if (!tools?.length) return { parse: false, suppressIds: [], parallel: par };
  if ((choice ?? 'auto') === 'none') return { parse: false, suppressIds: [TOOL_CALL_ID], parallel: par };
  return { parse: true, suppressIds: [], parallel: typeof choice === 'object' && choice !== null ? false : par };
}
