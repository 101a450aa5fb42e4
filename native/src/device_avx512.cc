// The avx512 build of the device ops (flags in binding.gyp).
#define PHI_NS avx512
#include "device_impl.h"
