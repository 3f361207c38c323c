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

/* A thread's record leaves the registry when the thread exits; it is never
 * inside a read section then. */
static void thread_exit(void *arg)
{
    struct sc__thread *t = arg;
    pthread_mutex_lock(&reg_mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&reg_mu);
    sc__self = NULL;
    free(t);
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
        abort(); /* a reader cannot run without its record; 128 bytes once per thread */
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

uint64_t sc__grace_bound(void)
{
    uint64_t e = atomic_fetch_add_explicit(&sc__epoch, 1, memory_order_seq_cst) + 1;
    if (sc__memb)
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    uint64_t min = e;
    pthread_mutex_lock(&reg_mu);
    for (struct sc__thread *t = registry; t; t = t->next) {
        uint64_t c = atomic_load_explicit(&t->ctr, memory_order_acquire);
        if (c && c < min)
            min = c;
    }
    pthread_mutex_unlock(&reg_mu);
    return min;
}

void sc__synchronize(uint64_t tag)
{
    while (sc__grace_bound() <= tag)
        sched_yield();
}
