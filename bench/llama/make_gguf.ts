// Writes a GGUF of a phi4mm checkpoint's language model for llama.cpp's phi3 loader, in phi4mm's own format:
// every LM linear Q4_K (the fused qkv_proj and gate_up_proj as attn_qkv / ffn_up, which is how llama.cpp's
// phi3 expects them), the tied embedding Q8_0, norms and LongRoPE factors F32. From a pre-quantized q4k folder
// (`phi4mm quantize --isq q4k`) the block bytes are copied as they are, so both runtimes multiply by the very
// same weights; from a bf16 folder they are quantized here with the native ISQ (the same bytes again).
// No tokenizer: tokenizer.ggml.model = "none" with phi3.vocab_size dummy tokens (llama-bench draws random ids).
//
//   npx tsx bench/llama/make_gguf.ts --model /work/ckpt/phi4mm-q4k --out /tmp/phi4mm-q4k.gguf
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../../src/models/phi4mm/checkpoint.js';
import { rotaryDim } from '../../src/models/phi4mm/config.js';
import { NativeBackend } from '../../src/tensor/native.js';
import { writeGguf, type GgufTensor, type GgmlType } from './gguf.js';

export function makeGguf(modelDir: string, out: string, log: (s: string) => void = console.log): number {
  const { config, provider } = openCheckpoint(modelDir);
  const t = config.text;
  let native: NativeBackend | null = null;
  const rot = rotaryDim(t);
  /** [rows, k] weight `name` as `type` block bytes (stored as is, else quantized from its f32 values). */
  const quant = (name: string, type: 'Q4_K' | 'Q8_0') => (): Uint8Array => {
    const want = type === 'Q4_K' ? 'q4_k' : 'q8_0';
    const q = provider.quantInfo(name);
    if (q) {
      if (q.dtype !== want) throw new Error(`${name} is stored as ${q.dtype} in ${modelDir}; the GGUF wants ${want} (quantize with --isq q4k)`);
      return provider.readRaw(name);
    }
    const [rows, k] = provider.info(name).shape as [number, number];
    native ??= NativeBackend.create();
    return native.quantizeRows(want, provider.readF32(name), rows, k);
  };
  const f32 = (name: string) => (): Uint8Array => { const f = provider.readF32(name); return new Uint8Array(f.buffer, f.byteOffset, f.byteLength); };
  const floats = (xs: number[]) => (): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);
  const mat = (gname: string, src: string, type: GgmlType, rows: number, k: number): GgufTensor =>
    ({ name: gname, dims: [k, rows], type, data: type === 'F32' ? f32(src) : quant(src, type as 'Q4_K' | 'Q8_0') });
  const H = t.hidden_size, I = t.intermediate_size, hd = H / t.num_attention_heads, qkv = H + 2 * t.num_key_value_heads * hd;
  const tensors: GgufTensor[] = [
    mat('token_embd.weight', 'model.embed_tokens.weight', 'Q8_0', t.vocab_size, H),
    { name: 'output_norm.weight', dims: [H], type: 'F32', data: f32('model.norm.weight') },
  ];
  if (t.rope_scaling) {
    tensors.push({ name: 'rope_factors_long.weight', dims: [rot / 2], type: 'F32', data: floats(t.rope_scaling.long_factor) });
    tensors.push({ name: 'rope_factors_short.weight', dims: [rot / 2], type: 'F32', data: floats(t.rope_scaling.short_factor) });
  }
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [H], type: 'F32', data: f32(`${p}.input_layernorm.weight`) },
      mat(`blk.${i}.attn_qkv.weight`, `${p}.self_attn.qkv_proj.base_layer.weight`, 'Q4_K', qkv, H),
      mat(`blk.${i}.attn_output.weight`, `${p}.self_attn.o_proj.base_layer.weight`, 'Q4_K', H, H),
      { name: `blk.${i}.ffn_norm.weight`, dims: [H], type: 'F32', data: f32(`${p}.post_attention_layernorm.weight`) },
      mat(`blk.${i}.ffn_up.weight`, `${p}.mlp.gate_up_proj.base_layer.weight`, 'Q4_K', 2 * I, H),  // [gate | up]
      mat(`blk.${i}.ffn_down.weight`, `${p}.mlp.down_proj.base_layer.weight`, 'Q4_K', H, I),
    );
  }
  const scale = t.max_position_embeddings / t.original_max_position_embeddings;
  const kv = {
    'general.architecture': { str: 'phi3' },
    'general.name': { str: 'phi4mm LM (phi4mm q4k format)' },
    'phi3.context_length': { u32: t.max_position_embeddings },
    'phi3.rope.scaling.original_context_length': { u32: t.original_max_position_embeddings },
    'phi3.rope.scaling.attn_factor': { f32: scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(t.original_max_position_embeddings)) : 1 },
    'phi3.embedding_length': { u32: H },
    'phi3.feed_forward_length': { u32: I },
    'phi3.block_count': { u32: t.num_hidden_layers },
    'phi3.attention.head_count': { u32: t.num_attention_heads },
    'phi3.attention.head_count_kv': { u32: t.num_key_value_heads },
    'phi3.attention.layer_norm_rms_epsilon': { f32: t.rms_norm_eps },
    'phi3.rope.dimension_count': { u32: rot },
    'phi3.rope.freq_base': { f32: t.rope_theta },
    'phi3.vocab_size': { u32: t.vocab_size },
    'tokenizer.ggml.model': { str: 'none' },
  } as const;
  try {
    const bytes = writeGguf(out, kv, tensors);
    log(`wrote ${out}: ${tensors.length} tensors, ${(bytes / 2 ** 30).toFixed(2)} GiB`);
    return bytes;
  } finally {
    provider.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' } } });
  if (!values.model || !values.out) throw new Error('usage: make_gguf.ts --model DIR --out FILE.gguf');
  makeGguf(values.model, values.out);
}
