/* The history checker's recording and checks (issue 7, docs/protocol.md),
 * shared by test/check_history.c (one Redis, injected faults) and the
 * failover tests of test/check_cluster.c and test/check_sentinel.c.
 *
 * Recording: hist_worker_main drives one pod with random get / set /
 * set_invalidate / delete / (rarely) clear over keys k0..k<nkeys-1>, with
 * unique values "n<ns>.p<pod>.t<thread>.c<counter>", and records every call
 * (start, return, status, value, version) in its hist.
 * Checking, once writers stopped and Redis is reachable:
 *   hist_converge    (a) every pod's local tier and sc_get equal Redis;
 *   hist_analyse     (b) monotonic reads, (c) read-your-writes, (d) every
 *                    value served was written to that namespace;
 * see the header comment of test/check_history.c for the exact rules.
 * Windows (hctx.win) mark where Redis' state may legitimately have moved
 * back (a restart, a reloaded snapshot, a killed master whose replica lacked
 * the last writes): reads are only compared within one era between them.
 * Violations are collected in a vlist, never asserted here: the caller
 * prints them with the run's description and asserts none.
 */
#ifndef SC_TEST_HISTORY_H
#define SC_TEST_HISTORY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#define HIST_MAX_PODS 8
#define HIST_MAX_WIN 256
/* After Redis comes back from a fault window, pods need a moment to see the
 * dead connections; reads that overlap [window start, end + GRACE] are not
 * compared with reads on either side (see hist_era). */
#define HIST_GRACE_NS (1500ull * 1000000ull)

enum { OP_GET, OP_SET, OP_SETINV, OP_DEL, OP_CLEAR };

uint64_t now_ns(void);
uint64_t rnd(uint64_t *s); /* splitmix64 */
unsigned rnd_below(uint64_t *s, unsigned n);
void key_name(char *buf, size_t n, int k); /* "k<k>" */

/* ------------------------------------------------------------ violations */

/* Violations, grouped by kind (the text before the first ':'); a few
 * examples of each are kept, all are counted. */
#define VLIST_KINDS 16
#define VLIST_EXAMPLES 6
typedef struct vlist {
    size_t total;
    int nkinds;
    struct {
        char name[48];
        size_t count;
        int nmsg;
        char *msg[VLIST_EXAMPLES];
    } k[VLIST_KINDS];
} vlist;

void viol(vlist *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vlist_free(vlist *v);
/* One line per kind with its examples, each prefixed with tag. */
void vlist_print(const vlist *v, FILE *fp, const char *tag);

/* Runs body with m set to every kept message. */
#define VLIST_EACH(v, m, body)                                 \
    for (int vk_ = 0; vk_ < (v)->nkinds; vk_++)                \
        for (int vm_ = 0; vm_ < (v)->k[vk_].nmsg; vm_++) {     \
            const char *m = (v)->k[vk_].msg[vm_];              \
            body;                                              \
        }

/* --------------------------------------------------------------- history */

typedef struct hrec {
    uint64_t ts, te;   /* CLOCK_MONOTONIC ns: call start and return */
    uint64_t version;  /* get with SC_OK: sc_value_version; a write: its
                          version if the pod's tier showed it right after */
    uint8_t op, pod, thr, key;
    int32_t status;    /* sc_status */
    int32_t unwritten; /* analysis: a get that returned a value never written
                          to its namespace (left out of (b) and (c)) */
    char val[32];      /* written value, or the value a get returned */
} hrec;

typedef struct hist {
    hrec *r;
    size_t n, cap;
} hist;

void hist_push(hist *h, const hrec *r);
int is_forged_value(const char *v); /* check_history's forged events carry "FORGED.<n>" */

/* A window where Redis' state may have moved back (kind: the caller's). */
typedef struct fwin {
    uint64_t s, e;
    int kind;
} fwin;

/* What the checks need to know of a run. */
typedef struct hctx {
    int npods;                   /* every pod, of either namespace */
    int nsi[HIST_MAX_PODS];      /* the namespace (0 or 1) of each pod */
    char ns[2][40];
    int nkeys;
    uint64_t seed;               /* the workers' random streams derive from it */
    uint64_t t0;                 /* times in messages are ms from t0 */
    fwin win[HIST_MAX_WIN];
    int nwin;
    /* A new connection to the Redis holding ns' keys (on a cluster: the
     * master owning the {ns} slot), NULL when none answers. */
    redisContext *(*connect)(const char *ns, void *ud);
    void *connect_ud;
} hctx;

void hist_add_window(hctx *x, uint64_t s, uint64_t e, int kind);
double hist_rel_ms(const hctx *x, uint64_t t);
/* The era (number of windows, plus grace, ended before s) of a call over
 * [s, e], or -1 when it overlaps a window: such a read is compared with none. */
int hist_era(const hctx *x, uint64_t s, uint64_t e);

/* --------------------------------------------------------- Redis' truth */

/* The Redis name of a namespace's key: the protocol's layout, {ns}:<suffix>.
 * Everything the checker reads or writes in Redis goes through here. */
void rkey(char *buf, size_t n, const char *ns, const char *suffix);

typedef struct truth {
    int present;
    char val[64];
    uint64_t version;
} truth;

/* What Redis holds for ns/key ({ns}:k:<key>, less tombstones and versions
 * below the clear floor). 0, or -1 when Redis did not answer. */
int truth_get(redisContext *rc, const char *ns, const char *key, truth *t);

/* ------------------------------------------------------------ recording */

/* One recording thread on a pod, until end_ns or until *stop (optional). */
typedef struct hist_worker {
    sc_cache *c;
    const hctx *x;
    int pod, thr;
    uint64_t end_ns;
    atomic_int *stop;
    hist h;
} hist_worker;

void *hist_worker_main(void *w);

/* ---------------------------------------------------------------- checks */

/* Quiescence and check (a) for the pods given (their pod numbers in idx):
 * each must report synced within 10 s, then after a settle time (1 s) its
 * tier must equal Redis within 3 s, and then each sc_get too. */
void hist_converge(const hctx *x, sc_cache **pods, const int *idx, int n, vlist *V);

typedef struct hist_stats {
    size_t ops, gets_ok, mono_checked, ryw_checked, ryw_unknown, forged_seen;
} hist_stats;

/* Checks (b), (c) and (d) on the recorded histories (nh of them; marks the
 * unwritten gets in place). */
void hist_analyse(const hctx *x, hist *hs, int nh, vlist *V, hist_stats *so);

/* ------------------------------------------------ beside a failover test */

/* The recorder and checks around a test's own fault: npods pods of one
 * namespace, two recording threads on the first pod and one on each other,
 * recording until hist_run_finish. */
#define HIST_RUN_THREADS (HIST_MAX_PODS + 1)
typedef struct hist_run {
    hctx x;
    sc_cache *pods[HIST_MAX_PODS];
    hist_worker w[HIST_RUN_THREADS];
    pthread_t th[HIST_RUN_THREADS];
    int nw;
    atomic_int stop;
} hist_run;

/* Opens npods (2..HIST_MAX_PODS) pods with the options o (their ns and
 * pod_id are set here: ns, then "h0", "h1", ...) and starts the threads;
 * connect finds the Redis holding ns. seed picks the operations. Returns 0,
 * or -1 with sc_open's message in err (nothing left open). */
int hist_run_start(hist_run *h, const sc_options *o, const char *ns, int npods, uint64_t seed,
                   redisContext *(*connect)(const char *ns, void *ud), void *ud, char *err, size_t errlen);

/* Stops the threads and checks: (a) to (d) as above, and that every call
 * returned within max_call_ms with SC_OK, SC_NOT_FOUND, SC_ERR_TIMEOUT or
 * SC_ERR_REMOTE (a clear failure, never a hang). Prints a summary line (tag
 * first) and the violations on stderr, closes the pods and frees the
 * histories. Returns the number of violations; the first one goes to first. */
size_t hist_run_finish(hist_run *h, unsigned max_call_ms, const char *tag, char *first, size_t firstlen);

#endif
