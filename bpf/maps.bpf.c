// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The one definition of every map; the hook files declare them extern. */
#define MG_DEFINE_MAPS
#include "maps.bpf.h"
#include "dns.bpf.h" /* mg_dns_scratch, whose layout is the DNS reader's */

char LICENSE[] SEC("license") = "Dual BSD/GPL";
