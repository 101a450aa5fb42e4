// The machine a benchmark ran on, for its printout: this project's VMs come in kinds that differ by 3× in speed
// (a Zen 5 with AVX-512, a Zen 4 with it hidden, a Zen 1-class AVX2 core), and all of them call themselves
// "AMD EPYC" in os.cpus(). CPUID family and model, and the SIMD flags the kernels are chosen by, tell them apart.
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';

const KERNEL_FLAGS = ['avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16'];

/** "AMD EPYC (CPUID family 23, model 1), 2 cores; avx2" — /proc/cpuinfo's first CPU where there is one. */
export function machineLine(): string {
  let info = '';
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0] ?? '';
  } catch {
    // not Linux: the model name from os.cpus() alone
  }
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim();
  const name = field('model name') ?? cpus()[0]?.model ?? 'unknown CPU';
  const family = field('cpu family'), model = field('model');
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const simd = KERNEL_FLAGS.filter((f) => flags.has(f));
  return `${name}${family ? ` (CPUID family ${family}, model ${model})` : ''}, ${availableParallelism()} cores${info ? `; ${simd.length ? simd.join(' ') : 'no AVX2'}` : ''}`;
}
