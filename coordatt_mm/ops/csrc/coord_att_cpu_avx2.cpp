// The kernels compiled for AVX2 + FMA (x86-64); used only where the CPU reports both.
#include "coord_att_dispatch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "coord_att_kernels_std.h"
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#define COORDATT_ISA isa_avx2
#define COORDATT_TABLE kernels_avx2
#define COORDATT_AVX2_INTRINSICS
#include "coord_att_kernels.h"

namespace coordatt {
bool built_with_avx2() { return true; }
}  // namespace coordatt
#else
namespace coordatt {
template <>
Kernels<float> kernels_avx2<float>() { return kernels_default<float>(); }
template <>
Kernels<double> kernels_avx2<double>() { return kernels_default<double>(); }
bool built_with_avx2() { return false; }
}  // namespace coordatt
#endif
