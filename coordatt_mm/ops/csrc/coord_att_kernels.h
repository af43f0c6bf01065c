// Loops of the fused Coordinate Attention operator, written once and compiled once per
// instruction set (coord_att_cpu_*.cpp define COORDATT_ISA, the namespace of that build, and
// COORDATT_TABLE, the dispatch.h function that returns its table, before including this file),
// so that the run-time dispatch in coord_att.cpp can pick the widest build the CPU runs.
//
// Every kernel works on a range of its outer index so that the caller can split it over
// threads. Shapes: x is N,C,H,W; L = H + W. Descriptors and gates of one image are stored
// "C x L" (NCHW inputs: z[c][l], rows 0..H-1 are the row means, H..L-1 the column means) or
// "L x C" (channels-last inputs: z[l][c]), so that the innermost loop always runs along
// contiguous memory.
#include "coord_att_dispatch.h"
#include "coord_att_kernels_std.h"

#if !defined(COORDATT_ISA) || !defined(COORDATT_TABLE)
#error "define COORDATT_ISA and COORDATT_TABLE before including coord_att_kernels.h"
#endif

#define COORDATT_SIMD _Pragma("omp simd")
#define COORDATT_SIMD_SUM _Pragma("omp simd reduction(+ : s)")

namespace coordatt {
namespace COORDATT_ISA {

// ---- the prologue: act(x * scale[c] + shift[c]) computed on the fly wherever x is read ----
//
// The loops live in plain function templates over the prologue's functor (kernels call them
// through with_prologue*), so that the compiler sees local pointers and inlines the functor.

template <int A, typename T>
inline T prologue_act(T v) {
  if (A == 1) return std::max(v, T(0));
  if (A == 2) return std::min(std::max(v, T(0)), T(6));
  return v;
}

template <typename T>
struct Identity {
  T operator()(T v) const { return v; }
  T operator()(T v, int64_t) const { return v; }
};

template <typename T, int A>
struct ChannelAffine {  // one channel's scale and shift
  T s, b;
  T operator()(T v) const { return prologue_act<A>(v * s + b); }
};

template <typename T, int A>
struct PerChannelAffine {  // indexed by channel, for loops along channels
  const T* s;
  const T* b;
  T operator()(T v, int64_t c) const { return prologue_act<A>(v * s[c] + b[c]); }
};

// fn(f) with f(v) the prologue of channel c
template <typename T, typename Fn>
inline void with_prologue(const Prologue<T>& pro, int64_t c, const Fn& fn) {
  if (!pro.scale) return fn(Identity<T>{});
  const T s = pro.scale[c], b = pro.shift[c];
  switch (pro.act) {
    case 1: return fn(ChannelAffine<T, 1>{s, b});
    case 2: return fn(ChannelAffine<T, 2>{s, b});
    default: return fn(ChannelAffine<T, 0>{s, b});
  }
}

// fn(f) with f(v, c) the prologue of channel c
template <typename T, typename Fn>
inline void with_prologue_c(const Prologue<T>& pro, const Fn& fn) {
  if (!pro.scale) return fn(Identity<T>{});
  switch (pro.act) {
    case 1: return fn(PerChannelAffine<T, 1>{pro.scale, pro.shift});
    case 2: return fn(PerChannelAffine<T, 2>{pro.scale, pro.shift});
    default: return fn(PerChannelAffine<T, 0>{pro.scale, pro.shift});
  }
}

#ifdef COORDATT_AVX2_INTRINSICS
// ---- AVX2 rows of NCHW float planes: whole vectors and one masked vector per row ----
//
// The compilers' own loops end a short row (W = 10, 20: MobileNetV2's later stages) with a
// scalar tail and restart per row; here a row is a few vector operations, and for narrow
// planes the column sums stay in registers. Products and sums keep the portable loops' order
// of operations (v * s + b, (f(x) * a_w) * a_h).

inline __m256 prologue_vec(Identity<float>, __m256 v) { return v; }

template <int A>
inline __m256 prologue_vec(ChannelAffine<float, A> f, __m256 v) {
  v = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(f.s)), _mm256_set1_ps(f.b));
  if (A >= 1) v = _mm256_max_ps(_mm256_setzero_ps(), v);  // a NaN stays NaN, as std::max
  if (A == 2) v = _mm256_min_ps(_mm256_set1_ps(6.0f), v);
  return v;
}

inline __m256i lanes_below(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

// a plane with W = 8 * NV + (TAIL ? 1..7 : 0) <= 40: column sums in NV (+1) registers
template <int NV, bool TAIL, typename F>
void pool_narrow_plane(const float* xp, float* zh, float* zw, int64_t H, int64_t W, F f) {
  const __m256i m = lanes_below(W - 8 * NV);
  const float inv_w = 1.0f / float(W);
  __m256 col[NV + 1];
  for (int j = 0; j <= NV; ++j) col[j] = _mm256_setzero_ps();
  for (int64_t h = 0; h < H; ++h) {
    const float* row = xp + h * W;
    __m256 rs = _mm256_setzero_ps();
    for (int j = 0; j < NV; ++j) {
      const __m256 v = prologue_vec(f, _mm256_loadu_ps(row + 8 * j));
      col[j] = _mm256_add_ps(col[j], v);
      rs = _mm256_add_ps(rs, v);
    }
    if (TAIL) {  // the masked lanes would be f(0): zero them
      const __m256 v = _mm256_and_ps(prologue_vec(f, _mm256_maskload_ps(row + 8 * NV, m)),
                                     _mm256_castsi256_ps(m));
      col[NV] = _mm256_add_ps(col[NV], v);
      rs = _mm256_add_ps(rs, v);
    }
    zh[h] = hsum(rs) * inv_w;
  }
  const __m256 inv_h = _mm256_set1_ps(1.0f / float(H));
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(zw + 8 * j, _mm256_mul_ps(col[j], inv_h));
  if (TAIL) _mm256_maskstore_ps(zw + 8 * NV, m, _mm256_mul_ps(col[NV], inv_h));
}

// true if the plane was pooled here (W <= 40)
template <typename F>
bool pool_plane_avx2(const float* xp, float* zh, float* zw, int64_t H, int64_t W, F f) {
  const bool tail = W % 8 != 0;
  switch (W / 8) {
    case 0: pool_narrow_plane<0, true>(xp, zh, zw, H, W, f); return true;
    case 1: tail ? pool_narrow_plane<1, true>(xp, zh, zw, H, W, f)
                 : pool_narrow_plane<1, false>(xp, zh, zw, H, W, f); return true;
    case 2: tail ? pool_narrow_plane<2, true>(xp, zh, zw, H, W, f)
                 : pool_narrow_plane<2, false>(xp, zh, zw, H, W, f); return true;
    case 3: tail ? pool_narrow_plane<3, true>(xp, zh, zw, H, W, f)
                 : pool_narrow_plane<3, false>(xp, zh, zw, H, W, f); return true;
    case 4: if (tail) return false;
            pool_narrow_plane<4, false>(xp, zh, zw, H, W, f); return true;
    default: return false;
  }
}

template <typename F>
void gate_plane_avx2(const float* xp, const float* gh, const float* gw, float* op, int64_t H,
                     int64_t W, F f) {
  const int64_t nv = W / 8, tail = W - 8 * nv;
  const __m256i m = lanes_below(tail);
  for (int64_t h = 0; h < H; ++h) {
    const __m256 g = _mm256_set1_ps(gh[h]);
    const float* px = xp + h * W;
    float* o = op + h * W;
    for (int64_t j = 0; j < nv; ++j) {
      const __m256 v = prologue_vec(f, _mm256_loadu_ps(px + 8 * j));
      _mm256_storeu_ps(o + 8 * j,
                       _mm256_mul_ps(_mm256_mul_ps(v, _mm256_loadu_ps(gw + 8 * j)), g));
    }
    if (tail) {
      const __m256 v = prologue_vec(f, _mm256_maskload_ps(px + 8 * nv, m));
      _mm256_maskstore_ps(o + 8 * nv, m,
                          _mm256_mul_ps(_mm256_mul_ps(v, _mm256_maskload_ps(gw + 8 * nv, m)), g));
    }
  }
}
#endif  // COORDATT_AVX2_INTRINSICS

// ---- pooling: row means and column means in one read of x ----

// one H x W plane: row means into zh, column means into zw. Four rows at a time: four
// independent row sums in flight, and one update of the column sums for the four.
template <typename T, typename F>
void pool_plane(const T* xp, T* zh, T* zw, int64_t H, int64_t W, F f) {
#ifdef COORDATT_AVX2_INTRINSICS
  if constexpr (std::is_same_v<T, float>) {
    if (pool_plane_avx2(xp, zh, zw, H, W, f)) return;
  }
#endif
  const T inv_h = T(1) / T(H), inv_w = T(1) / T(W);
  std::fill(zw, zw + W, T(0));
  int64_t h = 0;
  for (; h + 4 <= H; h += 4) {
    const T *r0 = xp + h * W, *r1 = r0 + W, *r2 = r1 + W, *r3 = r2 + W;
    T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
    _Pragma("omp simd reduction(+ : s0, s1, s2, s3)")
    for (int64_t w = 0; w < W; ++w) {
      const T v0 = f(r0[w]), v1 = f(r1[w]), v2 = f(r2[w]), v3 = f(r3[w]);
      s0 += v0;
      s1 += v1;
      s2 += v2;
      s3 += v3;
      zw[w] += (v0 + v1) + (v2 + v3);
    }
    zh[h] = s0 * inv_w, zh[h + 1] = s1 * inv_w, zh[h + 2] = s2 * inv_w, zh[h + 3] = s3 * inv_w;
  }
  for (; h < H; ++h) {
    const T* row = xp + h * W;
    T s = T(0);
    COORDATT_SIMD_SUM
    for (int64_t w = 0; w < W; ++w) {
      const T v = f(row[w]);
      s += v;
      zw[w] += v;
    }
    zh[h] = s * inv_w;
  }
  for (int64_t w = 0; w < W; ++w) zw[w] *= inv_h;
}

// Planes p0..p1 (p = n * C + c) of an NCHW x into z: plane p's row means at z + p * zs, its
// column means at z + p * zs + woff; whatever else lies in the zs values (padding) is zeroed.
template <typename T>
void pool_nchw(const T* x, T* z, int64_t p0, int64_t p1, int64_t C, int64_t H, int64_t W,
               int64_t zs, int64_t woff, Prologue<T> pro) {
  for (int64_t p = p0; p < p1; ++p) {
    T* zh = z + p * zs;
    std::fill(zh + H, zh + woff, T(0));  // padding between and after the two parts
    std::fill(zh + woff + W, zh + zs, T(0));
    with_prologue(pro, p % C,
                  [&](auto f) { pool_plane(x + p * H * W, zh, zh + woff, H, W, f); });
  }
}

// Channels-last kernels walk channel blocks of kChannelBlock: a block's column sums or gates
// for all W columns then stay in L1 (a whole W x C set would not, e.g. 80 x 144 floats).
constexpr int64_t kChannelBlock = 32;

// channels b0..b0+nb (nb <= kChannelBlock) of one channels-last image xn into its
// descriptors: row means zh0 (H rows of C), column means zw0 (W rows of C)
template <typename T, typename F>
void pool_channel_block(const T* xn, T* zh0, T* zw0, int64_t b0, int64_t nb, int64_t C,
                        int64_t H, int64_t W, F f) {
  const T inv_h = T(1) / T(H), inv_w = T(1) / T(W);
  for (int64_t w = 0; w < W; ++w) std::fill(zw0 + w * C + b0, zw0 + w * C + b0 + nb, T(0));
  for (int64_t h = 0; h < H; ++h) {
    T acc[kChannelBlock] = {};  // the row's sums stay in registers over its W pixels
    for (int64_t w = 0; w < W; ++w) {
      const T* px = xn + (h * W + w) * C + b0;
      T* zw = zw0 + w * C + b0;
      if (nb == kChannelBlock) {
        COORDATT_SIMD
        for (int64_t c = 0; c < kChannelBlock; ++c) {
          const T v = f(px[c], b0 + c);
          acc[c] += v;
          zw[c] += v;
        }
      } else {
        for (int64_t c = 0; c < nb; ++c) {
          const T v = f(px[c], b0 + c);
          acc[c] += v;
          zw[c] += v;
        }
      }
    }
    T* zh = zh0 + h * C + b0;
    for (int64_t c = 0; c < nb; ++c) zh[c] = acc[c] * inv_w;
  }
  for (int64_t w = 0; w < W; ++w)
    for (int64_t c = 0; c < nb; ++c) zw0[w * C + b0 + c] *= inv_h;
}

// channels c0..c1 of image n of a channels-last x into z (N, L, C)
template <typename T>
void pool_nhwc(const T* x, T* z, int64_t n, int64_t c0, int64_t c1, int64_t C, int64_t H,
               int64_t W, Prologue<T> pro) {
  const T* xn = x + n * H * W * C;
  T* zh0 = z + n * (H + W) * C;
  with_prologue_c(pro, [&](auto f) {
    for (int64_t b0 = c0; b0 < c1; b0 += kChannelBlock)
      pool_channel_block(xn, zh0, zh0 + H * C, b0, std::min(kChannelBlock, c1 - b0), C, H, W, f);
  });
}

// d(means)/dx: every element receives its row's and its column's share (gz as z above)
template <typename T>
void pool_backward_nchw(const T* gz, T* gx, int64_t p0, int64_t p1, int64_t H, int64_t W) {
  const int64_t L = H + W;
  const T inv_h = T(1) / T(H), inv_w = T(1) / T(W);
  for (int64_t p = p0; p < p1; ++p) {
    const T* gh = gz + p * L;
    const T* gw = gh + H;
    for (int64_t h = 0; h < H; ++h) {
      const T row_share = gh[h] * inv_w;
      T* o = gx + (p * H + h) * W;
      COORDATT_SIMD
      for (int64_t w = 0; w < W; ++w) o[w] = row_share + gw[w] * inv_h;
    }
  }
}

// rows r0..r1 (r = n * H + h) of a channels-last gx
template <typename T>
void pool_backward_nhwc(const T* gz, T* gx, int64_t r0, int64_t r1, int64_t C, int64_t H,
                        int64_t W) {
  const int64_t L = H + W;
  const T inv_h = T(1) / T(H), inv_w = T(1) / T(W);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / H, h = r % H;
    const T* gh = gz + (n * L + h) * C;
    for (int64_t b0 = 0; b0 < C; b0 += kChannelBlock) {
      const int64_t b1 = std::min(b0 + kChannelBlock, C);
      for (int64_t w = 0; w < W; ++w) {
        const T* gw = gz + (n * L + H + w) * C;
        T* o = gx + (r * W + w) * C;
        COORDATT_SIMD
        for (int64_t c = b0; c < b1; ++c) o[c] = gh[c] * inv_w + gw[c] * inv_h;
      }
    }
  }
}

// ---- gating: out = x * a_w * a_h in one pass (the released order of the products) ----

template <typename T, typename F>
void gate_plane(const T* xp, const T* gh, const T* gw, T* op, int64_t H, int64_t W, F f) {
#ifdef COORDATT_AVX2_INTRINSICS
  if constexpr (std::is_same_v<T, float>) return gate_plane_avx2(xp, gh, gw, op, H, W, f);
#endif
  for (int64_t h = 0; h < H; ++h) {
    const T g = gh[h];
    const T* px = xp + h * W;
    T* o = op + h * W;
    COORDATT_SIMD
    for (int64_t w = 0; w < W; ++w) o[w] = f(px[w]) * gw[w] * g;
  }
}

// Gates of plane p (p = n * C + c): a_h at ah + p * sh (H values), a_w at aw + p * sw.
template <typename T>
void gate_nchw(const T* x, const T* ah, const T* aw, T* out, int64_t p0, int64_t p1, int64_t C,
               int64_t H, int64_t W, int64_t sh, int64_t sw, Prologue<T> pro) {
  for (int64_t p = p0; p < p1; ++p) {
    with_prologue(pro, p % C, [&](auto f) {
      gate_plane(x + p * H * W, ah + p * sh, aw + p * sw, out + p * H * W, H, W, f);
    });
  }
}

// one row of W pixels of a channels-last image: gates gh (C) for the row, gw (W x C)
template <typename T, typename F>
void gate_row(const T* xr, const T* gh, const T* gw, T* orow, int64_t C, int64_t W, F f) {
  for (int64_t b0 = 0; b0 < C; b0 += kChannelBlock) {
    const int64_t b1 = std::min(b0 + kChannelBlock, C);
    for (int64_t w = 0; w < W; ++w) {
      const T* px = xr + w * C;
      const T* g = gw + w * C;
      T* o = orow + w * C;
      COORDATT_SIMD
      for (int64_t c = b0; c < b1; ++c) o[c] = f(px[c], c) * g[c] * gh[c];
    }
  }
}

// Gates of image n: row h at ah + n * sh + h * C, column w at aw + n * sw + w * C.
template <typename T>
void gate_nhwc(const T* x, const T* ah, const T* aw, T* out, int64_t r0, int64_t r1, int64_t C,
               int64_t H, int64_t W, int64_t sh, int64_t sw, Prologue<T> pro) {
  with_prologue_c(pro, [&](auto f) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / H, h = r % H;
      gate_row(x + r * W * C, ah + n * sh + h * C, aw + n * sw, out + r * W * C, C, W, f);
    }
  });
}

// Gradients of out = x * a_w * a_h from x and the gates alone (x * a_w is never stored):
// gx = g * a_w * a_h, g_ah[h] = sum_w g * x * a_w, g_aw[w] = sum_h g * x * a_h.
// ah/aw/gah/gaw: contiguous (N*C, H) and (N*C, W).
template <typename T>
void gate_backward_nchw(const T* g, const T* x, const T* ah, const T* aw, T* gx, T* gah, T* gaw,
                        int64_t p0, int64_t p1, int64_t H, int64_t W) {
  for (int64_t p = p0; p < p1; ++p) {
    const T* gw = aw + p * W;
    T* gaw_p = gaw + p * W;
    for (int64_t w = 0; w < W; ++w) gaw_p[w] = T(0);
    for (int64_t h = 0; h < H; ++h) {
      const T a = ah[p * H + h];
      const int64_t off = (p * H + h) * W;
      const T* pg = g + off;
      const T* px = x + off;
      T* o = gx + off;
      T s = T(0);
      COORDATT_SIMD_SUM
      for (int64_t w = 0; w < W; ++w) {
        const T gxv = pg[w] * px[w];
        o[w] = pg[w] * gw[w] * a;
        s += gxv * gw[w];
        gaw_p[w] += gxv * a;
      }
      gah[p * H + h] = s;
    }
  }
}

// channels c0..c1 of image n; ah/gah: (N, H, C), aw/gaw: (N, W, C)
template <typename T>
void gate_backward_nhwc(const T* g, const T* x, const T* ah, const T* aw, T* gx, T* gah, T* gaw,
                        int64_t n, int64_t c0, int64_t c1, int64_t C, int64_t H, int64_t W) {
  T* gaw_n = gaw + n * W * C;
  for (int64_t b0 = c0; b0 < c1; b0 += kChannelBlock) {
    const int64_t b1 = std::min(b0 + kChannelBlock, c1);
    for (int64_t w = 0; w < W; ++w) std::fill(gaw_n + w * C + b0, gaw_n + w * C + b1, T(0));
    for (int64_t h = 0; h < H; ++h) {
      const T* gh = ah + (n * H + h) * C;
      T* gah_row = gah + (n * H + h) * C;
      std::fill(gah_row + b0, gah_row + b1, T(0));
      for (int64_t w = 0; w < W; ++w) {
        const int64_t off = ((n * H + h) * W + w) * C;
        const T* gw = aw + (n * W + w) * C;
        const T* pg = g + off;
        const T* px = x + off;
        T* o = gx + off;
        T* gaw_col = gaw_n + w * C;
        COORDATT_SIMD
        for (int64_t c = b0; c < b1; ++c) {
          const T gxv = pg[c] * px[c];
          o[c] = pg[c] * gw[c] * gh[c];
          gah_row[c] += gxv * gw[c];
          gaw_col[c] += gxv * gh[c];
        }
      }
    }
  }
}

// ---- the descriptor transforms of the eval form ----
//
// w1 (mip, C) and b1 (mip): the shared 1x1 conv with its BatchNorm folded in; wth, wtw
// (mip, C): the H and W convs' weights transposed; bh, bw (C): their biases. The loops keep a
// tile of kTile outputs in registers and run along contiguous memory.

constexpr int64_t kTile = 16;

template <typename T>
inline void activate_tile(T* v, int64_t act) {
  switch (act) {
    case 1:
      for (int64_t i = 0; i < kTile; ++i) v[i] = std::max(v[i], T(0));
      break;
    case 2:
      for (int64_t i = 0; i < kTile; ++i) v[i] = std::min(std::max(v[i], T(0)), T(6));
      break;
    case 3:  // h-swish: x * relu6(x + 3) / 6
      for (int64_t i = 0; i < kTile; ++i)
        v[i] = v[i] * std::min(std::max(v[i] + T(3), T(0)), T(6)) / T(6);
      break;
    default:
      break;
  }
}

// ---- sigmoid over a buffer, inside the loops that make the gates ----

// exp(x) for float in a form compilers vectorise: exp(x) = 2^k * 2^f with k = round(x / ln 2),
// |f| <= 1/2, and 2^f from its degree-6 Taylor polynomial (relative error below 2e-7).
inline float exp_approx(float x) {
  const float t = std::min(std::max(x, -80.0f), 80.0f) * 1.44269504088896341f;
  const float k = (t + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
  const float f = (t - k) * 0.693147180559945309f;  // (t - k) ln 2, so 2^(t - k) = e^f
  float p = 1.0f / 720;
  p = p * f + 1.0f / 120;
  p = p * f + 1.0f / 24;
  p = p * f + 1.0f / 6;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  return std::bit_cast<float>(std::bit_cast<int32_t>(p) + (static_cast<int32_t>(k) << 23));
}

inline void sigmoid_inplace(float* v, int64_t n) {
  COORDATT_SIMD
  for (int64_t i = 0; i < n; ++i) v[i] = 1.0f / (1.0f + exp_approx(-v[i]));
}

inline void sigmoid_inplace(double* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = 1.0 / (1.0 + std::exp(-v[i]));
}

// Rows are computed kRows at a time so that kRows x kTile independent sums are in flight:
// one chain of fused multiply-adds per register would wait on its own latency.
constexpr int64_t kRows = 4;

// The transforms' micro-kernel: R output rows of one kTile-wide column tile,
// acc[r][i] = bias[r] + sum_k w[r * rs + k * ks] * src[k * Lp + i], all in registers.
template <int R, typename T>
inline void tile_rows(const T* w, int64_t rs, int64_t ks, int64_t K, const T* src, int64_t Lp,
                      const T* bias, T (&acc)[R][kTile]) {
  for (int r = 0; r < R; ++r)
    for (int64_t i = 0; i < kTile; ++i) acc[r][i] = bias[r];
  for (int64_t k = 0; k < K; ++k) {
    const T* sk = src + k * Lp;
    for (int r = 0; r < R; ++r) {
      const T wv = w[r * rs + k * ks];
      COORDATT_SIMD
      for (int64_t i = 0; i < kTile; ++i) acc[r][i] += wv * sk[i];
    }
  }
}

// "C x Lp" descriptors of NCHW inputs (Lp a multiple of kTile): y rows m0..m0+R of image n,
// y = act(b1 + w1 z)
template <int R, typename T>
void reduce_cl_rows(const T* zn, const T* w1, const T* b1, T* yn, int64_t m0, int64_t C,
                    int64_t Lp, int64_t act) {
  for (int64_t l0 = 0; l0 < Lp; l0 += kTile) {
    T acc[R][kTile];
    tile_rows<R>(w1 + m0 * C, C, 1, C, zn + l0, Lp, b1 + m0, acc);
    for (int r = 0; r < R; ++r) {
      activate_tile(acc[r], act);
      std::copy(acc[r], acc[r] + kTile, yn + (m0 + r) * Lp + l0);
    }
  }
}

// rows m0..m1 of image n of y (N, mip, Lp) = act(b1 + w1 z), z (N, C, Lp)
template <typename T>
void reduce_cl(const T* z, const T* w1, const T* b1, T* y, int64_t n, int64_t m0, int64_t m1,
               int64_t C, int64_t Lp, int64_t mip, int64_t act) {
  const T* zn = z + n * C * Lp;
  T* yn = y + n * mip * Lp;
  int64_t m = m0;
  for (; m + kRows <= m1; m += kRows) reduce_cl_rows<kRows>(zn, w1, b1, yn, m, C, Lp, act);
  for (; m < m1; ++m) reduce_cl_rows<1>(zn, w1, b1, yn, m, C, Lp, act);
}

// channels c0..c0+R of image n of a (N, C, Lp) = b + wt^T y, the H weights for positions
// before Hp and the W weights from Hp on (before the sigmoid)
template <int R, typename T>
void expand_cl_rows(const T* yn, const T* wth, const T* bh, const T* wtw, const T* bw, T* an,
                    int64_t c0, int64_t C, int64_t Hp, int64_t Lp, int64_t mip) {
  for (int64_t l0 = 0; l0 < Lp; l0 += kTile) {
    const bool is_h = l0 < Hp;
    T acc[R][kTile];
    tile_rows<R>((is_h ? wth : wtw) + c0, 1, C, mip, yn + l0, Lp, (is_h ? bh : bw) + c0, acc);
    for (int r = 0; r < R; ++r) std::copy(acc[r], acc[r] + kTile, an + (c0 + r) * Lp + l0);
  }
}

// Planes p0..p1 (p = n * C + c) of an NCHW x: their gates from y (N, mip, Lp), kRows planes
// at a time into a buffer that stays in L1, then the gating of those planes (with the
// prologue, see gate_nchw) into out.
template <typename T>
void expand_gate_cl(const T* x, const T* y, const T* wth, const T* bh, const T* wtw,
                    const T* bw, T* out, int64_t p0, int64_t p1, int64_t C, int64_t H, int64_t W,
                    int64_t Hp, int64_t Lp, int64_t mip, Prologue<T> pro) {
  std::vector<T> gates(kRows * Lp);
  for (int64_t p = p0; p < p1;) {
    const int64_t n = p / C, c = p % C;
    const int64_t rows = (c + kRows <= C && p + kRows <= p1) ? kRows : 1;
    // the block's gates, as rows c..c+rows of a (C, Lp) matrix whose origin is shifted to c
    T* g = gates.data() - c * Lp;
    if (rows == kRows)
      expand_cl_rows<kRows>(y + n * mip * Lp, wth, bh, wtw, bw, g, c, C, Hp, Lp, mip);
    else
      expand_cl_rows<1>(y + n * mip * Lp, wth, bh, wtw, bw, g, c, C, Hp, Lp, mip);
    sigmoid_inplace(gates.data(), rows * Lp);
    for (int64_t r = 0; r < rows; ++r) {
      const T* gr = gates.data() + r * Lp;
      with_prologue(pro, c + r, [&](auto f) {
        gate_plane(x + (p + r) * H * W, gr, gr + Hp, out + (p + r) * H * W, H, W, f);
      });
    }
    p += rows;
  }
}

// "L x C" descriptors of channels-last inputs: rows r0..r1 (r = n * L + l) of
// y (N, L, mip) = act(b1 + z w1^T)
template <typename T>
void reduce_lc(const T* z, const T* w1, const T* b1, T* y, int64_t r0, int64_t r1, int64_t C,
               int64_t mip, int64_t act) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* zr = z + r * C;
    for (int64_t m0 = 0; m0 < mip; m0 += kTile) {
      T acc[kTile] = {};
      const int64_t mb = std::min(kTile, mip - m0);
      for (int64_t j = 0; j < mb; ++j) {
        const T* wm = w1 + (m0 + j) * C;
        T s = T(0);
        COORDATT_SIMD_SUM
        for (int64_t c = 0; c < C; ++c) s += zr[c] * wm[c];
        acc[j] = s + b1[m0 + j];
      }
      activate_tile(acc, act);
      std::copy(acc, acc + mb, y + r * mip + m0);
    }
  }
}

// rows r0..r1 (r = n * L + l) of the gates a (N, L, C) = sigmoid(b + y wt), the H weights
// for l < H
template <typename T>
void expand_lc(const T* y, const T* wth, const T* bh, const T* wtw, const T* bw, T* a,
               int64_t r0, int64_t r1, int64_t C, int64_t H, int64_t L, int64_t mip) {
  for (int64_t r = r0; r < r1; ++r) {
    const bool is_h = r % L < H;
    const T* wt = is_h ? wth : wtw;
    const T* b = is_h ? bh : bw;
    const T* yr = y + r * mip;
    T* ar = a + r * C;
    int64_t c0 = 0;
    for (; c0 + kTile <= C; c0 += kTile) {
      T acc[kTile];
      std::copy(b + c0, b + c0 + kTile, acc);
      for (int64_t m = 0; m < mip; ++m) {
        const T v = yr[m];
        const T* wm = wt + m * C + c0;
        COORDATT_SIMD
        for (int64_t i = 0; i < kTile; ++i) acc[i] += v * wm[i];
      }
      std::copy(acc, acc + kTile, ar + c0);
    }
    for (int64_t c = c0; c < C; ++c) {
      T s = b[c];
      for (int64_t m = 0; m < mip; ++m) s += yr[m] * wt[m * C + c];
      ar[c] = s;
    }
    sigmoid_inplace(ar, C);
  }
}

// ---- the table of this instruction set's kernels ----

template <typename T>
::coordatt::Kernels<T> kernel_table() {
  return {&pool_nchw<T>, &pool_nhwc<T>, &pool_backward_nchw<T>, &pool_backward_nhwc<T>,
          &gate_nchw<T>, &gate_nhwc<T>, &gate_backward_nchw<T>, &gate_backward_nhwc<T>,
          &reduce_cl<T>,      &expand_gate_cl<T>, &reduce_lc<T>,          &expand_lc<T>};
}

}  // namespace COORDATT_ISA
}  // namespace coordatt

namespace coordatt {
template <>
Kernels<float> COORDATT_TABLE<float>() { return COORDATT_ISA::kernel_table<float>(); }
template <>
Kernels<double> COORDATT_TABLE<double>() { return COORDATT_ISA::kernel_table<double>(); }
}  // namespace coordatt
