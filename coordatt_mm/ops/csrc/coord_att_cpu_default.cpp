// The kernels for any CPU of the target architecture (the compiler's baseline instructions).
#define COORDATT_ISA isa_default
#define COORDATT_TABLE kernels_default
#include "coord_att_kernels.h"
