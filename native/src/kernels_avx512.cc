// The avx512 build of the kernels (flags in binding.gyp).
#define PHI_NS avx512
#include "kernels_impl.h"
