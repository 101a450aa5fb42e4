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
    input_audio: z.object({ data: z.string().min(1), format: z.enum(['wav', 'mp3', 'flac', 'ogg', 'opus', 'webm', 'm4a', 'pcm16']).optional() }),
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
    stop: z.union([z.string(), z.array(z.string()).max(16)]).nullish(),
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
