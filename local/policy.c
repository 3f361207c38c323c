/* local/policy.c: what a shard keeps and evicts (see store.c for the
 * design): exact LRU, or W-TinyLFU with a hill-climbed window; the read
 * buffers' hits applied under the shard lock; eviction within the bounds.
 * Everything here runs under the shard lock (sc__drain_full takes it).
 */
#include <pthread.h>

#include "local/shard.h"

/* Caffeine refuses a candidate no more popular than the victim, but admits a
 * warm one (frequency >= 6) with probability 1/128 so an attacker cannot pin
 * a victim by flooding hash-colliding keys. */
#define WARM_FREQUENCY 6u

/* The protected segment overflows into probation, most recent end: demoted
 * entries get one more chance before facing admission. */
static void demote_protected(struct shard *s)
{
    while ((s->qn[Q_PROTECTED] > s->prot_n || s->qb[Q_PROTECTED] > s->prot_b) && s->qn[Q_PROTECTED] > 1)
        move_to(s, head_of(s->t, Q_PROTECTED), Q_PROBATION);
}

/* A hit (or an update): recency for LRU; frequency and SLRU promotion for
 * W-TinyLFU. A sampled hit counts once in the sketch, whatever it stands
 * for: sampling keeps the keys' relative frequencies. */
void sc__touch(struct shard *s, uint32_t i, uint32_t key32)
{
    struct table *t = s->t;
    struct link *L = t->links;
    if (!s->lfu) {
        if (prev_of(&L[t->size + Q_WINDOW]) != i) {
            unlink_node(L, i);
            push_mru(L, t->size, Q_WINDOW, i);
        }
        return;
    }
    sc__sketch_increment(&s->sketch, key32);
    unsigned q = queue_of(&L[i]);
    if (q == Q_PROBATION) {
        move_to(s, i, Q_PROTECTED);
        demote_protected(s);
    } else if (prev_of(&L[t->size + q]) != i) {
        unlink_node(L, i);
        push_mru(L, t->size, q, i);
    }
}

/* Applies a thread's buffered hits (under the shard lock). Records of
 * another table, or whose slot now holds another key, are skipped. */
static void apply_hits(struct shard *s, struct rbuf *b, unsigned weight)
{
    struct table *t = s->t;
    uint32_t n = b->n;
    b->n = 0;
    if (b->t != t || !s->policy)
        return;
    /* A buffer names its table by address, and a table allocated after
     * the buffer's was freed may have the same one: records are kept only
     * inside this table's slots (below, only where the slot still holds a
     * key with the record's tag), so a stale record can at worst touch
     * another entry, never memory outside the table. The records are
     * independent: prefetch their links and slots first so the misses of a
     * large table overlap. */
    uint32_t kept = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k];
        if (i >= t->size)
            continue;
        b->rec[kept++] = b->rec[k];
        __builtin_prefetch(&t->links[i], 1);
        __builtin_prefetch(&t->slots[i], 0);
        if (s->lfu)
            sc__sketch_prefetch(&s->sketch, (uint32_t)(b->rec[k] >> 32));
    }
    n = kept;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k];
        __builtin_prefetch(&t->links[prev_of(&t->links[i])], 1);
        __builtin_prefetch(&t->links[t->links[i].next], 1);
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k], key32 = (uint32_t)(b->rec[k] >> 32);
        uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (sl <= TOMB || (sl >> 48) != key32 >> 16)
            continue;
        sc__touch(s, i, key32);
        s->sample_hits += weight;
    }
}

void sc__drain_full(struct shard *s, struct rbuf *b)
{
    if (pthread_mutex_trylock(&s->mu) != 0) {
        b->n = 0; /* lossy: the shard is busy, these hits are dropped */
        return;
    }
    apply_hits(s, b, s->lfu ? atomic_load_explicit(&s->mask, memory_order_relaxed) + 1 : 1);
    pthread_mutex_unlock(&s->mu);
}

/* The writer's own thread's hits first, so its history is replayed in
 * order (under the shard lock). */
void sc__apply_own_hits(sc__local *l, struct shard *s)
{
    struct sc__thread *th = sc__self;
    if (!th || th->stores[0].id != l->id)
        return;
    struct tstate *st = th->stores[0].state;
    struct rbuf *b = &st->buf[s->index];
    if (b->n)
        apply_hits(s, b, s->lfu ? atomic_load_explicit(&s->mask, memory_order_relaxed) + 1 : 1);
}

static int admit(struct shard *s, uint32_t cand, uint32_t victim)
{
    unsigned fc = sc__sketch_frequency(&s->sketch, key32_of(hash_of(slot_entry(s->t, cand))));
    unsigned fv = sc__sketch_frequency(&s->sketch, key32_of(hash_of(slot_entry(s->t, victim))));
    if (fc > fv)
        return 1;
    if (fc < WARM_FREQUENCY)
        return 0;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (s->rng & 127) == 0;
}

/* The least recent entry of the first non-empty queue. */
static uint32_t oldest(const struct table *t)
{
    static const unsigned order[] = {Q_PROBATION, Q_PROTECTED, Q_WINDOW};
    for (unsigned k = 0; k < 3; k++) {
        uint32_t h = head_of(t, order[k]);
        if (h != UINT32_MAX)
            return h;
    }
    return UINT32_MAX;
}

/* Every entry that leaves the store (other than by being replaced with a
 * newer version) raises its stripe's floor to its version: the pod may have
 * served that version, so nothing older may come back for the key, even
 * after the entry is gone (a late event, a slow Redis read). */
void sc__drop(struct shard *s, uint32_t i)
{
    struct table *t = s->t;
    sc_value *v = slot_entry(t, i);
    if (v->version)
        raise_to(stripe_of(s->floors, hash_of(v)), v->version);
    unsigned q = queue_of(&t->links[i]);
    uint64_t w = weight_of(v);
    unlink_node(t->links, i);
    s->qn[q]--;
    s->qb[q] -= w;
    atomic_store_explicit(&t->slots[i], TOMB, memory_order_release);
    s->tombs++;
    s->count--;
    s->bytes -= w;
    sc__retire(s, v, R_VALUE);
}

static void evict(struct shard *s, uint32_t i)
{
    s->evictions++;
    sc__drop(s, i);
}

static inline int over_bounds(const struct shard *s)
{
    return (s->max_n && s->count > s->max_n) || (s->max_b && s->bytes > s->max_b);
}

static inline int over(const struct shard *s, unsigned q, uint64_t max_n, uint64_t max_b)
{
    return s->qn[q] > max_n || s->qb[q] > max_b;
}

/* W-TinyLFU samples hits (1 in 64 by default) while the shard is not near
 * full: no eviction is pending then, and the sketch and queues only need
 * the shape of the traffic. From 7/8 of a bound on, every hit is recorded,
 * because then each one can decide an eviction (sampling there costs up to
 * 4 points of hit ratio on the GLI and OLTP traces). Kept on the readers'
 * line, written only when it changes. */
void sc__update_mask(struct shard *s)
{
    if (!s->lfu)
        return;
    int full = (s->max_n && (uint64_t)s->count * 8 >= s->max_n * 7) || (s->max_b && s->bytes * 8 >= s->max_b * 7);
    unsigned m = full ? 0 : s->sample_mask;
    if (atomic_load_explicit(&s->mask, memory_order_relaxed) != m)
        atomic_store_explicit(&s->mask, m, memory_order_relaxed);
}

void sc__enforce_bounds(struct shard *s)
{
    struct table *t = s->t;
    if (!s->lfu) {
        while (over_bounds(s) && s->count)
            evict(s, head_of(t, Q_WINDOW));
        return;
    }
    /* Entries pushed out of the window line up at the recent end of
     * probation; each duels the least recent probation entry once. */
    uint32_t cand = UINT32_MAX;
    while (over(s, Q_WINDOW, s->win_n, s->win_b) && s->qn[Q_WINDOW] > 0) {
        uint32_t i = head_of(t, Q_WINDOW);
        move_to(s, i, Q_PROBATION);
        if (cand == UINT32_MAX)
            cand = i;
    }
    while (over_bounds(s) && s->count) {
        uint32_t victim = oldest(t);
        if (cand == UINT32_MAX || cand == victim) {
            if (cand == victim)
                cand = UINT32_MAX;
            evict(s, victim);
            continue;
        }
        uint32_t next = t->links[cand].next;
        if (next == t->size + Q_PROBATION)
            next = UINT32_MAX;
        if (admit(s, cand, victim))
            evict(s, victim);
        else
            evict(s, cand);
        cand = next;
    }
}

/* Window and protected limits from the window's share of the bound. */
void sc__set_limits(struct shard *s)
{
    if (s->max_n) {
        s->win_n = (uint64_t)(s->window * (double)s->max_n);
        if (s->win_n < 1)
            s->win_n = 1;
        if (s->win_n > s->max_n)
            s->win_n = s->max_n;
        s->prot_n = (s->max_n - s->win_n) * 4 / 5;
    }
    if (s->max_b) {
        s->win_b = (uint64_t)(s->window * (double)s->max_b);
        s->prot_b = (s->max_b - s->win_b) * 4 / 5;
    }
}

/* Requests per climber sample: Caffeine's 10 x capacity, but at most
 * 50000. A sample that long already measures the hit rate to a fraction of
 * a point, and a longer one leaves a large cache's window where it started
 * for most of a trace (OLTP at 10000-15000 entries: 1.2-2.4 points below
 * LRU with 10 x capacity, 1.3-1.9 above with the cap). */
uint64_t sc__climb_sample(size_t capacity)
{
    uint64_t n = 10 * (uint64_t)(capacity ? capacity : 1);
    return n < 50000 ? n : 50000;
}

/* Caffeine's hill climber. Each sample of sample_size requests (hits the
 * read buffers delivered, scaled by the sampling rate, plus inserts as
 * misses) compares its hit ratio with the last: if it did not fall, keep
 * stepping the window the same way, else turn around; steps decay while the
 * ratio is stable and restart at 6.25% of the bound when it jumps. A
 * growing window takes entries from probation (then protected) at once; a
 * shrinking one hands its oldest to probation through enforce_bounds. */
void sc__climb(struct shard *s)
{
    if (!s->climb)
        return;
    if ((s->max_n && (uint64_t)s->count * 2 < s->max_n) || (!s->max_n && s->bytes * 2 < s->max_b)) {
        /* Under half full nothing is evicted yet: as Caffeine waits for its
         * sketch, the climber starts once the shard is half full. */
        s->sample_hits = s->sample_misses = 0;
        return;
    }
    uint64_t requests = s->sample_hits + s->sample_misses;
    if (requests < s->sample_size)
        return;
    double rate = (double)s->sample_hits / (double)requests;
    double change = rate - s->prev_rate;
    double amount = change >= 0 ? s->step : -s->step;
    double next = (change >= CLIMB_RESTART || change <= -CLIMB_RESTART) ? (amount >= 0 ? CLIMB_STEP : -CLIMB_STEP)
                                                                         : CLIMB_DECAY * amount;
    s->prev_rate = rate;
    s->step = next;
    s->sample_hits = s->sample_misses = 0;
    double w = s->window + amount;
    double minw = s->max_n ? 1.0 / (double)s->max_n : 0.01;
    if (w < minw)
        w = minw;
    if (w > 1.0)
        w = 1.0;
    int grow = w > s->window;
    s->window = w;
    sc__set_limits(s);
    demote_protected(s);
    if (!grow)
        return;
    struct table *t = s->t;
    for (unsigned k = 0; k < TRANSFER_MAX && !over(s, Q_WINDOW, s->win_n, s->win_b); k++) {
        uint32_t i = head_of(t, Q_PROBATION);
        if (i == UINT32_MAX)
            i = head_of(t, Q_PROTECTED);
        if (i == UINT32_MAX)
            break;
        uint64_t w8 = weight_of(slot_entry(t, i));
        if (s->qn[Q_WINDOW] + 1 > s->win_n || s->qb[Q_WINDOW] + w8 > s->win_b)
            break;
        move_to(s, i, Q_WINDOW);
    }
}
