// The kernels for any CPU of the target architecture (the compiler's baseline instructions).
#define COORDATT_ISA isa_default
#include "coord_att_kernels.h"

namespace coordatt {
template <>
Kernels<float> kernels_default<float>() { return isa_default::kernel_table<float>(); }
template <>
Kernels<double> kernels_default<double>() { return isa_default::kernel_table<double>(); }
}  // namespace coordatt
