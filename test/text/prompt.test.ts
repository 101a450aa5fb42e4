import { describe, expect, it } from 'vitest';
import { applyChatTemplate } from '../../src/text/chat.js';
import { buildInputIds, checkMediaTagNumbering, expandMediaPlaceholders, insertMediaTags, padBatchLeft, rewriteMediaTags } from '../../src/text/prompt.js';
import { AUDIO_TOKEN_ID, IMAGE_TOKEN_ID } from '../../src/text/special_tokens.js';
import { Phi4Tokenizer } from '../../src/text/tokenizer.js';
import { golden, specJson } from '../helpers/golden.js';

const tok = Phi4Tokenizer.offline();
const ids = specJson('tokenizer_golden_ids.json');

/** ids with the k-th placeholder of `id` replaced by counts[k] copies (the expected expansion, built from fixture data). */
function expandRef(before: number[], id: number, counts: number[]): number[] {
  let k = 0;
  return before.flatMap((x) => (x === id ? new Array<number>(counts[k++]!).fill(id) : [x]));
}

describe('media placeholders (SPEC §2.2)', () => {
  it('rewrites <|image_N|>/<|audio_N|> to the placeholder tokens and ignores N', () => {
    expect(rewriteMediaTags('<|user|><|image_7|><|audio_12|>x<|image_1|>')).toBe('<|user|><|endoftext10|><|endoftext11|>x<|endoftext10|>');
    const before = ids.vision_speech_before_expansion;
    expect(Array.from(buildInputIds(tok, '<|user|><|image_2|><|audio_9|><|end|><|assistant|>', [1], [1]))).toEqual(before.ids);
  });

  it('expands an image prompt to the spec token count (1200×800 image, dynamic_hd 36)', () => {
    const row = specJson('image_token_examples.json').rows.find((r: any) => r.width === 1200 && r.height === 800 && r.dynamic_hd === 36);
    const before = ids.image_prompt_before_expansion;
    const prompt = before.text.replace('<|endoftext10|>', '<|image_1|>');
    const out = buildInputIds(tok, prompt, [row.num_img_tokens], []);
    expect(Array.from(out)).toEqual(expandRef(before.ids, IMAGE_TOKEN_ID, [row.num_img_tokens]));
    expect(out.length).toBe(before.ids.length - 1 + row.num_img_tokens);
  });

  it('expands an audio prompt to the spec token count (3.3 s at 16 kHz)', () => {
    const row = specJson('audio_token_examples.json').rows.find((r: any) => r.case === '3.3s@16k');
    const before = ids.audio_prompt_before_expansion;
    const prompt = before.text.replace('<|endoftext11|>', '<|audio_1|>');
    expect(Array.from(buildInputIds(tok, prompt, [], [row.audio_embed_size]))).toEqual(expandRef(before.ids, AUDIO_TOKEN_ID, [row.audio_embed_size]));
  });

  // Token counts come from the processor fixtures named in e_multimodal.json "inputs": images A, B, C are
  // b_image_processor batch indices 0, 1, 2; the audio is d_audio_features wave16.
  const imageTokens = Array.from(golden('b_image_processor').tensor('num_img_tokens').data);
  const audioTokens = Array.from(golden('d_audio_features').tensor('wave16.audio_embed_sizes').data);
  const cases: [string, number[], number[]][] = [
    ['image_audio', [imageTokens[0]!], audioTokens],
    ['image_only', [imageTokens[1]!], []],
    ['two_images', [imageTokens[0]!, imageTokens[2]!], []],
    ['audio_only', [], audioTokens],
  ];
  it.each(cases)('reproduces e_multimodal %s input_ids from its prompt and the processor token counts', (name, images, audios) => {
    const expected = Array.from(golden('e_multimodal').tensor(`${name}.input_ids`).data);
    // The fixture stores ids, not the prompt: rebuild the user text by decoding the non-media runs and putting a tag
    // where each placeholder run stands.
    const content = promptFromIds(expected);
    const prompt = applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true });
    expect(Array.from(buildInputIds(tok, prompt, images, audios, { strictNumbering: true }))).toEqual(expected);
  });

  it('errors when placeholder and media counts differ, or counts are invalid', () => {
    expect(() => buildInputIds(tok, '<|user|><|image_1|>x', [], [])).toThrow(/1 image placeholder.*0 image/);
    expect(() => buildInputIds(tok, '<|user|>x', [10], [])).toThrow(/0 image placeholder.*1 image/);
    expect(() => buildInputIds(tok, '<|user|><|audio_1|><|audio_2|>', [], [5])).toThrow(/2 audio placeholder/);
    // A literal placeholder token in the text counts like a tag (the reference cannot tell them apart).
    expect(() => buildInputIds(tok, '<|user|><|image_1|><|endoftext10|>', [3], [])).toThrow(/2 image placeholder/);
    expect(() => expandMediaPlaceholders([IMAGE_TOKEN_ID], [0], [])).toThrow(/positive integer/);
    expect(() => expandMediaPlaceholders([IMAGE_TOKEN_ID], [2.5], [])).toThrow(/positive integer/);
  });

  it('strict numbering requires 1..K in order per kind', () => {
    expect(() => checkMediaTagNumbering('<|image_1|><|image_2|><|audio_1|>')).not.toThrow();
    expect(() => checkMediaTagNumbering('<|image_2|><|image_1|>')).toThrow(/numbered 1\.\.2/);
    expect(() => checkMediaTagNumbering('<|audio_1|><|audio_1|>')).toThrow(/audio_1/);
  });
});

describe('padBatchLeft', () => {
  it('left-pads with pad_token_id and masks the padding', () => {
    const pad = specJson('special_tokens.json').generation_config.pad_token_id;
    const b = padBatchLeft([[1, 2, 3], [4]]);
    expect(b.seqLen).toBe(3);
    expect(Array.from(b.inputIds)).toEqual([1, 2, 3, pad, pad, 4]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 0, 0, 1]);
    expect(() => padBatchLeft([])).toThrow(/at least one/);
  });
});

describe('insertMediaTags', () => {
  it('prepends image then audio tags when a message has media but no tags', () => {
    expect(insertMediaTags('Describe.', { images: 2, audios: 1 })).toBe('<|image_1|><|image_2|><|audio_1|>Describe.');
    expect(insertMediaTags('Q', { images: 1, firstImage: 3 })).toBe('<|image_3|>Q');
    expect(insertMediaTags('Q', {})).toBe('Q');
  });

  it('keeps existing tags of a kind and checks they match the media count', () => {
    expect(insertMediaTags('A <|image_1|> B', { images: 1, audios: 1 })).toBe('<|audio_1|>A <|image_1|> B');
    expect(() => insertMediaTags('<|image_1|>', { images: 2 })).toThrow(/1 <\|image_N\|> tag.*2 image/);
    expect(() => insertMediaTags('x', { images: -1 })).toThrow(/non-negative integer/);
  });
});

/** User text of a fixture prompt: decoded text between the chat tokens, a tag per placeholder run. */
function promptFromIds(all: number[]): string {
  const body = all.slice(1, -2); // drop <|user|> … <|end|><|assistant|>
  let text = '', pending: number[] = [], nImage = 0, nAudio = 0;
  for (let i = 0; i < body.length; i++) {
    const id = body[i]!;
    if (id !== IMAGE_TOKEN_ID && id !== AUDIO_TOKEN_ID) { pending.push(id); continue; }
    if (body[i - 1] === id) continue; // inside a run
    text += tok.decode(pending) + (id === IMAGE_TOKEN_ID ? `<|image_${++nImage}|>` : `<|audio_${++nAudio}|>`);
    pending = [];
  }
  return text + tok.decode(pending);
}
