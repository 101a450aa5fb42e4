// Request validation for the OpenAI-compatible routes (OpenAI's shapes plus the sampling extras mistral.rs
// accepts: top_k, min_p, repetition_penalty). Unknown fields are ignored, as OpenAI clients send many; fields
// that ask for something this server cannot do are refused by name (UNSUPPORTED_FIELDS).
import { z } from 'zod';

const urlPart = z.union([z.string().min(1), z.object({ url: z.string().min(1), detail: z.string().optional() })]);

export const contentPartSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('image_url'), image_url: urlPart }),
  z.object({ type: z.literal('audio_url'), audio_url: urlPart }),
  z.object({
    type: z.literal('input_audio'),
    // Formats the decoders read (the container is sniffed from the bytes; raw pcm16 has no header to read).
    input_audio: z.object({ data: z.string().min(1), format: z.enum(['wav', 'mp3', 'flac', 'ogg', 'opus']).optional() }),
  }),
]);

const textOnly = z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() })).min(1)]);

export const toolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

export const messageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.enum(['system', 'developer']), content: textOnly, name: z.string().optional() }),
  z.object({ role: z.literal('user'), content: z.union([z.string(), z.array(contentPartSchema).min(1)]), name: z.string().optional() }),
  z.object({
    role: z.literal('assistant'),
    content: z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() }))]).nullish(),
    name: z.string().optional(),
    tool_calls: z.array(toolCallSchema).nullish(),
    refusal: z.string().nullish(),
  }),
  z.object({ role: z.literal('tool'), content: textOnly, tool_call_id: z.string().min(1) }),
]);

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/; // OpenAI's rule for function names

export const functionToolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().regex(FUNCTION_NAME, 'function names are 1-64 of a-z, A-Z, 0-9, _ and -'),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1) }) }),
]);

export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({ name: z.string().min(1).max(64), description: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() }),
  }),
]);

/** OpenAI caps: 16 metadata pairs, keys ≤ 64 chars, values ≤ 512 chars. */
export const metadataSchema = z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, 'at most 16 metadata pairs');

/** logit_bias keys are token ids as strings (JSON object keys). */
export const logitBiasSchema = z.record(z.string().regex(/^\d+$/, 'logit_bias keys are token ids'), z.number().min(-100).max(100));

export const MAX_N = 8;
export const MAX_TOP_LOGPROBS = 20;

/** Sampling fields shared by chat and legacy completions. */
const samplingFields = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  stop: z.union([z.string().min(1, 'stop strings must not be empty'), z.array(z.string().min(1, 'stop strings must not be empty')).max(16)]).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).max(MAX_N, `n must be at most ${MAX_N}`).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({
    include_usage: z.boolean().optional(),
    include_obfuscation: z.boolean().optional().refine((v) => v !== true, 'include_obfuscation is not supported (chunks carry no obfuscation padding); leave it out'),
  }).nullish(),
  user: z.string().max(256).nullish(),
  logit_bias: logitBiasSchema.nullish(),
};

/** Fields of OpenAI's chat API that ask for something this server does not do: refused by name, never ignored. */
const UNSUPPORTED_FIELDS: Record<string, (v: unknown) => boolean> = {
  functions: (v) => v != null, function_call: (v) => v != null,
  audio: (v) => v != null, prediction: (v) => v != null, web_search_options: (v) => v != null,
  modalities: (v) => Array.isArray(v) && v.some((m) => m !== 'text'),
  store: (v) => v === true,
  reasoning_effort: (v) => v != null,
};

export function unsupportedFields(body: unknown): string[] {
  if (!body || typeof body !== 'object') return [];
  return Object.entries(UNSUPPORTED_FIELDS).filter(([k, bad]) => k in body && bad((body as Record<string, unknown>)[k])).map(([k]) => k);
}

export const chatRequestSchema = z
  .object({
    ...samplingFields,
    messages: z.array(messageSchema).min(1),
    max_completion_tokens: z.number().int().min(1).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
    tools: z.array(functionToolSchema).max(128).nullish(),
    tool_choice: toolChoiceSchema.nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    response_format: responseFormatSchema.nullish(),
    metadata: metadataSchema.nullish(),
  })
  .superRefine((r, ctx) => {
    if (r.top_logprobs != null && !r.logprobs) ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: 'top_logprobs needs logprobs: true' });
    const names = new Set((r.tools ?? []).map((t) => t.function.name));
    if (names.size !== (r.tools ?? []).length) ctx.addIssue({ code: 'custom', path: ['tools'], message: 'tool function names must be unique' });
    const tc = r.tool_choice;
    if (tc && tc !== 'none' && !(r.tools ?? []).length) ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: `tool_choice ${JSON.stringify(tc)} needs a non-empty tools list` });
    if (tc && typeof tc === 'object' && !names.has(tc.function.name)) ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: `tool_choice names ${tc.function.name}, which is not in tools (${[...names].join(', ')})` });
    const forced = tc === 'required' || typeof tc === 'object';
    if (forced && r.response_format && r.response_format.type !== 'text') ctx.addIssue({ code: 'custom', path: ['response_format'], message: 'response_format json_* cannot be combined with a forced tool_choice; use one constraint at a time' });
  });

export const completionRequestSchema = z
  .object({
    ...samplingFields,
    prompt: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(MAX_N)]),
    logprobs: z.number().int().min(0).max(5, 'completions logprobs is at most 5 (OpenAI)').nullish(),
    echo: z.boolean().nullish(),
    suffix: z.string().nullish(),
    best_of: z.number().int().nullish(),
  })
  .superRefine((r, ctx) => {
    if (r.echo) ctx.addIssue({ code: 'custom', path: ['echo'], message: 'echo is not supported: this server does not score prompt tokens; send echo: false' });
    if (r.suffix) ctx.addIssue({ code: 'custom', path: ['suffix'], message: 'suffix (fill-in-the-middle) is not supported by Phi-4-multimodal; put the whole text in prompt' });
    if (r.best_of != null && r.best_of !== (r.n ?? 1)) ctx.addIssue({ code: 'custom', path: ['best_of'], message: 'best_of other than n is not supported (no server-side ranking)' });
    const prompts = Array.isArray(r.prompt) ? r.prompt.length : 1;
    if (prompts * (r.n ?? 1) > MAX_N) ctx.addIssue({ code: 'custom', path: ['n'], message: `prompts × n must be at most ${MAX_N} (got ${prompts} × ${r.n ?? 1})` });
  });

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatMessageIn = z.infer<typeof messageSchema>;
export type ContentPartIn = z.infer<typeof contentPartSchema>;
export type FunctionTool = z.infer<typeof functionToolSchema>;
export type ToolChoice = z.infer<typeof toolChoiceSchema>;
export type ResponseFormat = z.infer<typeof responseFormatSchema>;

type Issue = { code: string; path: PropertyKey[]; message: string; errors?: Issue[][]; values?: unknown[]; options?: unknown[]; discriminator?: string; expected?: string };

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"` : typeof v === 'object' ? 'an object' : String(v));

/** The most specific issue: a field path and a message naming the allowed values (unions are resolved to the branch the input was meant for). */
export function formatIssue(issues: readonly Issue[], input: unknown): { param: string | null; message: string } {
  const at = (path: PropertyKey[]) => path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined), input);
  const walk = (issue: Issue, prefix: PropertyKey[]): { path: PropertyKey[]; message: string } => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.discriminator) {
      const p = [...path];
      return { path: p, message: `must be one of ${(issue.options ?? []).map((o) => `"${String(o)}"`).join(', ')} (got ${describe(at(p))})` };
    }
    if (issue.code === 'invalid_union' && issue.errors?.length) {
      // Branches that failed only on the value's own type were not what the client meant.
      const meant = issue.errors.filter((b) => !(b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0));
      if (meant.length === 0) {
        const types = issue.errors.map((b) => b[0]?.expected).filter(Boolean);
        return { path, message: `expected ${[...new Set(types)].join(' or ')}, got ${describe(at(path))}` };
      }
      return walk(meant[0]![0]!, path);
    }
    if (issue.code === 'invalid_value' && issue.values) return { path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')} (got ${describe(at(path))})` };
    if (issue.code === 'invalid_type') return { path, message: at(path) === undefined ? `is required (${issue.expected})` : `expected ${issue.expected}, got ${describe(at(path))}` };
    if (issue.code === 'unrecognized_keys') return { path, message: issue.message };
    return { path, message: issue.message.replace(/^Invalid input: /, '') };
  };
  const { path, message } = walk(issues[0] as Issue, []);
  const param = path.map(String).join('.') || null;
  return { param, message: param ? `${param}: ${message}` : message };
}
