// <immintrin.h> without GCC 12's false warnings: its avx512fintrin.h initialises "undefined" vectors from
// themselves (`__m512i __Y = __Y;`, GCC bug 105593), which -W(maybe-)uninitialized reports at every inlined
// use. Silenced for that header only; every kernel source includes the intrinsics through this file.
#pragma once
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
