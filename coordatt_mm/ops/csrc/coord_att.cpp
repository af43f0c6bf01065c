// Fused Coordinate Attention for the CPU (float32 and float64, NCHW and channels-last).
//
// Composed from ATen ops, CA reads its full-size input twice to pool it (mean over W, mean
// over H) and reads and writes it twice to gate it (x * a_w, then * a_h), and each of its ten
// or so small ops pays a dispatch. Here pooling is one pass that produces both descriptors,
// gating is one pass that applies both gates, and in eval mode the three 1x1 transforms (the
// shared one with its BatchNorm folded in) and the sigmoid run as loops over the H + W
// descriptor positions in the same call, optionally with the block's BatchNorm + ReLU6 computed
// where x is read (a "prologue"). The backward of the gating recomputes from x and the gates
// instead of keeping x * a_w. The loops are in coord_att_kernels.h; this file checks inputs, allocates, splits the
// work over ATen's threads and binds the operators for Python.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "coord_att_dispatch.h"

namespace coordatt {
namespace {

using at::Tensor;

// Bumped when Python must refuse an older build (coordatt_mm/ops/__init__.py).
constexpr int64_t kAbiVersion = 2;

// Elements per parallel task: below this, a task costs more to schedule than to run.
constexpr int64_t kGrainElements = 16384;

int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, elements_per_item));
}

// ---- which kernels: the widest the CPU has (AVX-512, else AVX2 + FMA), unless set ----

bool cpu_has_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return built_with_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return built_with_avx512() && cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool cpu_has(const std::string& cap) {
  return cap == "default" || (cap == "avx2" && cpu_has_avx2()) ||
         (cap == "avx512" && cpu_has_avx512());
}

// the best the CPU has; COORDATT_KERNELS=default|avx2 asks for less (an unknown or
// unsupported value is ignored)
std::string initial_capability() {
  const char* env = std::getenv("COORDATT_KERNELS");
  if (env != nullptr && cpu_has(env)) return env;
  return cpu_has_avx512() ? "avx512" : cpu_has_avx2() ? "avx2" : "default";
}

std::string& capability_setting() {
  static std::string cap = initial_capability();
  return cap;
}

// Each table is built on first use only: building one runs code of its instruction set.
template <typename T, Kernels<T> (*make)()>
const Kernels<T>& table() {
  static const Kernels<T> t = make();
  return t;
}

template <typename T>
Kernels<T> kernels() {
  const std::string& cap = capability_setting();
  return cap == "avx512" ? table<T, kernels_avx512<T>>()
         : cap == "avx2" ? table<T, kernels_avx2<T>>()
                         : table<T, kernels_default<T>>();
}

// the kernel builds this CPU runs, narrowest first
std::vector<std::string> capabilities() {
  std::vector<std::string> out;
  for (const char* cap : {"default", "avx2", "avx512"})
    if (cpu_has(cap)) out.emplace_back(cap);
  return out;
}

std::string capability() { return capability_setting(); }

// Chooses the kernels ("default", "avx2" or "avx512"; the last two only where the CPU has
// them) and returns the previous choice: lets tests and benchmarks compare the builds.
std::string set_capability(const std::string& cap) {
  TORCH_CHECK(cap == "default" || cap == "avx2" || cap == "avx512",
              "set_capability: expected 'default', 'avx2' or 'avx512', got '", cap, "'");
  TORCH_CHECK(cpu_has(cap), "set_capability: this CPU or build has no ", cap, " kernels");
  std::string previous = capability_setting();
  capability_setting() = cap;
  return previous;
}

// ---- layouts and checks ----

// channels-last and not also NCHW-contiguous (with C == 1 or H == W == 1 they coincide)
bool is_nhwc(const Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::MemoryFormat format_of(bool nhwc) {
  return nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

void check_input(const Tensor& x, const char* op) {
  TORCH_CHECK(x.device().is_cpu(), op, ": x must be a CPU tensor, got ", x.device());
  TORCH_CHECK(x.dim() == 4, op, ": x must be N,C,H,W, got ", x.dim(), " dims");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": empty spatial size");
}

void check_like(const Tensor& t, const Tensor& x, at::IntArrayRef shape, const char* op,
                const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == x.scalar_type(), op, ": ", name,
              " must be a CPU tensor of x's dtype");
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ",
              t.sizes());
}

// (N, C, K) gates or descriptors in the storage the kernels read: (N, C, K) for NCHW,
// (N, K, C) for channels-last
Tensor kernel_storage(const Tensor& d, bool nhwc) {
  return nhwc ? d.transpose(1, 2).contiguous() : d.contiguous();
}

// f(n, k0, k1) over the (image, k) pairs 0..N*K, split into parallel tasks
template <typename F>
void for_image_ranges(int64_t N, int64_t K, int64_t grain, const F& f) {
  at::parallel_for(0, N * K, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin / K; n * K < end; ++n) {
      const int64_t k0 = std::max<int64_t>(begin - n * K, 0);
      const int64_t k1 = std::min<int64_t>(end - n * K, K);
      if (k0 < k1) f(n, k0, k1);
    }
  });
}

// f(n, c0, c1) over channel ranges of every image, split at multiples of 16 channels so that
// no two tasks write into the same 64-byte cache line of a channels-last row
template <typename F>
void for_channel_ranges(int64_t N, int64_t C, int64_t grain, const F& f) {
  constexpr int64_t kLine = 16;
  const int64_t blocks = (C + kLine - 1) / kLine;
  for_image_ranges(N, blocks, std::max<int64_t>(1, grain / kLine),
                   [&](int64_t n, int64_t k0, int64_t k1) {
                     f(n, k0 * kLine, std::min(k1 * kLine, C));
                   });
}

// ---- pooling ----

// NCHW: plane p's descriptors at z + p * zs, the column means from offset woff;
// channels-last: z is (N, H + W, C)
template <typename T>
void pool_into(const Tensor& x, bool nhwc, T* z, int64_t zs, int64_t woff,
               Prologue<T> pro = {}) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const T* px = x.data_ptr<T>();
  const Kernels<T> k = kernels<T>();
  if (nhwc) {
    for_channel_ranges(N, C, grain_for(H * W), [&](int64_t n, int64_t c0, int64_t c1) {
      k.pool_nhwc(px, z, n, c0, c1, C, H, W, pro);
    });
  } else {
    at::parallel_for(0, N * C, grain_for(H * W), [&](int64_t p0, int64_t p1) {
      k.pool_nchw(px, z, p0, p1, C, H, W, zs, woff, pro);
    });
  }
}

// Row means then column means of x: (N, C, H + W), the concatenated descriptors of CA.
Tensor coord_pool(const Tensor& input) {
  check_input(input, "coord_pool");
  const bool nhwc = is_nhwc(input);
  const Tensor x = nhwc ? input : input.contiguous();
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) + x.size(3);
  Tensor z = nhwc ? at::empty({N, L, C}, x.options()) : at::empty({N, C, L}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "coord_pool",
                             [&] { pool_into<scalar_t>(x, nhwc, z.data_ptr<scalar_t>(), L, x.size(2)); });
  return nhwc ? z.transpose(1, 2) : z;
}

Tensor coord_pool_backward(const Tensor& grad_z, const Tensor& like) {
  check_input(like, "coord_pool_backward");
  const bool nhwc = is_nhwc(like);
  const int64_t N = like.size(0), C = like.size(1), H = like.size(2), W = like.size(3);
  check_like(grad_z, like, {N, C, H + W}, "coord_pool_backward", "grad_z");
  const Tensor gz = kernel_storage(grad_z, nhwc);
  Tensor gx = at::empty(like.sizes(), like.options().memory_format(format_of(nhwc)));
  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "coord_pool_backward", [&] {
    const Kernels<scalar_t> k = kernels<scalar_t>();
    const scalar_t* pz = gz.data_ptr<scalar_t>();
    scalar_t* out = gx.data_ptr<scalar_t>();
    if (nhwc) {
      at::parallel_for(0, N * H, grain_for(W * C), [&](int64_t r0, int64_t r1) {
        k.pool_backward_nhwc(pz, out, r0, r1, C, H, W);
      });
    } else {
      at::parallel_for(0, N * C, grain_for(H * W), [&](int64_t p0, int64_t p1) {
        k.pool_backward_nchw(pz, out, p0, p1, H, W);
      });
    }
  });
  return gx;
}

// ---- gating ----

// ah/aw: gates in kernel storage; sh/sw: their per-plane (NCHW) or per-image (NHWC) strides
template <typename T>
void gate_into(const Tensor& x, bool nhwc, const T* ah, const T* aw, int64_t sh, int64_t sw,
               T* out, Prologue<T> pro = {}) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const T* px = x.data_ptr<T>();
  const Kernels<T> k = kernels<T>();
  if (nhwc) {
    at::parallel_for(0, N * H, grain_for(W * C), [&](int64_t r0, int64_t r1) {
      k.gate_nhwc(px, ah, aw, out, r0, r1, C, H, W, sh, sw, pro);
    });
  } else {
    at::parallel_for(0, N * C, grain_for(H * W), [&](int64_t p0, int64_t p1) {
      k.gate_nchw(px, ah, aw, out, p0, p1, C, H, W, sh, sw, pro);
    });
  }
}

// x (contiguous in its format) and where to write: x itself, or a new tensor of its format
Tensor gate_target(const Tensor& x, bool nhwc, bool inplace) {
  return inplace ? x : at::empty(x.sizes(), x.options().memory_format(format_of(nhwc)));
}

// x as the kernels read it: contiguous in its layout (a strided x is copied, and then
// gated into a new tensor even when inplace was asked for)
Tensor prepared_input(const Tensor& input, bool nhwc, bool& inplace) {
  if (nhwc || input.is_contiguous()) return input;
  inplace = false;
  return input.contiguous();
}

// x * a_w * a_h with a_h (N, C, H) and a_w (N, C, W).
Tensor coord_gate(const Tensor& input, const Tensor& a_h, const Tensor& a_w, bool inplace) {
  check_input(input, "coord_gate");
  const bool nhwc = is_nhwc(input);
  const Tensor x = prepared_input(input, nhwc, inplace);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_like(a_h, x, {N, C, H}, "coord_gate", "a_h");
  check_like(a_w, x, {N, C, W}, "coord_gate", "a_w");
  const Tensor ah = kernel_storage(a_h, nhwc), aw = kernel_storage(a_w, nhwc);
  Tensor out = gate_target(x, nhwc, inplace);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "coord_gate", [&] {
    gate_into<scalar_t>(x, nhwc, ah.data_ptr<scalar_t>(), aw.data_ptr<scalar_t>(),
                        nhwc ? H * C : H, nhwc ? W * C : W, out.data_ptr<scalar_t>());
  });
  return out;
}

// (grad_x, grad_a_h, grad_a_w) of coord_gate, in one pass over grad_out and x
std::tuple<Tensor, Tensor, Tensor> coord_gate_backward(const Tensor& grad_out, const Tensor& x,
                                                       const Tensor& a_h, const Tensor& a_w) {
  check_input(x, "coord_gate_backward");
  const bool nhwc = is_nhwc(x);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_like(grad_out, x, x.sizes(), "coord_gate_backward", "grad_out");
  check_like(a_h, x, {N, C, H}, "coord_gate_backward", "a_h");
  check_like(a_w, x, {N, C, W}, "coord_gate_backward", "a_w");
  const auto fmt = format_of(nhwc);
  const Tensor g = grad_out.contiguous(fmt), xc = x.contiguous(fmt);
  const Tensor ah = kernel_storage(a_h, nhwc), aw = kernel_storage(a_w, nhwc);
  Tensor gx = at::empty(x.sizes(), x.options().memory_format(fmt));
  Tensor gah = at::empty_like(ah), gaw = at::empty_like(aw);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "coord_gate_backward", [&] {
    const Kernels<scalar_t> k = kernels<scalar_t>();
    const scalar_t *pg = g.data_ptr<scalar_t>(), *px = xc.data_ptr<scalar_t>();
    const scalar_t *ph = ah.data_ptr<scalar_t>(), *pw = aw.data_ptr<scalar_t>();
    scalar_t *ogx = gx.data_ptr<scalar_t>(), *ogh = gah.data_ptr<scalar_t>(),
             *ogw = gaw.data_ptr<scalar_t>();
    if (nhwc) {
      // split over channels: every task sums its column gradients over all rows
      for_channel_ranges(N, C, grain_for(H * W), [&](int64_t n, int64_t c0, int64_t c1) {
        k.gate_backward_nhwc(pg, px, ph, pw, ogx, ogh, ogw, n, c0, c1, C, H, W);
      });
    } else {
      at::parallel_for(0, N * C, grain_for(H * W), [&](int64_t p0, int64_t p1) {
        k.gate_backward_nchw(pg, px, ph, pw, ogx, ogh, ogw, p0, p1, H, W);
      });
    }
  });
  if (nhwc) return {gx, gah.transpose(1, 2), gaw.transpose(1, 2)};
  return {gx, gah, gaw};
}

// ---- the whole eval-mode layer ----

// codes of the activation after the shared transform (the kernels' activate_tile)
enum Activation : int64_t { kIdentity = 0, kReLU = 1, kReLU6 = 2, kHSwish = 3 };

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Eval-mode CA: w1 (mip, C) and b1 (mip) the shared 1x1 conv with the BatchNorm folded in,
// wth/wtw (mip, C) the transposed weights of the H and W convs, bh/bw (C) their biases. With
// pro_scale/pro_shift (C), CA applies to pro_act(x * pro_scale + pro_shift) (0 none, 1 ReLU,
// 2 ReLU6), computed where the pooling and the gating read x: the eval BatchNorm and
// activation before CA then cost no pass of their own.
Tensor coord_att_eval(const Tensor& input, const Tensor& w1, const Tensor& b1,
                      const Tensor& wth, const Tensor& bh, const Tensor& wtw, const Tensor& bw,
                      int64_t act, bool inplace, const c10::optional<Tensor>& pro_scale,
                      const c10::optional<Tensor>& pro_shift, int64_t pro_act) {
  check_input(input, "coord_att_eval");
  TORCH_CHECK(act >= kIdentity && act <= kHSwish, "coord_att_eval: unknown activation code ",
              act);
  const bool nhwc = is_nhwc(input);
  const Tensor x = prepared_input(input, nhwc, inplace);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = H + W;
  const int64_t mip = w1.size(0);
  for (const auto& [t, name] :
       {std::pair<const Tensor&, const char*>{w1, "w1"}, {wth, "wth"}, {wtw, "wtw"}}) {
    check_like(t, x, {mip, C}, "coord_att_eval", name);
    TORCH_CHECK(t.is_contiguous(), "coord_att_eval: ", name, " must be contiguous");
  }
  check_like(b1, x, {mip}, "coord_att_eval", "b1");
  check_like(bh, x, {C}, "coord_att_eval", "bh");
  check_like(bw, x, {C}, "coord_att_eval", "bw");
  const Tensor b1c = b1.contiguous(), bhc = bh.contiguous(), bwc = bw.contiguous();
  TORCH_CHECK(pro_scale.has_value() == pro_shift.has_value(),
              "coord_att_eval: pro_scale and pro_shift go together");
  TORCH_CHECK(pro_act >= 0 && pro_act <= 2, "coord_att_eval: unknown prologue activation ",
              pro_act);
  Tensor pro_s, pro_b;
  if (pro_scale.has_value()) {
    check_like(*pro_scale, x, {C}, "coord_att_eval", "pro_scale");
    check_like(*pro_shift, x, {C}, "coord_att_eval", "pro_shift");
    pro_s = pro_scale->contiguous(), pro_b = pro_shift->contiguous();
  }
  // NCHW: a plane's descriptors in one row of Lp values, the H part padded to Hp and the W
  // part to Wp (multiples of the kernels' tile); its gates are made and used plane by plane.
  // Channels-last: descriptors z and gates a (N, L, C).
  const int64_t tile = 16;  // the kernels' kTile
  const int64_t Hp = round_up(H, tile), Lp = Hp + round_up(W, tile);
  const int64_t zn = nhwc ? L * C : C * Lp, yn = mip * (nhwc ? L : Lp);
  Tensor buf = at::empty({N * (zn + yn + (nhwc ? zn : 0))}, x.options());
  Tensor out = gate_target(x, nhwc, inplace);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "coord_att_eval", [&] {
    using T = scalar_t;
    const Kernels<T> k = kernels<T>();
    T* pz = buf.data_ptr<T>();
    T* py = pz + N * zn;
    T* pa = py + N * yn;
    const T *pw1 = w1.data_ptr<T>(), *pb1 = b1c.data_ptr<T>();
    const T *pwh = wth.data_ptr<T>(), *pbh = bhc.data_ptr<T>();
    const T *pww = wtw.data_ptr<T>(), *pbw = bwc.data_ptr<T>();
    const T* px = x.data_ptr<T>();
    T* po = out.data_ptr<T>();
    Prologue<T> pro;
    if (pro_s.defined()) pro = {pro_s.data_ptr<T>(), pro_b.data_ptr<T>(), pro_act};
    if (nhwc) {
      pool_into<T>(x, true, pz, 0, 0, pro);
      at::parallel_for(0, N * L, grain_for(C * mip), [&](int64_t r0, int64_t r1) {
        k.reduce_lc(pz, pw1, pb1, py, r0, r1, C, mip, act);
      });
      at::parallel_for(0, N * L, grain_for(C * mip), [&](int64_t r0, int64_t r1) {
        k.expand_lc(py, pwh, pbh, pww, pbw, pa, r0, r1, C, H, L, mip);
      });
      gate_into<T>(x, true, pa, pa + H * C, L * C, L * C, po, pro);
    } else {
      pool_into<T>(x, false, pz, Lp, Hp, pro);
      for_image_ranges(N, mip, grain_for(C * Lp), [&](int64_t n, int64_t m0, int64_t m1) {
        k.reduce_cl(pz, pw1, pb1, py, n, m0, m1, C, Lp, mip, act);
      });
      at::parallel_for(0, N * C, grain_for(H * W + mip * Lp), [&](int64_t p0, int64_t p1) {
        k.expand_gate_cl(px, py, pwh, pbh, pww, pbw, po, p0, p1, C, H, W, Hp, Lp, mip, pro);
      });
    }
  });
  return out;
}

}  // namespace
}  // namespace coordatt

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace coordatt;
  m.doc() = "Fused Coordinate Attention kernels for the CPU (coordatt_mm.ops)";
  m.attr("ABI_VERSION") = kAbiVersion;
  m.def("capability", &capability, "the kernels in use: 'avx512', 'avx2' or 'default'");
  m.def("capabilities", &capabilities, "the kernel builds this CPU runs, narrowest first");
  m.def("set_capability", &set_capability, "choose the kernels; returns the previous choice",
        py::arg("capability"));
  m.def("coord_pool", &coord_pool, "row means, then column means: (N, C, H + W)",
        py::arg("x"));
  m.def("coord_pool_backward", &coord_pool_backward, "gradient of coord_pool",
        py::arg("grad_z"), py::arg("like"));
  m.def("coord_gate", &coord_gate, "x * a_w * a_h in one pass", py::arg("x"), py::arg("a_h"),
        py::arg("a_w"), py::arg("inplace") = false);
  m.def("coord_gate_backward", &coord_gate_backward, "gradients of coord_gate in one pass",
        py::arg("grad_out"), py::arg("x"), py::arg("a_h"), py::arg("a_w"));
  m.def("coord_att_eval", &coord_att_eval, "eval-mode Coordinate Attention, BN folded",
        py::arg("x"), py::arg("w1"), py::arg("b1"), py::arg("wth"), py::arg("bh"),
        py::arg("wtw"), py::arg("bw"), py::arg("act"), py::arg("inplace") = false,
        py::arg("pro_scale") = py::none(), py::arg("pro_shift") = py::none(),
        py::arg("pro_act") = 0);
}
