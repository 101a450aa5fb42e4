// The generic build of the device ops (flags in binding.gyp).
#define PHI_NS generic
#include "device_impl.h"
