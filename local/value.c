/* local/value.c: the immutable, reference-counted sc_value.
 *
 * A value is one allocation: a small header, the key when the local store
 * created it (first, so a lookup's key compare reads the header's cache
 * line), the bytes, and a NUL so text values can be used as C strings.
 * Keeping the key and the store's per-entry fields in the value's own
 * allocation is what keeps the local tier near one malloc per entry
 * (header 24 bytes: _Static_assert below); a value handed out by
 * sc__local_get stays valid after the store drops it because the
 * allocation is only freed with its last reference. The accessors also
 * take the pin handles that the local hits of sc_get, sc_get_ex,
 * sc_get_many, sc_fetch and sc_fetch_batch hand out (odd pointers to a
 * thread's pin that holds the value: reclaim.c), and so does sc__value_ref
 * (a batch hands one value to several of its keys); the store refuses to
 * hold one.
 */
#include <stdlib.h>
#include <string.h>

#include "local/local.h"

_Static_assert(sizeof(sc_value) == 24, "the entry header is 24 bytes");

sc_value *sc__value_alloc(size_t len, size_t klen)
{
    /* The 24-byte header holds a 16-bit key length and a 32-bit value
     * length; the options cap keys at 65535 bytes and values at 512 MiB. */
    if (klen > UINT16_MAX || len > UINT32_MAX)
        return NULL;
    sc_value *v = malloc(sizeof(sc_value) + klen + len + 1);
    if (!v)
        return NULL;
    atomic_init(&v->refs, 1);
    v->klen = (uint16_t)klen;
    atomic_init(&v->exp_hi, 0);
    v->len = (uint32_t)len;
    atomic_init(&v->exp_lo, 0);
    v->version = 0;
    v->data[klen + len] = '\0';
    return v;
}

sc_value *sc__value_new_keyed(const char *key, size_t klen, const void *data, size_t len, uint64_t version)
{
    if ((len && !data) || (klen && !key))
        return NULL;
    sc_value *v = sc__value_alloc(len, klen);
    if (!v)
        return NULL;
    if (klen)
        memcpy(v->data, key, klen);
    if (len)
        memcpy(sc__value_bytes(v), data, len);
    v->version = version;
    return v;
}

sc_value *sc__value_new(const void *data, size_t len, uint64_t version)
{
    return sc__value_new_keyed(NULL, 0, data, len, version);
}

sc_value *sc__value_ref(sc_value *v)
{
    if ((uintptr_t)v & 1) {
        /* A second hold of the pin, released through the same pointer. */
        atomic_fetch_add_explicit(&sc__pin_of(v)->extra, 1, memory_order_relaxed);
        return v;
    }
    /* Taking a reference needs no ordering: the caller already holds one, so
     * the value cannot be freed concurrently. */
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

/* The value a caller's pointer stands for: itself, or the value its pin
 * holds (sc__pin). */
static inline const sc_value *held(const sc_value *v)
{
    if ((uintptr_t)v & 1)
        return atomic_load_explicit(&sc__pin_of(v)->v, memory_order_relaxed);
    return v;
}

SC_EXPORT const void *sc_value_data(const sc_value *v)
{
    return v ? sc__value_bytes(held(v)) : NULL;
}

SC_EXPORT size_t sc_value_size(const sc_value *v)
{
    return v ? held(v)->len : 0;
}

SC_EXPORT uint64_t sc_value_version(const sc_value *v)
{
    return v ? held(v)->version : 0;
}

SC_EXPORT sc_value *sc_value_ref(const sc_value *v)
{
    return v ? sc__value_ref((sc_value *)v) : NULL;
}

SC_EXPORT void sc_value_release(sc_value *v)
{
    if (!v)
        return;
    if ((uintptr_t)v & 1) {
        sc__unpin(sc__pin_of(v));
        return;
    }
    /* acq_rel so every other holder's reads of the bytes happen before the
     * free. (A release decrement plus an acquire fence would do, but
     * ThreadSanitizer does not model fences; on x86 both are one locked
     * instruction.) */
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        free(v);
}
