// Chat template rendering with a real Jinja implementation (@huggingface/jinja), as transformers'
// `apply_chat_template(tokenize=False)` does.

import { Template } from '@huggingface/jinja';
import { PHI4MM_CHAT_TEMPLATE } from './chat_template.js';
import { ENDOFTEXT_TOKEN } from './special_tokens.js';
import type { Phi4Tokenizer } from './tokenizer.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  /** Plain text; media are referenced inside it with <|image_N|> / <|audio_N|>. */
  content: string;
  /** Tool definitions (JSON text, or a value that is serialized to JSON); the Phi template renders them on a system message. */
  tools?: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant header (`<|assistant|>`); without it the Phi template appends eos. */
  addGenerationPrompt?: boolean;
  /** Jinja source; default the Phi-4-multimodal template. */
  template?: string;
  eosToken?: string;
  bosToken?: string;
  /** Further template variables (e.g. `tools`, `date_string`), as extra kwargs of apply_chat_template. */
  variables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();
const COMPILED_LIMIT = 16; // distinct templates kept parsed

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new Error(`chat template does not parse: ${(e as Error).message}`);
    }
    if (compiled.size >= COMPILED_LIMIT) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/** Renders `messages` to the prompt text. */
export function applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  if (!Array.isArray(messages)) throw new TypeError('applyChatTemplate expects an array of messages');
  const prepared = messages.map(prepareMessage);
  const template = compile(opts.template ?? PHI4MM_CHAT_TEMPLATE);
  try {
    return template.render({
      ...opts.variables,
      messages: prepared,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      eos_token: opts.eosToken ?? ENDOFTEXT_TOKEN,
      bos_token: opts.bosToken ?? ENDOFTEXT_TOKEN,
    });
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith('chat template') ? msg : `chat template failed to render: ${msg}`);
  }
}

function prepareMessage(m: ChatMessage, i: number): Record<string, unknown> {
  if (!m || typeof m !== 'object') throw new TypeError(`message ${i} must be an object with role and content`);
  if (typeof m.role !== 'string' || !m.role) throw new TypeError(`message ${i}: role must be a non-empty string`);
  if (typeof m.content !== 'string') {
    throw new TypeError(`message ${i} (${m.role}): content must be a string (reference media with <|image_N|> / <|audio_N|> in the text)`);
  }
  const out: Record<string, unknown> = { ...m };
  if (m.tools === undefined) delete out.tools;
  else if (m.tools !== null && typeof m.tools !== 'string') out.tools = JSON.stringify(m.tools);
  return out;
}

/** Renders with the tokenizer's template (the checkpoint's own, or the default) and its eos/bos strings. */
export function renderChat(tok: Phi4Tokenizer, messages: readonly ChatMessage[], opts: Omit<ChatTemplateOptions, 'template'> = {}): string {
  const full: ChatTemplateOptions = { ...opts, template: tok.chatTemplate, eosToken: opts.eosToken ?? tok.eosToken };
  const bos = opts.bosToken ?? tok.bosToken;
  if (bos !== undefined) full.bosToken = bos;
  return applyChatTemplate(messages, full);
}
