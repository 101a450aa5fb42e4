// The avx2 build of the kernels (flags in binding.gyp).
#define PHI_NS avx2
#include "kernels_impl.h"
