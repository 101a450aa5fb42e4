// A BatchModel over today's single-sequence decoder (Phi4MiniDecoder.forward with a contiguous KVCache), with
// the paged store kept in host f32 arrays: per sequence, the blocks are gathered into a cache, the rows run, and
// the new rows' K/V are scattered back into their blocks. Exact (f32, the same forward), but it runs the
// batch's sequences one after another and copies each sequence's context every step — the stand-in until the
// decoder's ragged `forwardBatch` over a device KvStore lands (see docs/engine.md).
import type { Backend } from '../tensor/backend.js';
import type { Phi4MMForCausalLM } from '../models/phi4mm/model.js';
import type { Phi4MiniDecoder } from '../models/phi4mm/decoder.js';
import type { AudioBatchInput, BatchModel, BatchSeq, ImageBatchInput } from './types.js';

export class LegacyBatchModel implements BatchModel {
  readonly vocabSize: number;
  readonly hidden: number;
  readonly maxPositions: number;
  readonly kvBytesPerToken: number;
  private readonly lm: Phi4MiniDecoder;
  private readonly rowSize: number; // nKv · headDim
  private k: Float32Array[] = []; // per layer [numBlocks, blockSize, nKv, headDim]
  private v: Float32Array[] = [];
  private blockSize = 0;

  constructor(readonly model: Phi4MMForCausalLM, readonly be: Backend) {
    const c = model.config.text;
    this.lm = model.lm;
    this.vocabSize = c.vocab_size;
    this.hidden = c.hidden_size;
    this.maxPositions = c.max_position_embeddings;
    this.rowSize = c.num_key_value_heads * this.lm.headDim;
    this.kvBytesPerToken = 2 * c.num_hidden_layers * this.rowSize * Float32Array.BYTES_PER_ELEMENT;
  }

  useLong(total: number): boolean {
    return this.lm.rope.useLong(total);
  }

  allocKv(numBlocks: number, blockSize: number): void {
    this.blockSize = blockSize;
    const n = numBlocks * blockSize * this.rowSize;
    this.k = this.lm.layers.map(() => new Float32Array(n));
    this.v = this.lm.layers.map(() => new Float32Array(n));
  }

  forwardBatch(seqs: BatchSeq[]): Float32Array {
    const V = this.vocabSize, out = new Float32Array(seqs.filter((s) => s.logits).length * V);
    let li = 0;
    for (const s of seqs) {
      const rows = s.ids.length, cache = this.lm.newCache(s.start + rows);
      this.copyBlocksTo(s, cache, 0, s.start, 'gather');
      cache.length = s.start;
      // The sequence's regime is decided by the scheduler (the whole prompt's length, or the switch at 4096),
      // not by this chunk's end position: pin it for this forward.
      const view = Object.create(this.lm, { rope: { value: Object.create(this.lm.rope, { useLong: { value: () => s.long } }) } }) as Phi4MiniDecoder;
      const r = view.forward(this.be, s.ids, { mode: s.mode, cache, logits: s.logits ? 'last' : 'none', ...(s.embeds ? { inputsEmbeds: s.embeds } : {}) });
      this.copyBlocksTo(s, cache, s.start, s.start + rows, 'scatter');
      if (s.logits) out.set(r.logits, V * li++);
    }
    return out;
  }

  copyBlocks(src: Int32Array, dst: Int32Array): void {
    const n = this.blockSize * this.rowSize;
    for (let l = 0; l < this.k.length; l++) {
      for (let i = 0; i < src.length; i++) {
        this.k[l]!.copyWithin(dst[i]! * n, src[i]! * n, (src[i]! + 1) * n);
        this.v[l]!.copyWithin(dst[i]! * n, src[i]! * n, (src[i]! + 1) * n);
      }
    }
  }

  embed(ids: Int32Array): Float32Array {
    return this.lm.embed(ids);
  }

  encodeImages(x: ImageBatchInput): Float32Array[] {
    return this.model.image_embed.encode(this.be, x.pixelValues, x.attentionMask, x.imageSizes, x.numImgTokens);
  }

  encodeAudio(x: AudioBatchInput, projection: 'vision' | 'speech'): Float32Array[] {
    return this.model.audio_embed.encode(this.be, x.features, x.frames, projection);
  }

  /** Positions [from, to) between the paged store and a contiguous cache, block run by block run. */
  private copyBlocksTo(s: BatchSeq, cache: { k: Float32Array[]; v: Float32Array[] }, from: number, to: number, dir: 'gather' | 'scatter'): void {
    const bs = this.blockSize, R = this.rowSize;
    for (let p = from; p < to;) {
      const blk = s.blockTable[Math.floor(p / bs)]!, slot = p % bs, n = Math.min(bs - slot, to - p);
      const paged = (blk * bs + slot) * R, flat = p * R;
      for (let l = 0; l < this.k.length; l++) {
        if (dir === 'gather') {
          cache.k[l]!.set(this.k[l]!.subarray(paged, paged + n * R), flat);
          cache.v[l]!.set(this.v[l]!.subarray(paged, paged + n * R), flat);
        } else {
          this.k[l]!.set(cache.k[l]!.subarray(flat, flat + n * R), paged);
          this.v[l]!.set(cache.v[l]!.subarray(flat, flat + n * R), paged);
        }
      }
      p += n;
    }
  }
}

