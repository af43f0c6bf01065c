// The standard headers of coord_att_kernels.h, on their own: the per-instruction-set files
// include them before their target pragma, so that no inline library code shared with other
// files is compiled for the wider instruction set.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>
