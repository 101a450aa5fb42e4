// The BatchModel of the real model: the decoder's ragged forwardBatch over a paged KV store allocated on the
// backend's device (Backend v2), plus the image and audio encoders. No host copies of the KV: the store, the
// activations and the copy-on-write block copies stay behind DeviceOps.
import type { Backend } from '../tensor/backend.js';
import type { KvDType, KvStore } from '../tensor/device.js';
import { kvRowBytes } from '../tensor/host_kv.js';
import { withComputePrecision } from '../tensor/precision.js';
import type { Phi4MMForCausalLM } from '../models/phi4mm/model.js';
import type { Phi4Tokenizer } from '../text/tokenizer.js';
import type { ConstraintSpec, LogitsConstraint } from '../text/sampler.js';
import { GrammarConstraint, tokenTrieFor } from '../constrained/index.js';
import type { AudioBatchInput, BatchModel, BatchSeq, ImageBatchInput } from './types.js';

export class DeviceBatchModel implements BatchModel {
  readonly vocabSize: number;
  readonly hidden: number;
  readonly maxPositions: number;
  readonly kvBytesPerToken: number;
  private kv: KvStore | null = null;
  // Reused by every step: a fresh [n, vocab] array per decode step (800 KB at Phi-4-mini's vocabulary) cost
  // more to allocate and zero than the copy into it (~150 against ~15 µs).
  private logits = new Float32Array(0);

  /** tokenizer: loaded on the first grammar constraint (its token trie is built once and cached). */
  constructor(readonly model: Phi4MMForCausalLM, readonly be: Backend, readonly kvDtype: KvDType = 'f16', private readonly tokenizer?: () => Phi4Tokenizer) {
    const c = model.config.text;
    this.vocabSize = c.vocab_size;
    this.hidden = c.hidden_size;
    this.maxPositions = c.max_position_embeddings;
    this.kvBytesPerToken = 2 * c.num_hidden_layers * kvRowBytes(kvDtype, c.num_key_value_heads, model.lm.headDim);
  }

  constraints(spec: ConstraintSpec): LogitsConstraint {
    if (!this.tokenizer) throw new Error('constrained decoding needs the tokenizer; this engine was built without one');
    return new GrammarConstraint(spec, tokenTrieFor(this.tokenizer(), this.vocabSize));
  }

  useLong(total: number): boolean {
    return this.model.lm.rope.useLong(total);
  }

  allocKv(numBlocks: number, blockSize: number): void {
    this.kv = this.be.device.allocKv(this.model.lm.kvSpec(numBlocks, blockSize, this.kvDtype));
  }

  forwardBatch(seqs: BatchSeq[]): Float32Array {
    let n = 0;
    for (const s of seqs) if (s.logits) n++;
    if (this.logits.length < n * this.vocabSize) this.logits = new Float32Array(n * this.vocabSize);
    return this.model.lm.forwardBatch(this.be, this.store(), seqs, { logitsOut: this.logits }).subarray(0, n * this.vocabSize);
  }

  copyBlocks(src: Int32Array, dst: Int32Array): void {
    this.be.device.kvCopyBlocks(this.store(), src, dst);
  }

  embed(ids: Int32Array): Float32Array {
    return this.model.lm.embed(ids);
  }

  encodeImages(x: ImageBatchInput): Float32Array[] {
    return this.model.image_embed.encode(withComputePrecision(this.be, this.model.encoderPrecision), x.pixelValues, x.attentionMask, x.imageSizes, x.numImgTokens);
  }

  encodeAudio(x: AudioBatchInput, projection: 'vision' | 'speech'): Float32Array[] {
    return this.model.audio_embed.encode(withComputePrecision(this.be, this.model.encoderPrecision), x.features, x.frames, projection);
  }

  private store(): KvStore {
    if (!this.kv) throw new Error('the KV store is not allocated (allocKv first)');
    return this.kv;
  }
}
