// A checkpoint folder of either layout, presented under the original layout's names (see names.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint } from '../../io/safetensors.js';
import type { TensorProvider } from '../../nn/weights.js';
import type { QuantDType } from '../../tensor/dtype.js';

/** Safetensors metadata key of pre-quantized checkpoints: JSON {name: {dtype, shape}} for the U8 block tensors. */
export const QUANT_METADATA_KEY = 'phi4mm.quant';
import { adapterKeyToOrig, hfToOrig } from './names.js';
import type { Layout } from './configuration.js';

interface Source {
  ck: SafetensorsCheckpoint;
  name: string;
}

export class CheckpointProvider implements TensorProvider {
  private readonly map = new Map<string, Source>();
  private readonly opened: SafetensorsCheckpoint[] = [];

  constructor(readonly dir: string, readonly layout: Layout) {
    const base = SafetensorsCheckpoint.open(dir);
    this.opened.push(base);
    for (const n of base.names()) this.add(layout === 'hf' ? hfToOrig(n) : n, base, n);
    if (layout === 'hf') {
      for (const adapter of ['vision', 'speech'] as const) {
        const f = join(dir, `${adapter}-lora`, 'adapter_model.safetensors');
        if (!existsSync(f)) continue;
        const ck = SafetensorsCheckpoint.open(f);
        this.opened.push(ck);
        for (const n of ck.names()) this.add(adapterKeyToOrig(n, adapter), ck, n);
      }
    }
  }

  get where(): string {
    return this.dir;
  }

  private add(canonical: string, ck: SafetensorsCheckpoint, name: string): void {
    if (this.map.has(canonical)) throw new Error(`${this.dir}: two tensors map to "${canonical}" (${this.map.get(canonical)!.name} and ${name})`);
    this.map.set(canonical, { ck, name });
  }

  names(): string[] {
    return [...this.map.keys()];
  }
  info(name: string) {
    const s = this.get(name);
    return s.ck.info(s.name);
  }
  readF32(name: string): Float32Array {
    const s = this.get(name);
    return s.ck.readF32(s.name);
  }
  readRaw(name: string): Uint8Array {
    const s = this.get(name);
    return s.ck.readRaw(s.name);
  }
  quantInfo(name: string): { dtype: QuantDType; shape: number[] } | undefined {
    const s = this.get(name);
    const meta = s.ck.metadataOf(s.name)[QUANT_METADATA_KEY];
    if (!meta) return undefined;
    let table = this.quantTables.get(meta);
    if (!table) this.quantTables.set(meta, (table = JSON.parse(meta) as Record<string, { dtype: QuantDType; shape: number[] }>));
    return table[s.name];
  }
  private readonly quantTables = new Map<string, Record<string, { dtype: QuantDType; shape: number[] }>>();
  close(): void {
    for (const c of this.opened) c.close();
  }
  private get(name: string): Source {
    const s = this.map.get(name);
    if (!s) throw new Error(`${this.dir}: no tensor "${name}"`);
    return s;
  }
}
