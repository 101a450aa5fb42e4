// The pre-quantized save format: a checkpoint folder in the original layout whose quantized tensors are stored
// as U8 block bytes (ggml-compatible Q4_K/Q8_0 rows), described by the safetensors metadata key `phi4mm.quant`
// ({name: {dtype, shape}}). It loads through the same path as any checkpoint, without re-quantizing.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type StWriteTensor } from '../io/safetensors.js';
import { isQuantDType } from '../tensor/dtype.js';
import { isColumnMajor, type Tensor } from '../tensor/tensor.js';
import type { Phi4MMConfig } from '../models/phi4mm/config.js';
import { QUANT_METADATA_KEY } from '../models/phi4mm/checkpoint.js';
import type { LoadedModel } from './load.js';

const SIDE_FILES = ['generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt'];

/**
 * Saves a loaded model as it is held: the deferred encoders and adapters are read (and quantized) first, so the
 * folder is whole, and the backend's own conversion back to ggml rows is used where it has one. Called on the
 * thread that holds the model (Phi4MM.saveQuantized on the inline host, the engine worker on the worker host).
 */
export function saveLoadedModel(loaded: LoadedModel, srcDir: string, outDir: string): void {
  loaded.model.loadAll();
  const native = loaded.backend as { rowMajorOf?: (t: Tensor) => Tensor };
  saveQuantizedCheckpoint(srcDir, outDir, loaded.model.config, loaded.tensors, loaded.report.isq, native.rowMajorOf ? (t) => native.rowMajorOf!(t) : undefined);
}

/** `rowMajor` turns an x16 tensor back into ggml rows and a column-major one (placed LoRA factors) into rows
 * (default: the plain TypeScript conversions; the native backend's x16 one runs on its thread pool and took half
 * the time on one thread, 100 against 170 ms for 28 MB). */
export function saveQuantizedCheckpoint(srcDir: string, outDir: string, config: Phi4MMConfig, tensors: Map<string, Tensor>, isq: string,
  rowMajor: (t: Tensor) => Tensor = (t) => (isQuantDType(t.dtype) ? t.rowMajor() : t.contiguous())): void {
  if (existsSync(join(outDir, 'model.safetensors'))) throw new Error(`${outDir} already holds a model.safetensors; choose an empty folder`);
  mkdirSync(outDir, { recursive: true });
  const quant: Record<string, { dtype: string; shape: number[] }> = {};
  const entries: StWriteTensor[] = [];
  for (const [name, loaded] of [...tensors.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const t = isQuantDType(loaded.dtype) || isColumnMajor(loaded) ? rowMajor(loaded) : loaded; // disk holds rows, never x16
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (isQuantDType(t.dtype)) {
      quant[name] = { dtype: t.dtype, shape: [...t.shape] };
      entries.push({ name, dtype: 'U8', shape: [bytes.length], data: bytes });
    } else if (t.dtype === 'bf16' || t.dtype === 'f32' || t.dtype === 'f16') {
      const c = t.contiguous();
      const cb = new Uint8Array(c.data.buffer, c.data.byteOffset, c.size * (t.dtype === 'f32' ? 4 : 2));
      entries.push({ name, dtype: t.dtype === 'f32' ? 'F32' : t.dtype === 'bf16' ? 'BF16' : 'F16', shape: [...t.shape], data: cb });
    } else {
      throw new Error(`cannot save tensor ${name} of dtype ${t.dtype}`);
    }
  }
  writeSafetensors(join(outDir, 'model.safetensors'), entries, { format: 'pt', [QUANT_METADATA_KEY]: JSON.stringify(quant), 'phi4mm.isq': isq });
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(origLayoutConfig(srcDir, config), null, 2));
  for (const f of SIDE_FILES) if (existsSync(join(srcDir, f))) copyFileSync(join(srcDir, f), join(outDir, f));
}

/** The saved folder is always in the original layout (tensor names are canonical); its config says so. */
function origLayoutConfig(srcDir: string, c: Phi4MMConfig): Record<string, unknown> {
  if (c.layout === 'orig') return JSON.parse(readFileSync(join(srcDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const a = c.audio_config;
  return {
    model_type: 'phi4mm', architectures: ['Phi4MMForCausalLM'], ...c.text, eos_token_id: c.eos_token_id,
    vision_config: c.vision_config,
    audio_processor: {
      name: 'cascades',
      config: {
        attention_dim: a.hidden_size, attention_heads: a.num_attention_heads, linear_units: a.intermediate_size, num_blocks: a.num_blocks,
        input_size: a.input_size, time_reduction: a.time_reduction, kernel_size: a.kernel_size, ext_pw_out_channel: a.ext_pw_out_channel,
        depthwise_seperable_out_channel: a.depthwise_seperable_out_channel, depthwise_multiplier: a.depthwise_multiplier,
        chunk_size: a.chunk_size, left_chunk: a.left_chunk, nemo_conv_settings: { conv_channels: a.nemo_conv_channels },
        relative_attention_bias_args: { type: 't5', t5_bias_max_distance: a.bias_max_distance, t5_bias_symmetric: a.bias_symmetric },
      },
    },
    ...(c.vision_lora ? { vision_lora: c.vision_lora } : {}),
    ...(c.speech_lora ? { speech_lora: c.speech_lora } : {}),
  };
}
