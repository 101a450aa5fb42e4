// From chat messages with media parts to the template input: text with <|image_N|>/<|audio_N|> tags, and the
// media in the order the tags bind to them. Tags are inserted for the user when a message has media but no
// tags (as mistral.rs does); when the user wrote tags, their count must match the attached media.
import type { AudioInput, ChatMessage, ImageInput } from './types.js';
import { PromptError } from '../models/phi4mm/multimodal.js';

export interface PreparedPrompt {
  messages: Array<{ role: string; content: string; tools?: string }>;
  images: ImageInput[];
  audios: AudioInput[];
}

const IMAGE_TAG = /<\|image_\d+\|>/g;
const AUDIO_TAG = /<\|audio_\d+\|>/g;

export function preparePrompt(messages: ChatMessage[]): PreparedPrompt {
  if (!Array.isArray(messages) || messages.length === 0) throw new PromptError('messages must be a non-empty array');
  const images: ImageInput[] = [], audios: AudioInput[] = [];
  const out = messages.map((m, i) => {
    if (!m || !['system', 'user', 'assistant', 'tool'].includes(m.role)) throw new PromptError(`messages[${i}].role must be system, user, assistant or tool (got ${JSON.stringify(m?.role)})`);
    if (m.tools !== undefined && (m.role !== 'system' || typeof m.tools !== 'string')) throw new PromptError(`messages[${i}].tools: only a system message carries tools, as a JSON string`);
    const tools = m.tools !== undefined ? { tools: m.tools } : {};
    if (typeof m.content === 'string') {
      if (m.content.match(IMAGE_TAG) || m.content.match(AUDIO_TAG)) throw new PromptError(`messages[${i}] has <|image_N|>/<|audio_N|> tags but no attached media; pass the media as content parts`);
      return { role: m.role, content: m.content, ...tools };
    }
    if (!Array.isArray(m.content)) throw new PromptError(`messages[${i}].content must be a string or an array of parts`);
    let text = '';
    const mi: ImageInput[] = [], ma: AudioInput[] = [];
    for (const p of m.content) {
      if (p.type === 'text') text += (text && p.text ? ' ' : '') + p.text;
      else if (p.type === 'image') mi.push(p.image);
      else if (p.type === 'audio') ma.push(p.audio);
      else throw new PromptError(`messages[${i}] has a part of unknown type ${JSON.stringify((p as { type?: unknown }).type)}`);
    }
    if (m.role !== 'user' && (mi.length || ma.length)) throw new PromptError(`messages[${i}]: only user messages can carry images or audio`);
    const nImgTags = text.match(IMAGE_TAG)?.length ?? 0, nAudTags = text.match(AUDIO_TAG)?.length ?? 0;
    let prefix = '';
    if (nImgTags === 0) prefix += mi.map((_, k) => `<|image_${images.length + k + 1}|>`).join('');
    else if (nImgTags !== mi.length) throw new PromptError(`messages[${i}] has ${nImgTags} <|image_N|> tags but ${mi.length} images`);
    if (nAudTags === 0) prefix += ma.map((_, k) => `<|audio_${audios.length + k + 1}|>`).join('');
    else if (nAudTags !== ma.length) throw new PromptError(`messages[${i}] has ${nAudTags} <|audio_N|> tags but ${ma.length} audios`);
    images.push(...mi);
    audios.push(...ma);
    return { role: m.role, content: prefix + text, ...tools };
  });
  return { messages: out, images, audios };
}
