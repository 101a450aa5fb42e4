// Routing and embedding merge of the multimodal model (original remote code, golden README §8–§9):
// the processor's input mode picks the LoRA adapter and the audio projection, and image/audio features
// replace the placeholder rows of the token embeddings in textual order.
import { AUDIO_TOKEN_ID, IMAGE_TOKEN_ID } from '../../text/special_tokens.js';

export type InputMode = 'language' | 'vision' | 'speech' | 'vision_speech';

export function inputModeOf(nImages: number, nAudios: number): InputMode {
  if (nImages > 0 && nAudios > 0) return 'vision_speech';
  if (nImages > 0) return 'vision';
  if (nAudios > 0) return 'speech';
  return 'language';
}

/** LANGUAGE → no adapter; VISION and VISION_SPEECH → vision; SPEECH → speech. */
export function loraAdapterFor(mode: InputMode): 'vision' | 'speech' | null {
  return mode === 'language' ? null : mode === 'speech' ? 'speech' : 'vision';
}

/** The audio projection pair: 'vision' when the request also has an image, else 'speech'. */
export function audioProjectionFor(mode: InputMode): 'vision' | 'speech' {
  return mode === 'vision_speech' ? 'vision' : 'speech';
}

export class PromptError extends Error {
  override name = 'PromptError';
}

/**
 * Replace the rows of `embeds` ([T, hidden], modified in place) at the image (200010) and audio (200011)
 * placeholder positions with the media features, each list consumed in order.
 */
export function mergeMediaEmbeddings(embeds: Float32Array, ids: ArrayLike<number>, hidden: number, images: Float32Array[], audios: Float32Array[]): Float32Array {
  for (const [id, feats, what] of [[IMAGE_TOKEN_ID, images, 'image'], [AUDIO_TOKEN_ID, audios, 'audio']] as const) {
    const flat = concatFeatures(feats, hidden, what);
    let row = 0;
    for (let t = 0; t < ids.length; t++) {
      if (ids[t] !== id) continue;
      if ((row + 1) * hidden > flat.length) throw new PromptError(`the prompt has more ${what} placeholder tokens than ${what} features (${flat.length / hidden})`);
      embeds.set(flat.subarray(row * hidden, (row + 1) * hidden), t * hidden);
      row++;
    }
    if (row * hidden !== flat.length) throw new PromptError(`${flat.length / hidden} ${what} feature rows but ${row} ${what} placeholder tokens in the prompt`);
  }
  return embeds;
}

function concatFeatures(parts: Float32Array[], hidden: number, what: string): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const p of parts) {
    if (p.length % hidden !== 0) throw new PromptError(`${what} features of length ${p.length} are not rows of ${hidden}`);
    out.set(p, o);
    o += p.length;
  }
  return out;
}
