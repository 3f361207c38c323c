/* Status strings, the per-thread error message behind sc_errmsg, and the
 * logging hook. Messages are thread-local so two threads failing on one cache
 * never see each other's detail. */
#include <stdio.h>
#include <string.h>

#include "lib/internal.h"

SC_EXPORT const char *sc_strerror(sc_status s)
{
    switch (s) {
#define SC__STATUS_TEXT(name, text) \
    case name:                      \
        return text;
        SC_STATUS_MAP(SC__STATUS_TEXT)
#undef SC__STATUS_TEXT
    }
    return "unknown status";
}

/* The cache the message belongs to; NULL for a failed sc_open. A
 * partition's message also belongs to the cache the user holds (tl_owner),
 * noted when it is recorded so that reading never follows a pointer. */
static _Thread_local const sc_cache *tl_cache;
static _Thread_local const sc_cache *tl_owner;
static _Thread_local int tl_set;
static _Thread_local char tl_msg[SC__ERRLEN];

sc_status sc__fail(const sc_cache *c, sc_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    tl_cache = c;
    tl_owner = c && c->outer ? c->outer : c;
    tl_set = 1;
    return s;
}

SC_EXPORT const char *sc_errmsg(const sc_cache *c)
{
    return tl_set && (tl_cache == c || tl_owner == c) ? tl_msg : "";
}

void sc__log(const sc_cache *c, sc_log_level level, const char *fmt, ...)
{
    if (!c->opt.log_fn || level > c->opt.log_level)
        return;
    char msg[SC__ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->opt.log_fn(level, msg, c->opt.log_ud);
}
