/* local/clock.c: the millisecond clock behind local TTLs.
 *
 * CLOCK_MONOTONIC_COARSE is read from the vDSO without touching the hardware
 * counter, so a get can check expiry for a few nanoseconds; its resolution
 * (one scheduler tick, ~1-4 ms) is far below any TTL worth setting.
 */
#include <time.h>

#include "local/local.h"

uint64_t sc__now_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
#endif
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
