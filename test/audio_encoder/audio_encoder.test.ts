// Golden tests of the conformer audio encoder + projections against transformers v4.51.3 outputs of the tiny
// random model. Inputs are the golden log-mel features (d_audio_features / h_audio_long), so these tests do
// not depend on the audio front end.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsCheckpoint } from '../../src/io/safetensors.js';
import { checkpointProvider, memoryProvider, StrictWeights, WeightLoadError, type StoragePolicy } from '../../src/nn/weights.js';
import { ReferenceBackend } from '../../src/tensor/reference.js';
import { AUDIO_EMBED_PREFIX, Phi4MMAudioEmbedding, streamingMask, type AudioConfig, type AudioEncoderTrace } from '../../src/models/phi4mm/audio_encoder.js';
import { expectClose, golden, goldenPath } from '../helpers/golden.js';

// README §10: the f32 encoder differs from float64 by ≤ 2.8e-6 on values up to ~3.3 (projections ≤ 9e-7),
// so 1e-4 absolute + 1e-4 relative catches any real numeric mistake with a wide margin for summation order.
const TOL = { atol: 1e-4, rtol: 1e-4 };

const be = new ReferenceBackend();
let cfg: AudioConfig;
let lmHidden: number;
let model: Phi4MMAudioEmbedding;

function load(policy?: StoragePolicy): Phi4MMAudioEmbedding {
  const ws = new StrictWeights(checkpointProvider(SafetensorsCheckpoint.open(goldenPath('model_orig')), 'model_orig'), policy);
  ws.ignore((n) => !n.startsWith(`${AUDIO_EMBED_PREFIX}.`));
  const m = new Phi4MMAudioEmbedding(ws, cfg, lmHidden);
  ws.finish(); // nothing under audio_embed missing, mis-shaped or unused
  return m;
}

const features = (fixture: string, key: string) => golden(fixture).tensor(key);
const sizes = (fixture: string, key: string) => Array.from(golden(fixture).tensor(key).data);

beforeAll(() => {
  const hf = JSON.parse(readFileSync(goldenPath('model_hf', 'config.json'), 'utf8'));
  cfg = hf.audio_config;
  lmHidden = hf.hidden_size;
  model = load();
});

describe('audio encoder: single 16 kHz clip (d_audio_encoder.wave16)', () => {
  const d = () => golden('d_audio_encoder');
  let trace: AudioEncoderTrace;
  let speech: Float32Array[];

  beforeAll(() => {
    const f = features('d_audio_features', 'wave16.audio_input_features');
    trace = {};
    speech = model.encode(be, f.data, [f.shape[1]!], 'speech', trace);
  });

  it('global CMVN', () => expectClose(trace.afterGlobalCmvn!, d().tensor('wave16.after_global_cmvn').data, TOL, 'after_global_cmvn'));
  it('NeMo conv subsampling', () => expectClose(trace.afterConvSubsampling!, d().tensor('wave16.after_conv_subsampling').data, TOL, 'after_conv_subsampling'));
  it('relative attention bias', () => expectClose(trace.relativeAttentionBias!, d().tensor('wave16.relative_attention_bias').data, { atol: 0 }, 'relative_attention_bias')); // a table lookup: exact
  it('encoder_out', () => expectClose(trace.encoderOut!, d().tensor('wave16.encoder_out').data, TOL, 'encoder_out'));

  it('speech projection, one [ceil(frames/8), lmHidden] block', () => {
    const want = d().tensor('wave16.projected_speech');
    expect(speech.length).toBe(1);
    expect(speech[0]!.length).toBe(sizes('d_audio_features', 'wave16.audio_embed_sizes')[0]! * lmHidden);
    expectClose(speech[0]!, want.data, TOL, 'projected_speech');
  });

  it('vision projection differs from speech and matches its golden', () => {
    const f = features('d_audio_features', 'wave16.audio_input_features');
    const vision = model.encode(be, f.data, [f.shape[1]!], 'vision');
    expectClose(vision[0]!, d().tensor('wave16.projected_vision').data, TOL, 'projected_vision');
    expect(() => expectClose(vision[0]!, speech[0]!, TOL)).toThrow();
  });
});

describe('audio encoder: batches and long inputs', () => {
  it('batch of 2 (41 + 25 tokens) reproduces the +1/0 mask quirk', () => {
    const f = features('d_audio_features', 'batch.audio_input_features');
    const mask = golden('d_audio_features').tensor('batch.audio_attention_mask');
    const tMax = f.shape[1]!;
    const frames = [0, 1].map((b) => mask.data.subarray(b * tMax, (b + 1) * tMax).reduce((a, v) => a + v, 0));
    const trace: AudioEncoderTrace = {};
    const out = model.encode(be, f.data, frames, 'speech', trace);
    expectClose(trace.encoderOut!, golden('d_audio_encoder').tensor('batch.encoder_out').data, TOL, 'batch.encoder_out');
    const embed = sizes('d_audio_features', 'batch.audio_embed_sizes');
    expect(out.map((o) => o.length / lmHidden)).toEqual(embed);
    const merged = new Float32Array(out[0]!.length + out[1]!.length);
    merged.set(out[0]!);
    merged.set(out[1]!, out[0]!.length);
    expectClose(merged, golden('d_audio_encoder').tensor('batch.projected_speech').data, TOL, 'batch.projected_speech');

    // The short clip alone differs from its batch row by ~1 (the padding is attended to in the batch).
    const alone = model.encode(be, f.data.subarray(tMax * cfg.input_size, (tMax + frames[1]!) * cfg.input_size), [frames[1]!], 'speech');
    let diff = 0;
    for (let i = 0; i < alone[0]!.length; i++) diff = Math.max(diff, Math.abs(alone[0]![i]! - out[1]![i]!));
    expect(diff).toBeGreaterThan(0.01);
  });

  it('44.1 kHz clip resampled 160/441', () => {
    const f = features('d_audio_features', 'wave44.resampled_160_441.audio_input_features');
    const trace: AudioEncoderTrace = {};
    model.encode(be, f.data, [f.shape[1]!], 'speech', trace);
    expectClose(trace.encoderOut!, golden('d_audio_encoder').tensor('wave44.resampled_160_441.encoder_out').data, TOL, 'wave44 encoder_out');
  });

  it('42 s clip: 525 frames unfolded into two 500-frame chunks (h_audio_long)', () => {
    const h = golden('h_audio_long');
    const f = h.tensor('audio_input_features');
    const trace: AudioEncoderTrace = {};
    const out = model.encode(be, f.data, [f.shape[1]!], 'speech', trace);
    expect(trace.relativeAttentionBias!.length).toBe(cfg.num_attention_heads * 500 * 500); // blocks ran at chunk length
    expectClose(trace.encoderOut!, h.tensor('encoder_out').data, TOL, 'h_audio_long encoder_out');
    expect(out[0]!.length / lmHidden).toBe(h.tensor('audio_embed_sizes').data[0]);
    expectClose(out[0]!, h.tensor('projected_speech').data, TOL, 'h_audio_long projected_speech');
  });
});

describe('audio encoder: config, weights and bad input', () => {
  it('chunk_size −1 means full attention; positive chunks see left_chunk chunks back', () => {
    expect(streamingMask(10, -1, 18)).toBeNull();
    const m = streamingMask(6, 2, 1)!;
    const row = (i: number) => Array.from(m.subarray(i * 6, i * 6 + 6));
    expect(row(0)).toEqual([1, 1, 0, 0, 0, 0]);
    expect(row(3)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(row(5)).toEqual([0, 0, 1, 1, 1, 1]);
    expect(() => streamingMask(6, 0, 1)).toThrow(/chunk_size/);
  });

  it('rejects empty input, bad frame counts and a wrong feature width', () => {
    const f = features('d_audio_features', 'wave16.audio_input_features');
    const t = f.shape[1]!;
    expect(() => model.encode(be, f.data, [], 'speech')).toThrow(/no clips/);
    expect(() => model.encode(be, new Float32Array(0), [0], 'speech')).toThrow(/at least 1/);
    expect(() => model.encode(be, new Float32Array(t * 128), [t], 'speech')).toThrow(/128 per frame/);
    expect(() => model.encode(be, f.data, [t], 'other' as 'speech')).toThrow(/projection/);
  });

  it('reports a checkpoint that lacks an audio tensor', () => {
    const ck = SafetensorsCheckpoint.open(goldenPath('model_orig'));
    const drop = `${AUDIO_EMBED_PREFIX}.encoder.encoders.1.conv.glu.b2`;
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const n of ck.names()) if (n.startsWith(AUDIO_EMBED_PREFIX) && n !== drop) tensors[n] = { shape: ck.info(n).shape.slice(), data: ck.readF32(n) };
    const ws = new StrictWeights(memoryProvider(tensors));
    new Phi4MMAudioEmbedding(ws, cfg, lmHidden);
    expect(() => ws.finish()).toThrow(WeightLoadError);
    expect(() => ws.finish()).toThrow(/glu\.b2/);
  });

  it('weights kept as bf16 (the checkpoint dtype, so the same values) give the same encoder output', () => {
    const bf16 = load(() => 'bf16');
    expect(bf16.encoder.embed.stages[0]!.pw.dtype).toBe('bf16'); // [C, C, 1, 1] conv weight viewed as a [C, C] GEMM operand
    expect(bf16.encoder.encoders[0]!.conv.glu.extPwConv1d.weight.dtype).toBe('bf16');
    const f = features('d_audio_features', 'wave16.audio_input_features');
    const trace: AudioEncoderTrace = {};
    bf16.encode(be, f.data, [f.shape[1]!], 'speech', trace);
    expectClose(trace.encoderOut!, golden('d_audio_encoder').tensor('wave16.encoder_out').data, TOL, 'bf16 encoder_out');
  });

  it('rejects an inconsistent config', () => {
    const ws = new StrictWeights(memoryProvider({}));
    expect(() => new Phi4MMAudioEmbedding(ws, { ...cfg, num_attention_heads: 3 }, lmHidden)).toThrow(/divisible/);
    expect(() => new Phi4MMAudioEmbedding(ws, { ...cfg, time_reduction: 6 }, lmHidden)).toThrow(/power of two/);
  });
});
