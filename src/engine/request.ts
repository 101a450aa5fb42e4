// Main-thread side of a request: processed media → media groups with content keys (the media cache and the
// prefix cache key on them), so resending the same image or audio costs no encoder time and reuses its KV.
import type { ProcessedImages, ImageProcessorConfig } from '../models/phi4mm/image_processor.js';
import type { AudioFeatures } from '../models/phi4mm/audio_processor.js';
import { audioProjectionFor, type InputMode } from '../models/phi4mm/multimodal.js';
import { contentKey } from './media_cache.js';
import type { MediaGroup } from './types.js';

/** Bumped when the image or audio processing changes in a way that changes the features. */
const PROCESSOR_VERSION = 1;

export function mediaGroups(pi: ProcessedImages | null, af: AudioFeatures | null, mode: InputMode, imageCfg: ImageProcessorConfig): MediaGroup[] {
  const groups: MediaGroup[] = [];
  if (pi && pi.numImgTokens.length) {
    const n = pi.numImgTokens.length, per = pi.pixelValues.length / n, mPer = pi.attentionMask.length / n;
    const settings = JSON.stringify({ v: PROCESSOR_VERSION, ...imageCfg, maxCrops: pi.maxCrops });
    const items = pi.numImgTokens.map((rows, i) => ({
      kind: 'image' as const, rows,
      key: contentKey('image', settings, pi.pixelValues.subarray(i * per, (i + 1) * per), pi.attentionMask.subarray(i * mPer, (i + 1) * mPer), pi.imageSizes[i]!.join('x'), rows),
    }));
    groups.push({
      kind: 'image', key: contentKey('images', ...items.map((it) => it.key)), items,
      image: { pixelValues: pi.pixelValues, attentionMask: pi.attentionMask, imageSizes: pi.imageSizes, numImgTokens: pi.numImgTokens },
    });
  }
  if (af && af.frames.length) {
    const projection = audioProjectionFor(mode), per = af.features.length / af.frames.length;
    // All clips of a prompt are encoded in one call (the reference builds one batch mask), so a clip's
    // features are keyed together with its companions.
    const group = contentKey('audios', PROCESSOR_VERSION, projection, af.features, af.frames.join(','));
    const items = af.embedSizes.map((rows, i) => ({ kind: 'audio' as const, rows, key: contentKey(group, i, af.features.subarray(i * per, (i + 1) * per)) }));
    groups.push({ kind: 'audio', key: group, items, audio: { features: af.features, frames: af.frames }, projection });
  }
  return groups;
}

/** Buffers a request's media can hand over to the worker without copying. */
export function transferables(groups: readonly MediaGroup[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const g of groups) {
    for (const a of [g.image?.pixelValues, g.image?.attentionMask, g.audio?.features]) if (a && a.buffer instanceof ArrayBuffer) out.add(a.buffer);
  }
  return [...out];
}
