// A checkpoint folder of either layout as one TensorProvider under the original layout's names (mapping.ts):
//  - original: model.safetensors (single or sharded) as is;
//  - transformers: model.safetensors(+index) renamed through the table (base linears → `...base_layer.weight`),
//    plus {vision,speech}-lora/adapter_model.safetensors renamed to `...<module>.lora_{A,B}.<adapter>.weight`.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint } from '../../io/safetensors.js';
import type { TensorProvider } from '../../nn/weights.js';
import type { QuantDType } from '../../tensor/dtype.js';
import { adapterKeyToOrig, hfToOrig } from './mapping.js';
import { loadConfig, type Layout, type Phi4MMConfig } from './config.js';

/** Safetensors metadata key of pre-quantized checkpoints: JSON {name: {dtype, shape}} for the U8 block tensors. */
export const QUANT_METADATA_KEY = 'phi4mm.quant';

type QuantTable = Record<string, { dtype: QuantDType; shape: number[] }>;

interface Source {
  ck: SafetensorsCheckpoint;
  name: string; // the name inside that file
}

export class CheckpointProvider implements TensorProvider {
  private readonly map = new Map<string, Source>(); // canonical (original-layout) name → where it is stored
  private readonly opened: SafetensorsCheckpoint[] = [];
  private readonly quantTables = new Map<string, QuantTable>(); // parsed QUANT_METADATA_KEY, by its JSON text

  constructor(readonly dir: string, readonly layout: Layout) {
    const base = this.open(dir);
    for (const n of base.names()) this.add(layout === 'hf' ? hfToOrig(n) : n, base, n);
    if (layout !== 'hf') return;
    for (const adapter of ['vision', 'speech'] as const) {
      const f = join(dir, `${adapter}-lora`, 'adapter_model.safetensors');
      if (!existsSync(f)) continue;
      const ck = this.open(f);
      for (const n of ck.names()) this.add(adapterKeyToOrig(n, adapter), ck, n);
    }
  }

  /**
   * The files as they are now (path, size, mtime, inode of each): a lazy read opens the folder again and
   * refuses it if this changed, rather than mixing tensors of two checkpoints in one model.
   */
  identity(): string {
    return this.opened.flatMap((c) => c.paths()).map((p) => {
      const s = statSync(p);
      return `${p} ${s.size} ${Math.trunc(s.mtimeMs)} ${s.ino}`;
    }).join('\n');
  }

  /** The same folder opened again (lazy loading reads the deferred parts through this; close it after). */
  reopen(identity: string): CheckpointProvider {
    const again = new CheckpointProvider(this.dir, this.layout);
    if (again.identity() !== identity) {
      again.close();
      throw new Error(`the checkpoint files in ${this.dir} changed since the model was loaded; load the model again`);
    }
    return again;
  }

  get where(): string {
    return this.dir;
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
  readRaw(name: string, into?: Uint8Array): Uint8Array {
    const s = this.get(name);
    return s.ck.readRaw(s.name, into);
  }
  quantInfo(name: string): { dtype: QuantDType; shape: number[] } | undefined {
    const s = this.get(name);
    const meta = s.ck.metadataOf(s.name)[QUANT_METADATA_KEY];
    if (!meta) return undefined;
    let table = this.quantTables.get(meta);
    if (!table) this.quantTables.set(meta, (table = JSON.parse(meta) as QuantTable));
    return table[s.name];
  }
  close(): void {
    for (const c of this.opened) c.close();
  }

  private open(path: string): SafetensorsCheckpoint {
    const ck = SafetensorsCheckpoint.open(path);
    this.opened.push(ck);
    return ck;
  }
  private add(canonical: string, ck: SafetensorsCheckpoint, name: string): void {
    const prev = this.map.get(canonical);
    if (prev) throw new Error(`${this.dir}: two tensors map to "${canonical}" (${prev.name} and ${name}); the folder mixes layouts`);
    this.map.set(canonical, { ck, name });
  }
  private get(name: string): Source {
    const s = this.map.get(name);
    if (!s) throw new Error(`${this.dir}: no tensor "${name}"`);
    return s;
  }
}

/** The config and the renamed tensors of a checkpoint folder; close the provider once the weights are taken. */
export function openCheckpoint(dir: string): { config: Phi4MMConfig; provider: CheckpointProvider } {
  const config = loadConfig(dir);
  return { config, provider: new CheckpointProvider(dir, config.layout) };
}
