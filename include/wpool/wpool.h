/* wpool: the umbrella header. */
#ifndef WPOOL_WPOOL_H
#define WPOOL_WPOOL_H

#include "chan.h"
#include "ctx.h"
#include "error.h"
#include "metrics.h"
#include "pool.h"
#include "limit.h"
#include "retry.h"

#define WPOOL_VERSION "0.1.0"

#endif
