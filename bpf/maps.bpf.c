// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The one definition of every map; the hook files declare them extern. */
#define MG_DEFINE_MAPS
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
