// A small builder for chat messages with media, in the spirit of mistral.rs's `VisionMessages`:
//   new Messages().addImageMessage('user', 'What is shown?', ['photo.jpg']).addMessage('assistant', '...')
import type { AudioInput, ChatMessage, ContentPart, ImageInput, Role } from './types.js';

export class Messages {
  readonly messages: ChatMessage[] = [];

  addMessage(role: Role, text: string): this {
    this.messages.push({ role, content: text });
    return this;
  }

  addImageMessage(role: Role, text: string, images: ImageInput[]): this {
    return this.addMultimodalMessage(role, text, { images });
  }

  addAudioMessage(role: Role, text: string, audios: AudioInput[]): this {
    return this.addMultimodalMessage(role, text, { audios });
  }

  /** Media parts come first, then the text, as the model card's prompts do (`<|image_1|><|audio_1|>text`). */
  addMultimodalMessage(role: Role, text: string, media: { images?: ImageInput[]; audios?: AudioInput[] }): this {
    const parts: ContentPart[] = [
      ...(media.images ?? []).map((image): ContentPart => ({ type: 'image', image })),
      ...(media.audios ?? []).map((audio): ContentPart => ({ type: 'audio', audio })),
      { type: 'text', text },
    ];
    this.messages.push({ role, content: parts });
    return this;
  }

  clear(): this {
    this.messages.length = 0;
    return this;
  }
}

export function toMessageList(m: Messages | ChatMessage[]): ChatMessage[] {
  return m instanceof Messages ? m.messages : m;
}
