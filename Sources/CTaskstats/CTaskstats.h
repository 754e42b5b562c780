// The kernel's taskstats interface (Documentation/accounting/taskstats.rst): generic netlink
// messages and `struct taskstats`, whose layout (8-byte aligned fields) Swift takes from here
// rather than from hand-counted offsets.
#ifndef CTASKSTATS_H
#define CTASKSTATS_H

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>

#endif
