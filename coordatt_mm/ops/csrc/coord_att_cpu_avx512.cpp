// The kernels compiled for AVX-512 (F, BW, VL, DQ) + FMA (x86-64), 512-bit vectors preferred;
// used only where the CPU reports all of them. The explicit row kernels stay the AVX2 ones
// (valid AVX-512 code): MobileNetV2's narrow planes fill 256-bit rows better.
#include "coord_att_dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include "coord_att_kernels_std.h"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")
#include <immintrin.h>
#define COORDATT_ISA isa_avx512
#define COORDATT_TABLE kernels_avx512
#define COORDATT_AVX2_INTRINSICS
#include "coord_att_kernels.h"

namespace coordatt {
bool built_with_avx512() { return true; }
}  // namespace coordatt
#else
namespace coordatt {
template <>
Kernels<float> kernels_avx512<float>() { return kernels_avx2<float>(); }
template <>
Kernels<double> kernels_avx512<double>() { return kernels_avx2<double>(); }
bool built_with_avx512() { return false; }
}  // namespace coordatt
#endif
