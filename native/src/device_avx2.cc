// The avx2 build of the device ops (flags in binding.gyp).
#define PHI_NS avx2
#include "device_impl.h"
