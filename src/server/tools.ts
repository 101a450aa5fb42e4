// Tools on the OpenAI surface: the request's tools rendered the way the Phi chat template takes them (a JSON
// list in the system turn, `<|tool|>…<|/tool|>`), past assistant tool calls written back as the model emits them
// (`<|tool_call|>[{"name": …, "arguments": {…}}]<|/tool_call|>`), tool_choice turned into a sampling plan, and
// the model's output split back into content and OpenAI tool_calls (also the `functools[…]` form some
// Phi-4-mini builds emit).
import { randomBytes } from 'node:crypto';
import type { ConstraintSpec } from '../text/sampler.js';
import type { FunctionTool, ToolChoice } from './schema.js';

export const TOOL_CALL_OPEN = '<|tool_call|>';
export const TOOL_CALL_CLOSE = '<|/tool_call|>';
export const TOOL_CALL_ID = 200025; // <|tool_call|>
const FUNCTOOLS_OPEN = 'functools[';
/** The model card's system prompt for tool use, used when the request brings tools but no system message. */
export const DEFAULT_TOOL_SYSTEM = 'You are a helpful assistant with some tools.';

export interface ParsedCall {
  name: string;
  /** JSON text, as OpenAI sends `function.arguments`. */
  arguments: string;
}

export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

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
  /** Ids the sampler must never choose. */
  suppressIds: number[];
  /** Forced call (required / named function). */
  constraint?: ConstraintSpec;
  /** Allowed function names (parsed calls to others stay plain text). */
  names: Set<string>;
  parallel: boolean;
}

export function toolPlan(tools: readonly FunctionTool[] | null | undefined, choice: ToolChoice | null | undefined, parallel: boolean | null | undefined): ToolPlan {
  const list = tools ?? [];
  const par = parallel ?? true;
  const names = new Set(list.map((t) => t.function.name));
  if (!list.length) return { parse: false, suppressIds: [], names, parallel: par };
  const c = choice ?? 'auto';
  if (c === 'none') return { parse: false, suppressIds: [TOOL_CALL_ID], names, parallel: par };
  if (c === 'auto') return { parse: true, suppressIds: [], names, parallel: par };
  const allowed = c === 'required' ? list : list.filter((t) => t.function.name === c.function.name);
  const constraint: ConstraintSpec = {
    kind: 'tool_call', parallel: par,
    tools: allowed.map((t) => ({ name: t.function.name, parameters: t.function.parameters ?? { type: 'object', properties: {} } })),
  };
  return { parse: true, suppressIds: [], constraint, names: new Set(allowed.map((t) => t.function.name)), parallel: par };
}

export function newCallId(): string {
  return `call_${randomBytes(12).toString('base64url')}`;
}

/**
 * Splits a finished output into content and calls. Returns calls = [] (and the text unchanged) when there is no
 * call marker, when the call text is not JSON of the expected shape, or when it names a function not offered.
 */
export function parseToolCalls(text: string, names: ReadonlySet<string>): { content: string; calls: ParsedCall[] } {
  const at = markerIndex(text);
  if (at < 0) return { content: text, calls: [] };
  const before = text.slice(0, at);
  let body = text.slice(at);
  if (body.startsWith(FUNCTOOLS_OPEN)) body = body.slice(FUNCTOOLS_OPEN.length - 1); // keep the '['
  else {
    // One or more <|tool_call|>…<|/tool_call|> blocks; the last close may be missing (stopped at eos).
    const blocks = body.split(TOOL_CALL_OPEN).slice(1).map((b) => b.split(TOOL_CALL_CLOSE)[0]!.trim());
    body = blocks.length === 1 ? blocks[0]! : `[${blocks.map((b) => (b.startsWith('[') ? b.slice(1, -1) : b)).join(',')}]`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.trim());
  } catch {
    return { content: text, calls: [] };
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  const calls: ParsedCall[] = [];
  for (const it of items) {
    if (!it || typeof it !== 'object') return { content: text, calls: [] };
    const o = it as Record<string, unknown>;
    const args = o['arguments'] ?? o['parameters'] ?? {};
    if (typeof o['name'] !== 'string' || !names.has(o['name'])) return { content: text, calls: [] };
    calls.push({ name: o['name'], arguments: typeof args === 'string' ? args : JSON.stringify(args) });
  }
  return calls.length ? { content: before, calls } : { content: text, calls: [] };
}

function markerIndex(text: string): number {
  const a = text.indexOf(TOOL_CALL_OPEN), b = text.indexOf(FUNCTOOLS_OPEN);
  return a < 0 ? b : b < 0 ? a : Math.min(a, b);
}

/**
 * Streaming side: passes content through until a call marker could be starting, then holds the rest back so it
 * can be parsed once the output is complete. `end()` returns the held text and the calls found in it.
 */
export class ToolCallSplitter {
  private held = '';
  private inCall = false;
  constructor(private readonly names: ReadonlySet<string>) {}

  push(text: string): string {
    if (this.inCall) { this.held += text; return ''; }
    const buf = this.held + text;
    const at = markerIndex(buf);
    if (at >= 0) { this.inCall = true; this.held = buf.slice(at); return buf.slice(0, at); }
    const keep = partialMarkerSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** The text that is content after all, and the calls. */
  end(): { content: string; calls: ParsedCall[] } {
    const held = this.held;
    this.held = '';
    if (!this.inCall) return { content: held, calls: [] };
    return parseToolCalls(held, this.names);
  }
}

function partialMarkerSuffix(buf: string): number {
  let best = 0;
  for (const m of [TOOL_CALL_OPEN, FUNCTOOLS_OPEN]) {
    for (let n = Math.min(m.length - 1, buf.length); n > best; n--) if (buf.endsWith(m.slice(0, n))) { best = n; break; }
  }
  return best;
}

/** Calls as OpenAI's message.tool_calls (fresh ids), keeping only the first when parallel calls are off. */
export function toOpenAICalls(calls: readonly ParsedCall[], parallel: boolean): OpenAIToolCall[] {
  return (parallel ? calls : calls.slice(0, 1)).map((c) => ({ id: newCallId(), type: 'function', function: { name: c.name, arguments: c.arguments } }));
}
