// The fused Coordinate Attention kernels as one table of function pointers per element type
// and instruction set (the loops are in coord_att_kernels.h).
#pragma once
#include <cstdint>

namespace coordatt {

// An elementwise step applied to x wherever the kernels read it (eval only):
// act(x * scale[c] + shift[c]), act 0 none, 1 ReLU, 2 ReLU6 -- the folded BatchNorm and the
// activation that precede CA in a block. scale == nullptr: x as it is.
template <typename T>
struct Prologue {
  const T* scale = nullptr;
  const T* shift = nullptr;
  int64_t act = 0;
};

template <typename T>
struct Kernels {
  void (*pool_nchw)(const T* x, T* z, int64_t p0, int64_t p1, int64_t C, int64_t H, int64_t W,
                    int64_t zs, int64_t woff, Prologue<T> pro);
  void (*pool_nhwc)(const T* x, T* z, int64_t n, int64_t c0, int64_t c1, int64_t C, int64_t H,
                    int64_t W, Prologue<T> pro);
  void (*pool_backward_nchw)(const T* gz, T* gx, int64_t p0, int64_t p1, int64_t H, int64_t W);
  void (*pool_backward_nhwc)(const T* gz, T* gx, int64_t r0, int64_t r1, int64_t C, int64_t H,
                             int64_t W);
  void (*gate_nchw)(const T* x, const T* ah, const T* aw, T* out, int64_t p0, int64_t p1,
                    int64_t C, int64_t H, int64_t W, int64_t sh, int64_t sw, Prologue<T> pro);
  void (*gate_nhwc)(const T* x, const T* ah, const T* aw, T* out, int64_t r0, int64_t r1,
                    int64_t C, int64_t H, int64_t W, int64_t sh, int64_t sw, Prologue<T> pro);
  void (*gate_backward_nchw)(const T* g, const T* x, const T* ah, const T* aw, T* gx, T* gah,
                             T* gaw, int64_t p0, int64_t p1, int64_t H, int64_t W);
  void (*gate_backward_nhwc)(const T* g, const T* x, const T* ah, const T* aw, T* gx, T* gah,
                             T* gaw, int64_t n, int64_t c0, int64_t c1, int64_t C, int64_t H,
                             int64_t W);
  void (*reduce_cl)(const T* z, const T* w1, const T* b1, T* y, int64_t n, int64_t m0,
                    int64_t m1, int64_t C, int64_t Lp, int64_t mip, int64_t act);
  void (*expand_gate_cl)(const T* x, const T* y, const T* wth, const T* bh, const T* wtw,
                         const T* bw, T* out, int64_t p0, int64_t p1, int64_t C, int64_t H,
                         int64_t W, int64_t Hp, int64_t Lp, int64_t mip, Prologue<T> pro);
  void (*reduce_lc)(const T* z, const T* w1, const T* b1, T* y, int64_t r0, int64_t r1,
                    int64_t C, int64_t mip, int64_t act);
  void (*expand_lc)(const T* y, const T* wth, const T* bh, const T* wtw, const T* bw, T* a,
                    int64_t r0, int64_t r1, int64_t C, int64_t H, int64_t L, int64_t mip);
};

// one per instruction set (coord_att_cpu_default.cpp, coord_att_cpu_avx2.cpp,
// coord_att_cpu_avx512.cpp)
template <typename T>
Kernels<T> kernels_default();
template <typename T>
Kernels<T> kernels_avx2();
template <typename T>
Kernels<T> kernels_avx512();

// whether this build has the AVX2 / AVX-512 kernels (x86-64 only)
bool built_with_avx2();
bool built_with_avx512();

}  // namespace coordatt
