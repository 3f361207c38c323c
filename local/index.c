/* local/index.c: the index of a shard (see store.c for the design): the
 * tables of tagged 8-byte slots that never move under a reader,
 * the writers' lookup, rebuilds published with one pointer store, and the
 * grace periods after which what left a table is freed.
 */
#include <stdlib.h>
#include <string.h>

#include "local/shard.h"

struct table *sc__table_new(uint32_t size)
{
    size_t bytes = sizeof(struct table) + (size_t)size * sizeof(uint64_t) + ((size_t)size + NQ) * sizeof(struct link);
    struct table *t = malloc(bytes);
    if (!t)
        return NULL;
    t->size = size;
    for (uint32_t i = 0; i < size; i++)
        atomic_init(&t->slots[i], EMPTY);
    t->links = (struct link *)(void *)&t->slots[size];
    for (uint32_t q = 0; q < NQ; q++) {
        t->links[size + q].prev = (size + q) | (q << QSHIFT);
        t->links[size + q].next = size + q;
    }
    return t;
}

/* A writer's lookup (under the shard lock): the key's slot or UINT32_MAX,
 * and in *free_pos the first reusable slot on its probe path. */
uint32_t sc__table_find(const struct table *t, const char *key, size_t klen, uint64_t hash, uint32_t *free_pos)
{
    uint32_t n = t->size, i = home(hash, n), fr = UINT32_MAX;
    uint64_t tag = tag_of(hash);
    for (;;) {
        uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (sl == EMPTY) {
            if (fr == UINT32_MAX)
                fr = i;
            break;
        }
        if (sl == TOMB) {
            if (fr == UINT32_MAX)
                fr = i;
        } else if ((sl >> 48) == tag) {
            const sc_value *v = entry_of(sl);
            if (v->klen == klen && (klen == 0 || memcmp(v->data, key, klen) == 0))
                return i;
        }
        if (++i == n)
            i = 0;
    }
    if (free_pos)
        *free_pos = fr;
    return UINT32_MAX;
}

int sc__free_retired(uintptr_t p, const sc__pins *pins)
{
    unsigned kind = (unsigned)(p & 3);
    void *o = (void *)(p & ~(uintptr_t)3);
    if (kind == R_VALUE)
        return sc__value_unstore(o, pins);
    struct table *t = o;
    if (kind == R_TABLE_ENTRIES) {
        int kept = 0;
        for (uint32_t i = 0; i < t->size; i++) {
            uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (sl <= TOMB)
                continue;
            /* No reader has this table any more: an entry let go is
             * cleared, so a later call lets go only of what is left. */
            if (sc__value_unstore(entry_of(sl), pins) == 0)
                atomic_store_explicit(&t->slots[i], EMPTY, memory_order_relaxed);
            else
                kept = 1;
        }
        if (kept)
            return -1;
    }
    free(t);
    return 0;
}

/* Frees what no reader can still see (a value a reader pinned waits for
 * its pins: sc__value_unstore). While a reader keeps a section open (a
 * slow sc_get_with callback) the limbo grows; the next poll then waits
 * for twice as many objects, so writers never poll on every call. */
static void reclaim(struct shard *s)
{
    sc__pins pins;
    uint64_t bound = sc__grace_bound_pins(&pins);
    size_t k = 0;
    for (size_t i = 0; i < s->nlimbo; i++)
        if (s->limbo[i].tag >= bound || sc__free_retired(s->limbo[i].p, &pins) != 0)
            s->limbo[k++] = s->limbo[i]; /* still seen, or pinned with no room to wait */
    s->nlimbo = k;
    s->poll_at = k * 2 > LIMBO_MIN ? k * 2 : LIMBO_MIN;
    sc__pins_sweep(&pins);
    sc__pins_done(&pins);
}

void sc__retire(struct shard *s, void *p, unsigned kind)
{
    uint64_t tag = sc__retire_tag();
    if (s->nlimbo == s->climbo) {
        size_t cap = s->climbo ? s->climbo * 2 : LIMBO_MIN;
        struct retired *r = realloc(s->limbo, cap * sizeof *r);
        if (!r) {
            /* No room to defer: wait out the grace period here. A pinned
             * value with no room to wait either stays allocated (a leak
             * under out of memory, never a free under a reader). */
            sc__pins pins;
            sc__synchronize(tag);
            sc__pins_collect(&pins);
            (void)sc__free_retired((uintptr_t)p | kind, &pins);
            sc__pins_done(&pins);
            return;
        }
        s->limbo = r;
        s->climbo = cap;
    }
    s->limbo[s->nlimbo++] = (struct retired){(uintptr_t)p | kind, tag};
    /* A table is large: hand it back at once if no reader holds it. */
    if (s->nlimbo >= s->poll_at || kind != R_VALUE)
        reclaim(s);
}

/* Rebuilds the shard's table at size: live entries in list order, no
 * tombstones. Published with one pointer store; the old table is freed
 * after a grace period (its entries stay: the new table holds them). */
static int rebuild(struct shard *s, uint32_t size)
{
    struct table *o = s->t, *t = sc__table_new(size);
    if (!t)
        return -1;
    for (unsigned q = 0; q < NQ; q++) {
        uint32_t os = o->size + q;
        for (uint32_t i = o->links[os].next; i != os; i = o->links[i].next) {
            uint64_t sl = atomic_load_explicit(&o->slots[i], memory_order_relaxed);
            uint64_t h = hash_of(entry_of(sl));
            uint32_t j = home(h, size);
            while (atomic_load_explicit(&t->slots[j], memory_order_relaxed) != EMPTY)
                j = j + 1 == size ? 0 : j + 1;
            atomic_store_explicit(&t->slots[j], tag_of(h) << 48 | (sl & PTR_MASK), memory_order_relaxed);
            push_mru(t->links, size, q, j);
        }
    }
    atomic_store_explicit(&s->tab, t, memory_order_release);
    s->t = t;
    s->tombs = 0;
    sc__retire(s, o, R_TABLE);
    return 0;
}

/* How full a shard's table may get, by the number of entries it is to hold.
 * A shard of up to SMALL_ENTRIES runs sparse: sized at 1/3 load when it is
 * rebuilt, rebuilt again past 1/2. Such a table (at most 4097 slots, 64 KiB
 * of slots and links) sits in the CPU's caches, where a hit pays for every
 * slot its probe reads (a quarter of an sc_get_with hit at 10k keys,
 * bench/localhit; docs/benchmarks.md, issue 11, ninth pass), and running it
 * sparse costs a shard at most 34 KiB. A larger one runs at 70% to 7/8: a
 * hit there pays for cache misses, which a longer probe within the same line
 * hardly adds to, and memory per entry is what counts (issue 11: <= 64 B per
 * entry). Chosen by the entries, not by the table's size: a table rebuilt
 * dense just past the line would otherwise be judged sparse, and rebuilt at
 * every put. */
#define SMALL_ENTRIES 1365u

static int over_load(uint64_t entries, uint64_t used, uint64_t size)
{
    return entries <= SMALL_ENTRIES ? used * 2 > size : used * 8 > size * 7;
}

static uint64_t size_for(uint64_t entries)
{
    return entries <= SMALL_ENTRIES ? entries * 3 + 2 : entries * 10 / 7 + 2;
}

/* Makes room for one more entry: live entries plus tombstones stay under
 * the load above (at least one slot stays EMPTY, as readers need). A
 * rebuild sizes the table at the low end of it (growing by 1.25x to 1.5x
 * steps as the shard fills), capped at that size for the entry bound, so a
 * full shard that keeps evicting gathers tombstones up to the high end
 * between two rebuilds (a few slot moves per put). */
int sc__reserve(struct shard *s)
{
    uint64_t need = (uint64_t)s->count + 1;
    if (!over_load(need, need + s->tombs, s->t->size))
        return 0;
    uint64_t size = size_for(need);
    if (size < 16)
        size = 16;
    if (s->max_n) {
        /* The bound's size plus 16 slots (size_for's 2 and 14), so even a
         * small bounded shard gathers a few tombstones between rebuilds. */
        uint64_t full = size_for(s->max_n) + 14;
        if (size > full && !over_load(need + 1, need + 1, full))
            size = full;
    }
    if (size > MAX_SLOTS)
        return -1;
    return rebuild(s, (uint32_t)size);
}
