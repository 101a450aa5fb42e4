// Request shape of POST /v1/responses (the Responses API) for text, image and audio input, function tools and
// text.format. Fields that ask for server-side state or hosted tools are refused by name.
import { z } from 'zod';
import { metadataSchema } from './schema.js';

const inputContent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input_text'), text: z.string() }),
  z.object({ type: z.literal('output_text'), text: z.string() }).passthrough(),
  z.object({ type: z.literal('input_image'), image_url: z.string().min(1).nullish(), file_id: z.string().nullish(), detail: z.string().optional() }),
  z.object({ type: z.literal('input_audio'), input_audio: z.object({ data: z.string().min(1), format: z.enum(['wav', 'mp3', 'flac', 'ogg', 'opus']).optional() }) }),
  z.object({ type: z.literal('input_file') }).passthrough(),
  z.object({ type: z.literal('refusal'), refusal: z.string() }),
]);

const messageItem = z.object({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'system', 'developer', 'assistant']),
  content: z.union([z.string(), z.array(inputContent)]),
  id: z.string().optional(), status: z.string().optional(),
});
const callItem = z.object({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string(), id: z.string().optional(), status: z.string().optional() });
const callOutputItem = z.object({ type: z.literal('function_call_output'), call_id: z.string().min(1), output: z.union([z.string(), z.array(z.object({ type: z.literal('input_text'), text: z.string() }))]), id: z.string().optional(), status: z.string().optional() });

export const responseInputItem = z.union([messageItem, callItem, callOutputItem]);

export const responseToolSchema = z.object({
  type: z.literal('function'),
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'function names are 1-64 of a-z, A-Z, 0-9, _ and -'),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const formatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({ type: z.literal('json_schema'), name: z.string().min(1).max(64), schema: z.record(z.string(), z.unknown()), description: z.string().optional(), strict: z.boolean().nullish() }),
]);

export const responsesRequestSchema = z.object({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(responseInputItem).min(1)]),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  tools: z.array(responseToolSchema).max(128).nullish(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.object({ format: formatSchema.optional(), verbosity: z.enum(['medium']).nullish() }).nullish(),
  metadata: metadataSchema.nullish(),
  user: z.string().max(256).nullish(),
  store: z.boolean().nullish(),
  truncation: z.enum(['disabled']).nullish(),
});

/** Set to something other than off/empty, these ask for what this server does not do. */
export const RESPONSES_UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  previous_response_id: (v) => v != null, conversation: (v) => v != null, background: (v) => v === true,
  reasoning: (v) => v != null && typeof v === 'object' && Object.values(v as object).some((x) => x != null),
  prompt: (v) => v != null, include: (v) => Array.isArray(v) && v.length > 0, store: (v) => v === true,
};

export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
export type ResponseInputItem = z.infer<typeof responseInputItem>;
