// Quantized accuracy on the golden tiny model: top-1 agreement and logit error of ISQ (Q8_0, Q4_K) against the
// unquantized model over the fixture prompts. The tiny model's linears have K = 32 or 80, below Q4_K's 256-weight
// block, so 'q4k' there falls back per tensor (Q8_0 where K % 32 == 0, else bf16) — the report says which
// tensors got which format.
//   npx tsx bench/accuracy.ts [--golden ../shared/golden]
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Phi4MMForCausalLM } from '../src/models/phi4mm/model.js';
import { storagePolicy, type IsqKind } from '../src/api/phi4mm.js';
import { createBackend } from '../src/tensor/backend.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { argmax } from '../src/text/sampling.js';
import type { InputMode } from '../src/models/phi4mm/multimodal.js';

export interface AccuracyRow { isq: IsqKind; prompt: string; top1Agree: boolean; maxAbsDiff: number; formats: Record<string, number> }

/** Text prompts from the fixtures (media prompts need their encoders; the LM is what ISQ changes). */
export function fixturePrompts(golden: string): Array<{ name: string; ids: Int32Array; mode: InputMode }> {
  const read = (file: string, key: string) => Int32Array.from(SafetensorsFile.open(join(golden, `${file}.safetensors`)).readF32(key));
  const long = read('g_long_rope', 'input_ids_4100');
  return [
    { name: 'a_text (8 tok, no LoRA)', ids: read('a_text', 'input_ids'), mode: 'language' },
    { name: 'a_text (vision LoRA)', ids: read('a_text', 'input_ids'), mode: 'vision' },
    { name: 'a_text (speech LoRA)', ids: read('a_text', 'input_ids'), mode: 'speech' },
    { name: 'f_generation text (10 tok)', ids: read('f_generation', 'text.prompt_ids'), mode: 'language' },
    { name: 'g_long_rope 512 tok', ids: long.subarray(0, 512), mode: 'language' },
    { name: 'g_long_rope 2048 tok', ids: long.subarray(1000, 3048), mode: 'language' },
  ];
}

export async function quantizedAccuracy(golden: string, kinds: IsqKind[] = ['q8_0', 'q4k']): Promise<AccuracyRow[]> {
  const be = await createBackend('auto');
  const dir = join(golden, 'model_orig');
  const base = Phi4MMForCausalLM.load(dir).model;
  const rows: AccuracyRow[] = [];
  for (const isq of kinds) {
    const { model, report } = Phi4MMForCausalLM.load(dir, storagePolicy(isq));
    for (const p of fixturePrompts(golden)) {
      const a = base.forward(be, p.ids, { mode: p.mode }).logits, b = model.forward(be, p.ids, { mode: p.mode }).logits;
      let m = 0;
      for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
      rows.push({ isq, prompt: p.name, top1Agree: argmax(a) === argmax(b), maxAbsDiff: m, formats: report.counts });
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { golden: { type: 'string' } } });
  const golden = resolve(values.golden ?? process.env['PHI4MM_GOLDEN_DIR'] ?? '../shared/golden');
  const rows = await quantizedAccuracy(golden);
  console.log('| isq | prompt | top-1 agrees | max |Δlogit| |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.isq} | ${r.prompt} | ${r.top1Agree ? 'yes' : 'no'} | ${r.maxAbsDiff.toFixed(4)} |`);
  for (const k of new Set(rows.map((r) => r.isq))) {
    const rs = rows.filter((r) => r.isq === k);
    console.log(`${k}: top-1 agreement ${rs.filter((r) => r.top1Agree).length}/${rs.length}; tensors by format ${JSON.stringify(rs[0]!.formats)}`);
    console.log(JSON.stringify({ isq: k, top1_agreement: rs.filter((r) => r.top1Agree).length / rs.length, max_abs_logit_diff: Math.max(...rs.map((r) => r.maxAbsDiff)) }));
  }
}
