// The generic build of the kernels (flags in binding.gyp).
#define PHI_NS generic
#include "kernels_impl.h"
