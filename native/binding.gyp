# The phi4mm addon: N-API glue + thread pool (generic x86-64 flags) and one static library of kernels per
# ISA, each built with its own -m flags. Dispatch picks one at run time (__builtin_cpu_supports), so the
# binary runs on any x86-64 machine; no -march=native.
{
  'target_defaults': {
    'cflags': ['-O3', '-fPIC', '-fno-math-errno', '-Wall', '-Wno-unused-function'],
    'cflags_cc': ['-std=c++17', '-fexceptions'],
    'cflags!': ['-fno-exceptions', '-O2'],
    'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
    'include_dirs': ['src'],
  },
  'targets': [
    {
      'target_name': 'phi4mm_kernels_generic',
      'type': 'static_library',
      'sources': ['src/kernels_generic.cc'],
    },
    {
      'target_name': 'phi4mm_kernels_avx2',
      'type': 'static_library',
      'sources': ['src/kernels_avx2.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c'],
    },
    {
      'target_name': 'phi4mm_kernels_avx512',
      'type': 'static_library',
      'sources': ['src/kernels_avx512.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512vnni', '-mavx512dq',
                 '-Wno-maybe-uninitialized'],  # false positives inside GCC 12's avx512fintrin.h
    },
    # The device ops' per-ISA part (device_impl.h), built like the kernels.
    {
      'target_name': 'phi4mm_device_generic',
      'type': 'static_library',
      'sources': ['src/device_generic.cc'],
      'cflags': ['-ffp-contract=off'],
    },
    {
      'target_name': 'phi4mm_device_avx2',
      'type': 'static_library',
      'sources': ['src/device_avx2.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-ffp-contract=off'],
    },
    {
      'target_name': 'phi4mm_device_avx512',
      'type': 'static_library',
      'sources': ['src/device_avx512.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-ffp-contract=off',
                 '-Wno-uninitialized', '-Wno-maybe-uninitialized'],  # false positives inside GCC 12's avx512fintrin.h
    },
    {
      # vdpbf16ps GEMM for the encoders' bf16 compute; called only where the CPU has AVX512-BF16.
      'target_name': 'phi4mm_kernels_avx512bf16',
      'type': 'static_library',
      'sources': ['src/gemm_bf16.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512bf16'],
    },
    # Fast ISQ (quantize_fast_impl.h, one source per lane width): vector lanes that must round like the
    # reference, so no contraction.
    {
      'target_name': 'phi4mm_isq_avx2',
      'type': 'static_library',
      'sources': ['src/quantize_fast_avx2.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-ffp-contract=off'],
    },
    {
      'target_name': 'phi4mm_isq_avx512',
      'type': 'static_library',
      'sources': ['src/quantize_fast_avx512.cc'],
      'cflags': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-ffp-contract=off'],
    },
    {
      'target_name': 'phi4mm_native',
      'sources': ['src/addon.cc', 'src/pool.cc', 'src/quantize.cc', 'src/quantize_weights.cc', 'src/qgemm_ref.cc', 'src/encoder_ops.cc',
                  'src/glue.cc', 'src/lora_napi.cc', 'src/paged_attention.cc', 'src/interleave.cc', 'src/encoder_napi.cc', 'src/isq_napi.cc', 'src/memory_napi.cc', 'src/sampling_napi.cc'],
      # The quantizers must round every float32 operation as ggml's C does (bit-exact with src/quant): no
      # fused multiply-add contraction (and no -ffast-math anywhere in this target).
      'cflags': ['-ffp-contract=off'],
      'dependencies': ['phi4mm_kernels_generic', 'phi4mm_kernels_avx2', 'phi4mm_kernels_avx512', 'phi4mm_isq_avx2', 'phi4mm_isq_avx512', 'phi4mm_kernels_avx512bf16',
                       'phi4mm_device_generic', 'phi4mm_device_avx2', 'phi4mm_device_avx512'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS'],
      'libraries': ['-pthread'],
    },
  ],
}
