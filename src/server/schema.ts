// Request validation for POST /v1/chat/completions (OpenAI's shape plus the sampling extras mistral.rs
// accepts: top_k, min_p, repetition_penalty). Unknown fields are ignored, as OpenAI clients send many.
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

export const messageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant', 'developer']),
  content: z.union([z.string(), z.array(contentPartSchema).min(1)]).nullable(),
  name: z.string().optional(),
});

export const chatRequestSchema = z
  .object({
    model: z.string().min(1),
    messages: z.array(messageSchema).min(1),
    max_tokens: z.number().int().min(1).nullish(),
    max_completion_tokens: z.number().int().min(1).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.number().int().min(0).nullish(),
    min_p: z.number().min(0).max(1).nullish(),
    frequency_penalty: z.number().min(-2).max(2).nullish(),
    presence_penalty: z.number().min(-2).max(2).nullish(),
    repetition_penalty: z.number().gt(0).nullish(),
    stop: z.union([z.string().min(1, 'stop strings must not be empty'), z.array(z.string().min(1, 'stop strings must not be empty')).max(16)]).nullish(),
    seed: z.number().int().nullish(),
    n: z.number().int().nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
    user: z.string().nullish(),
    tools: z.array(z.unknown()).nullish(),
    logprobs: z.boolean().nullish(),
  })
  .superRefine((r, ctx) => {
    if (r.n != null && r.n !== 1) ctx.addIssue({ code: 'custom', path: ['n'], message: `only n=1 is supported (got ${r.n}); send several requests instead` });
    if (r.tools && r.tools.length) ctx.addIssue({ code: 'custom', path: ['tools'], message: 'tool calling is not supported by this server' });
    if (r.logprobs) ctx.addIssue({ code: 'custom', path: ['logprobs'], message: 'logprobs are not supported by this server' });
  });

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ContentPartIn = z.infer<typeof contentPartSchema>;

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
