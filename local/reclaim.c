/* local/reclaim.c: grace periods, so lock-free readers of the index never
 * see memory freed under them.
 *
 * A reader brackets its lookup with sc__read_lock / sc__read_unlock, which
 * only store the current epoch into the thread's own record and clear it
 * again (plain stores on x86, no fence, no shared line written). A writer
 * that unpublishes an object (an entry replaced, evicted or removed, a table
 * replaced by a resize) tags it with the epoch it saw after the unpublish and
 * may free it once every reader still inside a section started in a later
 * epoch: such a reader cannot have found the object.
 *
 * Why readers need no fence: a reader stores its epoch and then loads slots,
 * and x86 (like every weak machine) may let those loads pass the store. The
 * writer, before scanning the readers, runs membarrier(PRIVATE_EXPEDITED),
 * which executes a full barrier on every CPU running one of our threads: a
 * reader that stored its epoch before that barrier is seen by the scan, and
 * one that had not yet stored it loads slots after the barrier and so sees
 * the unpublish. This is the "memb" flavour of userspace RCU. Where the
 * system call is missing, readers fall back to a full fence after the store.
 *
 * Why not liburcu or Concurrency Kit: the prototypes (shared/perf) measured
 * a urcu-memb read section at about 1 ns and ck_epoch at about 6 ns; this
 * file is the urcu-memb algorithm in some 150 lines with the same read-side
 * cost (two TLS stores), so the library gains no dependency, and it is
 * written in C11 atomics that ThreadSanitizer understands: the reader's
 * release store that ends a section and the scanner's acquire load order
 * every read of an object before its free, with no suppression file.
 */
/*
 * Pins: local hits that hold their value without writing it. A reference
 * count is a line every reader of the entry writes, which two threads
 * reading the same entries pull from each other (bench/localhit: two
 * threads did 0.8x the gets of one at 10k keys). So a local hit of sc_get,
 * sc_get_ex, sc_get_many, sc_fetch or sc_fetch_batch (sc__local_get_str,
 * sc__local_get_pinned) stores the value in one of its thread's SC__PINS
 * pins instead, and hands out the pin's address with the low bit set;
 * sc_value_data and the other accessors follow it to the value, and
 * sc_value_release clears the pin: plain stores to lines of the thread's
 * own record. A release on another thread writes that pin just the same
 * (the handle says which pin), and a record whose pins are still held
 * outlives its thread. sc_value_ref (and sc__value_ref, which a batch uses
 * for a key asked twice) on a pin counts in the pin's extra, which only
 * threads that pass one pinned value around ever write. A batch pins
 * while the thread has pins free and counts references after that.
 *
 * Pins add no work to a read section's writers but one: a value a store
 * retires is released (sc__value_unstore) only if no pin holds it. The
 * pins are collected in the same walk of the registry that computes the
 * grace bound, so a pin stored in a section that has ended is seen (the
 * section's release store of ctr orders it), and a value retired before
 * the bound can no longer be pinned by anyone. A pinned one waits in a
 * process-wide list that every later collection sweeps (a writer's poll
 * of its limbo, a store's free), still holding the store's reference; when
 * that list cannot grow (out of memory) it stays in its shard's limbo and
 * a later poll tries again. Values that never were in a store, and every
 * get beyond a thread's SC__PINS held values, keep plain reference counts.
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "local/local.h"

__thread struct sc__thread *sc__self __attribute__((tls_model("initial-exec")));
/* Each on its own cache line: readers load both on every section, and
 * nothing else written nearby may make them miss. */
_Alignas(64) _Atomic uint64_t sc__epoch = 1;
_Alignas(64) int sc__memb;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sc__thread *registry;
static uint64_t walks; /* walks of the registry that collected pins (reg_mu) */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;

static long membarrier(int cmd)
{
#ifdef __NR_membarrier
    return syscall(__NR_membarrier, cmd, 0, 0);
#else
    (void)cmd;
    return -1;
#endif
}

static int holds_pins(const struct sc__thread *t)
{
    for (unsigned i = 0; i < SC__PINS; i++)
        if (atomic_load_explicit(&t->pins[i].v, memory_order_acquire))
            return 1;
    return 0;
}

/* Under reg_mu. */
static void unregister(struct sc__thread *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

/* A thread's record leaves the registry when the thread exits; it is never
 * inside a read section then. A record whose pins another thread still
 * holds stays, marked dead, until a walk finds them all released. */
static void thread_exit(void *arg)
{
    struct sc__thread *t = arg;
    sc__self = NULL;
    pthread_mutex_lock(&reg_mu);
    if (holds_pins(t))
        t->dead = 1;
    else
        unregister(t);
    pthread_mutex_unlock(&reg_mu);
}

static void init_once(void)
{
    pthread_key_create(&exit_key, thread_exit);
    sc__memb = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

void sc__reclaim_init(void)
{
    pthread_once(&once, init_once);
}

struct sc__thread *sc__thread_register(void)
{
    sc__reclaim_init();
    /* A record of its own cache line(s): its thread writes ctr on every
     * read section, and a neighbour's record on the same line would make
     * two readers write one line. */
    size_t size = (sizeof(struct sc__thread) + 63) / 64 * 64;
    struct sc__thread *t = aligned_alloc(64, size);
    if (!t)
        abort(); /* a reader cannot run without its record; 384 bytes once per thread */
    memset(t, 0, size);
    atomic_init(&t->ctr, 0);
    pthread_setspecific(exit_key, t);
    pthread_mutex_lock(&reg_mu);
    t->next = registry;
    if (registry)
        registry->prev = t;
    registry = t;
    pthread_mutex_unlock(&reg_mu);
    sc__self = t;
    return t;
}

uint64_t sc__retire_tag(void)
{
    /* The unpublishing store must be visible before the epoch is read: a
     * tag read too early could be older than the epoch a reader that still
     * sees the object announces. */
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&sc__epoch, memory_order_seq_cst);
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const sc_value *const *)a, y = (uintptr_t) * (const sc_value *const *)b;
    return (x > y) - (x < y);
}

/* Under reg_mu, after the record's ctr was read (acquire): a pin stored in
 * a read section that has ended is visible. On out of memory the pins
 * collected so far are kept and *pins is marked incomplete (cap 0), which
 * makes every value count as pinned: nothing is freed early. */
static void collect(sc__pins *pins, struct sc__thread *t)
{
    for (unsigned i = 0; i < SC__PINS && pins->cap; i++) {
        const sc_value *v = atomic_load_explicit(&t->pins[i].v, memory_order_acquire);
        if (!v)
            continue;
        if (pins->n == pins->cap) {
            size_t cap = pins->cap * 2;
            const sc_value **g =
                pins->v == pins->inline_v ? malloc(cap * sizeof *g) : realloc(pins->v, cap * sizeof *g);
            if (!g) {
                pins->cap = 0;
                return;
            }
            if (pins->v == pins->inline_v)
                memcpy(g, pins->inline_v, sizeof pins->inline_v);
            pins->v = g;
            pins->cap = cap;
        }
        pins->v[pins->n++] = v;
    }
}

/* One walk of the registry: the lowest epoch a reader announces, and the
 * pins (pins may be NULL). A dead record whose pins are all released goes
 * here. */
static uint64_t walk(sc__pins *pins, uint64_t min)
{
    if (pins) {
        pins->n = 0;
        pins->cap = sizeof pins->inline_v / sizeof pins->inline_v[0];
        pins->v = pins->inline_v;
    }
    pthread_mutex_lock(&reg_mu);
    if (pins)
        pins->walk = ++walks;
    for (struct sc__thread *t = registry, *next; t; t = next) {
        next = t->next;
        uint64_t c = atomic_load_explicit(&t->ctr, memory_order_acquire);
        if (c && c < min)
            min = c;
        if (t->dead && !holds_pins(t))
            unregister(t);
        else if (pins)
            collect(pins, t);
    }
    pthread_mutex_unlock(&reg_mu);
    if (pins && pins->n > 1)
        qsort(pins->v, pins->n, sizeof *pins->v, by_address);
    return min;
}

uint64_t sc__grace_bound_pins(sc__pins *pins)
{
    uint64_t e = atomic_fetch_add_explicit(&sc__epoch, 1, memory_order_seq_cst) + 1;
    if (sc__memb)
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    return walk(pins, e);
}

uint64_t sc__grace_bound(void)
{
    return sc__grace_bound_pins(NULL);
}

void sc__pins_collect(sc__pins *pins)
{
    walk(pins, 0);
}

void sc__pins_done(sc__pins *pins)
{
    if (pins->v != pins->inline_v)
        free(pins->v);
    pins->v = pins->inline_v;
    pins->n = 0;
}

static int pinned(const sc__pins *pins, const sc_value *v)
{
    if (!pins->cap)
        return 1;
    return pins->n && bsearch(&v, pins->v, pins->n, sizeof *pins->v, by_address) != NULL;
}

/* Values a store let go of while a pin held them: each still has the
 * store's reference, dropped by a later collection that finds it
 * unpinned. Later: no pin of the value can appear after the walk that
 * found it pinned (it was retired before that walk's bound), so a walk
 * after it sees every pin still held; an earlier walk (a collection that
 * a concurrent writer of another store overtook) may have missed one. */
struct waiting {
    sc_value *v;
    uint64_t walk; /* the walk that found it pinned */
};

static pthread_mutex_t wait_mu = PTHREAD_MUTEX_INITIALIZER;
static struct waiting *waiting;
static size_t nwaiting, cwaiting;

int sc__value_unstore(sc_value *v, const sc__pins *pins)
{
    if (!pinned(pins, v)) {
        sc_value_release(v);
        return 0;
    }
    pthread_mutex_lock(&wait_mu);
    if (nwaiting == cwaiting) {
        size_t cap = cwaiting ? cwaiting * 2 : 16;
        struct waiting *w = realloc(waiting, cap * sizeof *w);
        if (!w) {
            pthread_mutex_unlock(&wait_mu);
            return -1; /* the caller keeps it */
        }
        waiting = w;
        cwaiting = cap;
    }
    waiting[nwaiting++] = (struct waiting){v, pins->walk};
    pthread_mutex_unlock(&wait_mu);
    return 0;
}

void sc__pins_sweep(const sc__pins *pins)
{
    size_t k = 0;
    pthread_mutex_lock(&wait_mu);
    for (size_t i = 0; i < nwaiting; i++) {
        if (waiting[i].walk < pins->walk && !pinned(pins, waiting[i].v))
            sc_value_release(waiting[i].v);
        else
            waiting[k++] = waiting[i];
    }
    nwaiting = k;
    pthread_mutex_unlock(&wait_mu);
}

size_t sc__pins_waiting(void)
{
    pthread_mutex_lock(&wait_mu);
    size_t n = nwaiting;
    pthread_mutex_unlock(&wait_mu);
    return n;
}

/* sc__unpin of a pin sc_value_ref gave more holds: each but the last
 * takes one back. */
void sc__unpin_shared(struct sc__pin *p)
{
    if (atomic_fetch_sub_explicit(&p->extra, 1, memory_order_acq_rel) != 0)
        return;
    atomic_store_explicit(&p->extra, 0, memory_order_relaxed);
    atomic_store_explicit(&p->v, NULL, memory_order_release);
}

void sc__synchronize(uint64_t tag)
{
    while (sc__grace_bound() <= tag)
        sched_yield();
}
