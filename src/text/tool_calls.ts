// The model's tool calls → OpenAI `tool_calls`. Phi-4-mini/multimodal write a call as
//   <|tool_call|>[{"name": "f", "arguments": {...}}]<|/tool_call|>
// (a list or a single object; `parameters` is accepted for `arguments`, and the OpenAI shape
// {"type": "function", "function": {"name", "arguments"}} too). Some Phi-4-mini builds instead start their answer
// with `functools[{"name": ..., "arguments": ...}, ...]` (no closing marker); that form is recognised only at the
// start of the output (after whitespace), so prose that mentions "functools[" later is left alone. A block whose
// JSON does not parse as calls stays in the content, verbatim, as llama.cpp does.
//
// ToolCallStreamParser is fed text deltas and emits content deltas plus one OpenAI tool_call delta per call (id,
// name and the whole arguments string) as soon as its block is complete; text that might be the start of a marker
// is held back until it is known not to be. parseToolCalls is the same machine run over a whole output, so
// streamed and non-streamed responses agree for every way the text can be split.
import { randomBytes } from 'node:crypto';

export const TOOL_CALL_OPEN = '<|tool_call|>';
export const TOOL_CALL_CLOSE = '<|/tool_call|>';
const FUNCTOOLS = 'functools';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** OpenAI chat.completion.chunk `choices[].delta.tool_calls[]` entry (here always a whole call). */
export interface ToolCallDelta extends ToolCall {
  index: number;
}

export type ToolStreamEvent = { type: 'content'; text: string } | { type: 'tool_call'; delta: ToolCallDelta };

export interface ToolParseOptions {
  /** Tool call ids; default `call_` + 24 random alphanumerics. */
  newId?: () => string;
}

export interface ParsedToolOutput {
  /** The text outside the calls (may be empty or whitespace). */
  content: string;
  toolCalls: ToolCall[];
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function newToolCallId(): string {
  const r = randomBytes(24);
  let s = 'call_';
  for (const b of r) s += ALNUM[b % ALNUM.length];
  return s;
}

/** Whole-output parse: content plus calls, identical to what the stream parser emits. */
export function parseToolCalls(text: string, opts: ToolParseOptions = {}): ParsedToolOutput {
  const p = new ToolCallStreamParser(opts);
  const events = [...p.push(text), ...p.end()];
  let content = '';
  const toolCalls: ToolCall[] = [];
  for (const e of events) {
    if (e.type === 'content') content += e.text;
    else toolCalls.push({ id: e.delta.id, type: 'function', function: e.delta.function });
  }
  return { content, toolCalls };
}

/** `[ {name, arguments} … ]` or one such object → calls (arguments as a JSON string); null if not calls. */
export function normalizeCalls(value: unknown): { name: string; arguments: string }[] | null {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return null;
  const out: { name: string; arguments: string }[] = [];
  for (const raw of list) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
    let c = raw as Record<string, unknown>;
    if (typeof c.function === 'object' && c.function !== null && typeof c.name !== 'string') c = c.function as Record<string, unknown>;
    if (typeof c.name !== 'string' || !c.name) return null;
    const args = c.arguments !== undefined ? c.arguments : c.parameters !== undefined ? c.parameters : {};
    out.push({ name: c.name, arguments: typeof args === 'string' ? args : JSON.stringify(args) });
  }
  return out;
}

function tryCalls(json: string): { name: string; arguments: string }[] | null {
  try {
    return normalizeCalls(JSON.parse(json));
  } catch {
    return null;
  }
}

/** Length of the longest suffix of `s` that is a proper prefix of `tag`. */
function heldSuffix(s: string, tag: string): number {
  for (let k = Math.min(tag.length - 1, s.length); k > 0; k--) if (s.endsWith(tag.slice(0, k))) return k;
  return 0;
}

export class ToolCallStreamParser {
  private mode: 'text' | 'call' | 'functools' = 'text';
  private buf = '';
  /** No visible content and no call yet: a `functools[` answer is still possible. */
  private atStart = true;
  private calls = 0;
  // functools bracket scanner state
  private scanPos = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private readonly newId: () => string;

  constructor(opts: ToolParseOptions = {}) {
    this.newId = opts.newId ?? newToolCallId;
  }

  /** Calls emitted so far (finish_reason "tool_calls" when > 0). */
  get toolCallCount(): number {
    return this.calls;
  }

  push(delta: string): ToolStreamEvent[] {
    const out: ToolStreamEvent[] = [];
    this.buf += delta;
    this.run(out, false);
    return out;
  }

  /** End of output: flush what was held back; an unterminated call block is parsed as far as it goes. */
  end(): ToolStreamEvent[] {
    const out: ToolStreamEvent[] = [];
    this.run(out, true);
    return out;
  }

  private run(out: ToolStreamEvent[], final: boolean): void {
    for (;;) {
      if (this.mode === 'text') {
        if (this.atStart) {
          const t = this.buf.trimStart();
          if (t.startsWith(FUNCTOOLS + '[')) {
            this.mode = 'functools';
            this.buf = t.slice(FUNCTOOLS.length);
            this.scanPos = 0; this.depth = 0; this.inString = false; this.escaped = false;
            continue;
          }
          if (!final && (FUNCTOOLS + '[').startsWith(t)) return;
        }
        const at = this.buf.indexOf(TOOL_CALL_OPEN);
        if (at >= 0) {
          this.text(out, this.buf.slice(0, at));
          this.buf = this.buf.slice(at + TOOL_CALL_OPEN.length);
          this.mode = 'call';
          continue;
        }
        const keep = final ? 0 : heldSuffix(this.buf, TOOL_CALL_OPEN);
        this.text(out, this.buf.slice(0, this.buf.length - keep));
        this.buf = this.buf.slice(this.buf.length - keep);
        return;
      }
      if (this.mode === 'call') {
        const at = this.buf.indexOf(TOOL_CALL_CLOSE);
        if (at < 0 && !final) return;
        const body = at < 0 ? this.buf : this.buf.slice(0, at);
        const raw = TOOL_CALL_OPEN + body + (at < 0 ? '' : TOOL_CALL_CLOSE);
        this.buf = at < 0 ? '' : this.buf.slice(at + TOOL_CALL_CLOSE.length);
        this.block(out, body, raw);
        this.mode = 'text';
        if (at < 0) return;
        continue;
      }
      // functools: the JSON list ends where its bracket closes.
      const close = this.scanFunctools();
      if (close < 0 && !final) return;
      const body = close < 0 ? this.buf : this.buf.slice(0, close + 1);
      this.buf = close < 0 ? '' : this.buf.slice(close + 1);
      this.block(out, body, FUNCTOOLS + body);
      this.mode = 'text';
      if (close < 0) return;
    }
  }

  private text(out: ToolStreamEvent[], s: string): void {
    if (!s) return;
    if (s.trim()) this.atStart = false;
    const last = out[out.length - 1];
    if (last?.type === 'content') last.text += s;
    else out.push({ type: 'content', text: s });
  }

  private block(out: ToolStreamEvent[], json: string, raw: string): void {
    const calls = tryCalls(json);
    if (!calls) {
      this.text(out, raw);
      this.atStart = false;
      return;
    }
    this.atStart = false;
    for (const c of calls) {
      out.push({ type: 'tool_call', delta: { index: this.calls++, id: this.newId(), type: 'function', function: c } });
    }
  }

  /** Index of the `]` closing the list that starts at buf[0], or -1 (scans incrementally). */
  private scanFunctools(): number {
    const s = this.buf;
    for (let i = this.scanPos; i < s.length; i++) {
      const ch = s[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
        continue;
      }
      if (ch === '"') this.inString = true;
      else if (ch === '[' || ch === '{') this.depth++;
      else if (ch === ']' || ch === '}') {
        this.depth--;
        if (this.depth === 0) { this.scanPos = i + 1; return i; }
      }
    }
    this.scanPos = s.length;
    return -1;
  }
}
