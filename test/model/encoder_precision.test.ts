// encoderPrecision 'bf16' (the encoders' activations rounded to bf16 before each bf16-weight linear) against the
// golden e_multimodal inputs_embeds, which the reference computed in f32. This is a stated trade, not an exact
// path: the test bounds it and checks that the model's greedy choice survives it.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeStats, golden, GOLDEN_DIR, goldenPath } from '../helpers/golden.js';
import { Phi4MMForCausalLM } from '../../src/models/phi4mm/model.js';
import { createBackend } from '../../src/tensor/backend.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeAudio } from '../../src/io/audio.js';
import { processImages } from '../../src/models/phi4mm/image_processor.js';
import { extractAudioFeatures } from '../../src/models/phi4mm/audio_processor.js';
import { argmax } from '../../src/text/sampling.js';
import { DeviceBatchModel } from '../../src/engine/device_model.js';
import type { ImageBatchInput } from '../../src/engine/types.js';
import { withComputePrecision } from '../../src/tensor/precision.js';

const be = await createBackend('auto');
// bf16 storage (what fromPretrained keeps for a bf16 checkpoint): only bf16 weights take the bf16 path.
const { model } = Phi4MMForCausalLM.load(join(GOLDEN_DIR, 'model_orig'), () => 'bf16');
const img = (f: string) => decodeImage(new Uint8Array(readFileSync(goldenPath('inputs', f))));
const wav = await decodeAudio(new Uint8Array(readFileSync(goldenPath('inputs', 'audio_16k_3.3s.wav'))));
const g = golden('e_multimodal');

describe('encoderPrecision bf16 on the e_multimodal fixtures', () => {
  const cases = {
    image_audio: { images: [img('image_A_320x240.png')], audios: [wav] },
    image_only: { images: [img('image_B_300x620_rgba.png')], audios: [] },
    two_images: { images: [img('image_A_320x240.png'), img('image_C_700x260.decoded.png')], audios: [] },
    audio_only: { images: [], audios: [wav] },
  };
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: media rows within 2.5e-2 of the f32 reference, same greedy token`, () => {
      model.encoderPrecision = 'bf16';
      try {
        const ids = Int32Array.from(g.tensor(`${name}.input_ids`).data);
        const emb = model.embedInputs(be, ids, c.images.length ? processImages(c.images) : null, c.audios.length ? extractAudioFeatures(c.audios) : null);
        // Measured here: max |Δ| 0.0088–0.0123 on rows up to 3.4 (a few bf16 units of the largest value: each of
        // the ~26 layers rounds its activations to 8 significant bits). f32 compute stays at ~1e-6 (model.test.ts).
        const s = closeStats(emb.embeds, g.tensor(`${name}.inputs_embeds`).data);
        expect(s.maxAbs).toBeGreaterThan(1e-4); // the bf16 path really ran
        expect(s.maxAbs).toBeLessThan(2.5e-2);
        // This random model amplifies the perturbation through its gain-3 qkv (logits move by up to ~0.6 of
        // 11); the top-1 margin survives it on all four prompts.
        const r = model.forward(be, emb.ids, { mode: emb.mode, inputsEmbeds: emb.embeds });
        expect(argmax(r.logits)).toBe(g.json[name].top2_last.top1_id);
      } finally {
        model.encoderPrecision = 'f32';
      }
    });
  }
});

describe('encoderPrecision through the engine', () => {
  it("the engine's encoders run at the model's encoderPrecision (bf16 differs from f32, equals the direct bf16 encode)", () => {
    const dm = new DeviceBatchModel(model, be);
    const p = processImages([img('image_A_320x240.png')]);
    const input: ImageBatchInput = { pixelValues: p.pixelValues, attentionMask: p.attentionMask, imageSizes: p.imageSizes, numImgTokens: p.numImgTokens };
    const f32 = dm.encodeImages(input)[0]!;
    model.encoderPrecision = 'bf16';
    try {
      const viaEngine = dm.encodeImages(input)[0]!;
      const direct = model.image_embed.encode(withComputePrecision(be, 'bf16'), p.pixelValues, p.attentionMask, p.imageSizes, p.numImgTokens)[0]!;
      expect(viaEngine).toEqual(direct);
      expect(closeStats(viaEngine, f32).maxAbs).toBeGreaterThan(1e-4);
    } finally {
      model.encoderPrecision = 'f32';
    }
  });
});
