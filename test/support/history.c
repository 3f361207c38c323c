/* The history checker's recording and checks: see history.h. */
#include "history.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SETTLE_MS 1000   /* after every pod is synced: 20 heartbeats at 50 ms */
#define CONVERGE_MS 3000 /* then a pod still differing from Redis is a violation */
#define SYNC_WAIT_MS 10000

/* ---------------------------------------------------------------- basics */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

unsigned rnd_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

void key_name(char *buf, size_t n, int k)
{
    snprintf(buf, n, "k%d", k);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ violations */

void viol(vlist *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = strdup("(out of memory)");
    va_end(ap);
    v->total++;
    char name[48];
    snprintf(name, sizeof name, "%s", s);
    name[strcspn(name, ":")] = '\0';
    int i = 0;
    while (i < v->nkinds && strcmp(v->k[i].name, name) != 0)
        i++;
    if (i == v->nkinds) {
        if (v->nkinds == VLIST_KINDS)
            i--; /* lumped into the last kind */
        else
            snprintf(v->k[v->nkinds++].name, sizeof v->k[i].name, "%s", name);
    }
    v->k[i].count++;
    if (v->k[i].nmsg < VLIST_EXAMPLES)
        v->k[i].msg[v->k[i].nmsg++] = s;
    else
        free(s);
}

void vlist_free(vlist *v)
{
    VLIST_EACH(v, m, free((char *)m));
    memset(v, 0, sizeof *v);
}

void vlist_print(const vlist *v, FILE *fp, const char *tag)
{
    for (int k = 0; k < v->nkinds; k++) {
        fprintf(fp, "[%s] %zu x %s, e.g.:\n", tag, v->k[k].count, v->k[k].name);
        for (int m = 0; m < v->k[k].nmsg; m++)
            fprintf(fp, "[%s]   %s\n", tag, v->k[k].msg[m]);
    }
}

/* --------------------------------------------------------------- history */

void hist_push(hist *h, const hrec *r)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->r = realloc(h->r, h->cap * sizeof *h->r);
    }
    h->r[h->n++] = *r;
}

int is_forged_value(const char *v)
{
    return strncmp(v, "FORGED.", 7) == 0;
}

/* ---------------------------------------------------------- Redis's truth */

void rkey(char *buf, size_t n, const char *ns, const char *suffix)
{
    snprintf(buf, n, "{%s}:%s", ns, suffix);
}

/* What Redis holds for ns/key: the hash {ns}:k:<key>; no hash, a hash
 * without `value` (a tombstone) or a version below the namespace floor
 * ({ns}:meta floor, set by clear) is absent. Returns 0, or -1 when Redis did
 * not answer. */
int truth_get(redisContext *rc, const char *ns, const char *key, truth *t)
{
    char k[200], suffix[80];
    memset(t, 0, sizeof *t);
    snprintf(suffix, sizeof suffix, "k:%s", key);
    rkey(k, sizeof k, ns, suffix);
    redisReply *rep = redisCommand(rc, "HMGET %s value version", k);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    redisReply *val = rep->element[0], *ver = rep->element[1];
    if (val->type == REDIS_REPLY_STRING) {
        t->present = 1;
        snprintf(t->val, sizeof t->val, "%.*s", (int)val->len, val->str);
        t->version = ver->type == REDIS_REPLY_STRING ? strtoull(ver->str, NULL, 10) : 0;
    }
    freeReplyObject(rep);
    rkey(k, sizeof k, ns, "meta");
    rep = redisCommand(rc, "HGET %s floor", k);
    if (!rep)
        return -1;
    if (rep->type == REDIS_REPLY_STRING && t->present && t->version < strtoull(rep->str, NULL, 10))
        t->present = 0;
    freeReplyObject(rep);
    return 0;
}

/* ------------------------------------------------------------ recording */

void *hist_worker_main(void *p)
{
    hist_worker *w = p;
    const hctx *x = w->x;
    uint64_t rng = x->seed * 1000003u + (uint64_t)w->pod * 131 + (uint64_t)w->thr * 7 + 1;
    int nsi = x->nsi[w->pod];
    unsigned counter = 0;
    while (now_ns() < w->end_ns && !(w->stop && atomic_load(w->stop))) {
        hrec r;
        memset(&r, 0, sizeof r);
        r.pod = (uint8_t)w->pod;
        r.thr = (uint8_t)w->thr;
        r.key = (uint8_t)rnd_below(&rng, (unsigned)x->nkeys);
        char key[16];
        key_name(key, sizeof key, r.key);
        unsigned pick = rnd_below(&rng, 10000);
        r.op = pick < 4500 ? OP_GET : pick < 7000 ? OP_SET : pick < 8200 ? OP_SETINV : pick < 9996 ? OP_DEL : OP_CLEAR;
        if (r.op == OP_SET || r.op == OP_SETINV)
            snprintf(r.val, sizeof r.val, "n%d.p%d.t%d.c%u", nsi, w->pod, w->thr, ++counter);
        sc_status s = SC_OK;
        sc_value *v = NULL;
        r.ts = now_ns();
        switch (r.op) {
        case OP_GET:
            s = sc_get(w->c, key, &v);
            break;
        case OP_SET:
            s = sc_set(w->c, key, r.val, strlen(r.val), 0);
            break;
        case OP_SETINV:
            s = sc_set_invalidate(w->c, key, r.val, strlen(r.val), 0);
            break;
        case OP_DEL:
            s = sc_delete(w->c, key);
            break;
        case OP_CLEAR:
            s = sc_clear(w->c);
            break;
        }
        r.te = now_ns();
        r.status = (int32_t)s;
        if (v) {
            size_t n = sc_value_size(v);
            if (n > sizeof r.val - 1)
                n = sizeof r.val - 1;
            memcpy(r.val, sc_value_data(v), n);
            r.val[n] = '\0';
            r.version = sc_value_version(v);
            sc_value_release(v);
        }
        /* Learn the write's version where the pod's own tier shows it
         * (another thread's newer value may already be there: then not). */
        if ((r.op == OP_SET || r.op == OP_SETINV) && s == SC_OK && sc_peek(w->c, key, &v) == SC_OK) {
            if (sc_value_size(v) == strlen(r.val) && memcmp(sc_value_data(v), r.val, strlen(r.val)) == 0)
                r.version = sc_value_version(v);
            sc_value_release(v);
        }
        hist_push(&w->h, &r);
        if (rnd_below(&rng, 4) == 0)
            usleep(rnd_below(&rng, 400));
    }
    return NULL;
}

static int pod_synced(sc_cache *c)
{
    sc_stats st;
    sc_stats_get(c, &st);
    return st.synced == 1;
}

static long long mono_ms(void)
{
    return (long long)(now_ns() / 1000000);
}

void hist_converge(const hctx *x, sc_cache **pods, const int *idx, int n, vlist *V)
{
    long long t0 = mono_ms();
    for (int i = 0; i < n; i++) {
        while (!pod_synced(pods[i]) && mono_ms() - t0 < SYNC_WAIT_MS)
            sleep_ms(5);
        if (!pod_synced(pods[i])) {
            /* What the pod went through, for a failure seen only under load. */
            sc_stats st;
            sc_stats_get(pods[i], &st);
            viol(V,
                 "sync: pod %d never reported synced within %d ms of quiescence (reconnects %llu, heartbeat misses "
                 "%llu, Redis errors %llu, gaps %llu, flushes %llu, epoch changes %llu, last_seq %llu)",
                 idx[i], SYNC_WAIT_MS, (unsigned long long)st.reconnects, (unsigned long long)st.heartbeat_misses,
                 (unsigned long long)st.remote_errors, (unsigned long long)st.gaps, (unsigned long long)st.flushes,
                 (unsigned long long)st.epoch_changes, (unsigned long long)st.last_seq);
        }
    }
    sleep_ms(SETTLE_MS);
    /* One connection per namespace, to where its keys live now. */
    redisContext *rcs[2] = {NULL, NULL};
    for (int nsi = 0; nsi < 2; nsi++) {
        int used = 0;
        for (int i = 0; i < n; i++)
            used |= x->nsi[idx[i]] == nsi;
        for (int i = 0; used && i < 50 && !rcs[nsi]; i++) {
            rcs[nsi] = x->connect(x->ns[nsi], x->connect_ud);
            if (!rcs[nsi])
                sleep_ms(100);
        }
        if (used && !rcs[nsi]) {
            viol(V, "checker: cannot connect to Redis for the convergence check of %s", x->ns[nsi]);
            if (rcs[0])
                redisFree(rcs[0]);
            return;
        }
    }
    /* Poll: a pod that is merely late converges; one that keeps a value Redis
     * does not hold keeps it. Only the last round (clean, or at the deadline)
     * reports. */
    long long deadline = mono_ms() + CONVERGE_MS;
    size_t peek_bad = 0;
    for (;;) {
        int final = mono_ms() >= deadline;
        vlist scratch = {0};
        vlist *out = final ? V : &scratch;
        size_t before = out->total;
        for (int i = 0; i < n; i++) {
            const char *ns = x->ns[x->nsi[idx[i]]];
            redisContext *rc = rcs[x->nsi[idx[i]]];
            for (int k = 0; k < x->nkeys; k++) {
                char key[16];
                key_name(key, sizeof key, k);
                truth t;
                if (truth_get(rc, ns, key, &t) != 0) {
                    viol(out, "checker: Redis did not answer the truth read of %s", key);
                    continue;
                }
                sc_value *v = NULL;
                sc_status s = sc_peek(pods[i], key, &v);
                if (s == SC_NOT_FOUND)
                    continue;
                if (s != SC_OK) {
                    viol(out, "convergence: pod %d key %s: sc_peek failed: %s", idx[i], key, sc_strerror(s));
                    continue;
                }
                char got[64];
                snprintf(got, sizeof got, "%.*s", (int)(sc_value_size(v) < 63 ? sc_value_size(v) : 63),
                         (const char *)sc_value_data(v));
                uint64_t gv = sc_value_version(v);
                sc_value_release(v);
                if (!t.present)
                    viol(out,
                         "convergence: pod %d key %s: local tier holds %s (version %" PRIu64
                         ") %d ms after quiescence settled, Redis holds nothing",
                         idx[i], key, got, gv, CONVERGE_MS);
                else if (strcmp(got, t.val) != 0 || gv != t.version)
                    viol(out,
                         "convergence: pod %d key %s: local tier holds %s (version %" PRIu64
                         ") %d ms after quiescence settled, Redis holds %s (version %" PRIu64 ")",
                         idx[i], key, got, gv, CONVERGE_MS, t.val, t.version);
            }
        }
        peek_bad = out->total - before;
        vlist_free(&scratch);
        if (final)
            break;
        if (peek_bad == 0)
            break;
        sleep_ms(100);
    }
    /* With the tier equal to Redis, a get must be too (once; only reported
     * where the peek check found nothing, to say something new). */
    if (peek_bad == 0) {
        for (int i = 0; i < n; i++) {
            const char *ns = x->ns[x->nsi[idx[i]]];
            redisContext *rc = rcs[x->nsi[idx[i]]];
            for (int k = 0; k < x->nkeys; k++) {
                char key[16];
                key_name(key, sizeof key, k);
                truth t;
                if (truth_get(rc, ns, key, &t) != 0) {
                    viol(V, "checker: Redis did not answer the truth read of %s", key);
                    continue;
                }
                sc_value *v = NULL;
                sc_status s = sc_get(pods[i], key, &v);
                if (s == SC_NOT_FOUND && !t.present)
                    continue;
                if (s == SC_OK && t.present && sc_value_size(v) == strlen(t.val) &&
                    memcmp(sc_value_data(v), t.val, strlen(t.val)) == 0 && sc_value_version(v) == t.version) {
                    sc_value_release(v);
                    continue;
                }
                char got[64] = "<none>";
                uint64_t gv = 0;
                if (s == SC_OK) {
                    snprintf(got, sizeof got, "%.*s",
                             (int)(sc_value_size(v) < 63 ? sc_value_size(v) : 63), (const char *)sc_value_data(v));
                    gv = sc_value_version(v);
                    sc_value_release(v);
                } else if (s != SC_NOT_FOUND) {
                    snprintf(got, sizeof got, "<%s>", sc_strerror(s));
                }
                viol(V,
                     "convergence: pod %d key %s: sc_get after quiescence returns %s (version %" PRIu64
                     "), Redis holds %s (version %" PRIu64 ")",
                     idx[i], key, got, gv, t.present ? t.val : "<none>", t.version);
            }
        }
    }
    for (int nsi = 0; nsi < 2; nsi++)
        if (rcs[nsi])
            redisFree(rcs[nsi]);
}

/* ---------------------------------------------------------------- checks */

void hist_add_window(hctx *x, uint64_t s, uint64_t e, int kind)
{
    if (x->nwin < HIST_MAX_WIN)
        x->win[x->nwin++] = (fwin){s, e, kind};
}

/* Restart and rollback faults are the only ones that legitimately move
 * Redis' state back (data lost, or the counter reused after reloading an
 * older snapshot). A read overlapping such a window (plus HIST_GRACE_NS,
 * for pods to notice) is not compared with any other, and reads are only
 * compared within one era (between two windows). Returns the era, or -1 for
 * a tainted read. */
int hist_era(const hctx *x, uint64_t s, uint64_t e)
{
    int n = 0;
    for (int i = 0; i < x->nwin; i++) {
        uint64_t ws = x->win[i].s, we = x->win[i].e + HIST_GRACE_NS;
        if (s <= we && e >= ws)
            return -1;
        if (we < s)
            n++;
    }
    return n;
}

typedef struct obs {
    const char *val;
    uint64_t version;
} obs;

static int obs_cmp(const void *a, const void *b)
{
    return strcmp(((const obs *)a)->val, ((const obs *)b)->val);
}

/* The smallest version any get saw the (unique) value with; 0: unknown. */
static uint64_t version_of(const obs *o, size_t n, const char *val)
{
    obs key = {val, 0};
    const obs *hit = bsearch(&key, o, n, sizeof *o, obs_cmp);
    return hit ? hit->version : 0;
}

typedef struct ref {
    const hrec *r;
    int era;
} ref;

static int cmp_ref_te(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    if (x->r->key != y->r->key)
        return x->r->key - y->r->key;
    return x->r->te < y->r->te ? -1 : x->r->te > y->r->te;
}

static int cmp_ref_ts(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    if (x->r->key != y->r->key)
        return x->r->key - y->r->key;
    return x->r->ts < y->r->ts ? -1 : x->r->ts > y->r->ts;
}

double hist_rel_ms(const hctx *x, uint64_t t)
{
    return t >= x->t0 ? (double)(t - x->t0) / 1e6 : -(double)(x->t0 - t) / 1e6;
}

void hist_analyse(const hctx *x, hist *hs, int nh, vlist *V, hist_stats *so)
{
    size_t total = 0;
    for (int i = 0; i < nh; i++)
        total += hs[i].n;
    so->ops = total;

    /* Observations value -> smallest version; written values per namespace. */
    obs *o = malloc((2 * total + 1) * sizeof *o);
    obs *wr = malloc((total + 1) * sizeof *wr);
    size_t no = 0, nw = 0;
    for (int i = 0; i < nh; i++)
        for (size_t j = 0; j < hs[i].n; j++) {
            const hrec *r = &hs[i].r[j];
            if (r->op == OP_GET && r->status == SC_OK) {
                so->gets_ok++;
                o[no++] = (obs){r->val, r->version};
            }
            if ((r->op == OP_SET || r->op == OP_SETINV) && r->version)
                o[no++] = (obs){r->val, r->version};
            if (r->op == OP_SET || r->op == OP_SETINV)
                wr[nw++] = (obs){r->val, 0};
        }
    qsort(o, no, sizeof *o, obs_cmp);
    size_t u = 0;
    for (size_t i = 0; i < no; i++) {
        if (u && strcmp(o[u - 1].val, o[i].val) == 0) {
            if (o[i].version < o[u - 1].version)
                o[u - 1].version = o[i].version;
        } else {
            o[u++] = o[i];
        }
    }
    no = u;
    qsort(wr, nw, sizeof *wr, obs_cmp);

    /* (d) every value served was written to the pod's namespace. Such a
     * value is reported here once and left out of (b) and (c). */
    for (int i = 0; i < nh; i++)
        for (size_t j = 0; j < hs[i].n; j++) {
            const hrec *r = &hs[i].r[j];
            if (r->op != OP_GET || r->status != SC_OK)
                continue;
            if (is_forged_value(r->val)) {
                so->forged_seen++;
                continue;
            }
            char prefix[8];
            snprintf(prefix, sizeof prefix, "n%d.", x->nsi[r->pod]);
            obs key = {r->val, 0};
            if (strncmp(r->val, prefix, strlen(prefix)) != 0 || !bsearch(&key, wr, nw, sizeof *wr, obs_cmp)) {
                hs[i].r[j].unwritten = 1;
                viol(V,
                     "foreign value: pod %d (namespace %s) get k%d at +%.1f ms returned %s (version %" PRIu64
                     "), never written to that namespace",
                     r->pod, x->ns[x->nsi[r->pod]], r->key, hist_rel_ms(x, r->ts), r->val, r->version);
            }
        }

    /* (b) monotonic reads, per pod and key. */
    for (int pod = 0; pod < x->npods; pod++) {
        size_t n = 0;
        for (int i = 0; i < nh; i++)
            n += hs[i].n;
        ref *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
        size_t m = 0;
        for (int i = 0; i < nh; i++)
            for (size_t j = 0; j < hs[i].n; j++) {
                const hrec *r = &hs[i].r[j];
                if (r->pod != pod || r->op != OP_GET || r->status != SC_OK || is_forged_value(r->val) ||
                    r->unwritten)
                    continue;
                int e = hist_era(x, r->ts, r->te);
                if (e < 0)
                    continue;
                a[m] = b[m] = (ref){r, e};
                m++;
            }
        qsort(a, m, sizeof *a, cmp_ref_te);
        qsort(b, m, sizeof *b, cmp_ref_ts);
        /* For each read (by start), the highest version among the reads of
         * the same key and era that completed before it started. */
        size_t ia = 0;
        int cur_key = -1;
        uint64_t best[HIST_MAX_WIN + 1];
        const hrec *best_r[HIST_MAX_WIN + 1];
        for (size_t ib = 0; ib < m; ib++) {
            const hrec *g2 = b[ib].r;
            if (g2->key != cur_key) {
                cur_key = g2->key;
                memset(best, 0, sizeof best);
                memset(best_r, 0, sizeof best_r);
                while (ia < m && a[ia].r->key < cur_key)
                    ia++;
            }
            while (ia < m && a[ia].r->key == cur_key && a[ia].r->te < g2->ts) {
                int e = a[ia].era;
                if (a[ia].r->version > best[e]) {
                    best[e] = a[ia].r->version;
                    best_r[e] = a[ia].r;
                }
                ia++;
            }
            int e = b[ib].era;
            so->mono_checked += best_r[e] != NULL; /* an earlier read to compare with */
            if (best_r[e] && g2->version < best[e]) {
                const hrec *g1 = best_r[e];
                viol(V,
                         "monotonic reads: pod %d key k%d: get by thread %d [+%.1f, +%.1f ms] returned %s (version "
                         "%" PRIu64 ") after get by thread %d [+%.1f, +%.1f ms] returned %s (version %" PRIu64 ")",
                         pod, g2->key, g2->thr, hist_rel_ms(x, g2->ts), hist_rel_ms(x, g2->te), g2->val, g2->version,
                         g1->thr, hist_rel_ms(x, g1->ts), hist_rel_ms(x, g1->te), g1->val, g1->version);
            }
        }
        free(a);
        free(b);
    }

    /* Removal intervals per namespace (delete of a key, or clear), any
     * status: a failed one may still have run. */
    typedef struct rm {
        uint64_t ts, te;
        int key; /* -1: clear */
    } rm;
    rm *rms[2] = {malloc((total + 1) * sizeof(rm)), malloc((total + 1) * sizeof(rm))};
    size_t nrm[2] = {0, 0};
    for (int i = 0; i < nh; i++)
        for (size_t j = 0; j < hs[i].n; j++) {
            const hrec *r = &hs[i].r[j];
            int nsi = x->nsi[r->pod];
            if (r->op == OP_DEL || r->op == OP_CLEAR)
                rms[nsi][nrm[nsi]++] = (rm){r->ts, r->te, r->op == OP_CLEAR ? -1 : r->key};
        }

    /* (c) read-your-writes, per thread. */
    for (int i = 0; i < nh; i++) {
        long pending[256];
        for (int k = 0; k < 256; k++)
            pending[k] = -1;
        for (size_t j = 0; j < hs[i].n; j++) {
            const hrec *r = &hs[i].r[j];
            if (r->op == OP_CLEAR) {
                for (int k = 0; k < 256; k++)
                    pending[k] = -1;
                continue;
            }
            if (r->op != OP_GET) {
                pending[r->key] = (r->op == OP_SET || r->op == OP_SETINV) && r->status == SC_OK ? (long)j : -1;
                continue;
            }
            if (pending[r->key] < 0)
                continue;
            const hrec *w = &hs[i].r[pending[r->key]];
            pending[r->key] = -1;
            if (r->status != SC_OK && r->status != SC_NOT_FOUND)
                continue;
            if (hist_era(x, w->ts, r->te) < 0)
                continue;
            if (r->status == SC_OK && strcmp(r->val, w->val) == 0) {
                so->ryw_checked++;
                continue;
            }
            if (r->status == SC_OK && (is_forged_value(r->val) || r->unwritten))
                continue;
            int nsi = x->nsi[r->pod];
            if (r->status == SC_NOT_FOUND) {
                /* Fine if a delete of the key or a clear could have been
                 * ordered after the write in Redis. */
                int excused = 0;
                for (size_t m = 0; m < nrm[nsi] && !excused; m++)
                    if ((rms[nsi][m].key == -1 || rms[nsi][m].key == r->key) && rms[nsi][m].te >= w->ts &&
                        rms[nsi][m].ts <= r->te)
                        excused = 1;
                if (excused)
                    continue;
                so->ryw_checked++;
                viol(V,
                         "read-your-writes: pod %d thread %d: set k%d=%s returned OK at +%.1f ms, its next get "
                         "[+%.1f, +%.1f ms] returned NOT_FOUND and no delete or clear of the key ran after the write "
                         "started",
                         r->pod, r->thr, r->key, w->val, hist_rel_ms(x, w->te), hist_rel_ms(x, r->ts), hist_rel_ms(x, r->te));
                continue;
            }
            uint64_t vx = version_of(o, no, w->val);
            if (!vx) {
                so->ryw_unknown++;
                continue;
            }
            so->ryw_checked++;
            if (r->version <= vx) {
                viol(V,
                         "read-your-writes: pod %d thread %d: set k%d=%s (version %" PRIu64
                         ") returned OK at +%.1f ms, its next get [+%.1f, +%.1f ms] returned %s (version %" PRIu64
                         ")",
                         r->pod, r->thr, r->key, w->val, vx, hist_rel_ms(x, w->te), hist_rel_ms(x, r->ts), hist_rel_ms(x, r->te),
                         r->val, r->version);
            }
        }
    }
    free(rms[0]);
    free(rms[1]);
    free(o);
    free(wr);
}

/* ------------------------------------------------ beside a failover test */

int hist_run_start(hist_run *h, const sc_options *o, const char *ns, int npods, uint64_t seed,
                   redisContext *(*connect)(const char *ns, void *ud), void *ud, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (npods < 2 || npods > HIST_MAX_PODS) {
        snprintf(err, errlen, "hist_run_start: npods %d is not in 2..%d", npods, HIST_MAX_PODS);
        return -1;
    }
    hctx *x = &h->x;
    x->npods = npods;
    snprintf(x->ns[0], sizeof x->ns[0], "%s", ns);
    x->nkeys = 8;
    x->seed = seed;
    x->connect = connect;
    x->connect_ud = ud;
    for (int p = 0; p < npods; p++) {
        sc_options po = *o;
        char id[16];
        snprintf(id, sizeof id, "h%d", p);
        po.ns = x->ns[0];
        po.pod_id = id;
        if (sc_open(&po, &h->pods[p]) != SC_OK) {
            snprintf(err, errlen, "sc_open pod %d: %s", p, sc_errmsg(NULL));
            for (int q = 0; q < p; q++)
                sc_close(h->pods[q]);
            return -1;
        }
    }
    x->t0 = now_ns();
    for (int p = 0; p < npods; p++)
        for (int t = 0; t < (p == 0 ? 2 : 1); t++)
            h->w[h->nw++] = (hist_worker){h->pods[p], x, p, t, UINT64_MAX, &h->stop, {0}};
    for (int i = 0; i < h->nw; i++)
        pthread_create(&h->th[i], NULL, hist_worker_main, &h->w[i]);
    return 0;
}

size_t hist_run_finish(hist_run *h, unsigned max_call_ms, const char *tag, char *first, size_t firstlen)
{
    vlist violations = {0}, *V = &violations;
    atomic_store(&h->stop, 1);
    for (int i = 0; i < h->nw; i++)
        pthread_join(h->th[i], NULL);
    int idx[HIST_MAX_PODS];
    for (int p = 0; p < h->x.npods; p++)
        idx[p] = p;
    hist_converge(&h->x, h->pods, idx, h->x.npods, V);
    hist hs[HIST_RUN_THREADS];
    uint64_t longest = 0;
    size_t failed = 0;
    for (int i = 0; i < h->nw; i++) {
        hs[i] = h->w[i].h;
        for (size_t j = 0; j < hs[i].n; j++) {
            const hrec *r = &hs[i].r[j];
            if (r->te - r->ts > longest)
                longest = r->te - r->ts;
            if (r->te - r->ts > (uint64_t)max_call_ms * 1000000u)
                viol(V, "hang: pod %d thread %d: a call at +%.1f ms took %.1f ms (more than %u ms)", r->pod, r->thr,
                     hist_rel_ms(&h->x, r->ts), (double)(r->te - r->ts) / 1e6, max_call_ms);
            if (r->status == SC_OK || r->status == SC_NOT_FOUND)
                continue;
            failed++;
            if (r->status != SC_ERR_TIMEOUT && r->status != SC_ERR_REMOTE)
                viol(V, "status: pod %d thread %d: a call at +%.1f ms failed with %s", r->pod, r->thr,
                     hist_rel_ms(&h->x, r->ts), sc_strerror((sc_status)r->status));
        }
    }
    hist_stats so = {0};
    hist_analyse(&h->x, hs, h->nw, V, &so);
    fprintf(stderr,
            "%s: history of %d pods (seed %" PRIu64 "): %zu ops, %zu failed (timeout or Redis error), longest call "
            "%.0f ms, %zu gets with a value, %zu reads checked for monotonicity, %zu read-your-writes checked; "
            "violations: %zu\n",
            tag, h->x.npods, h->x.seed, so.ops, failed, (double)longest / 1e6, so.gets_ok, so.mono_checked,
            so.ryw_checked, V->total);
    vlist_print(V, stderr, tag);
    for (int p = 0; p < h->x.npods; p++)
        sc_close(h->pods[p]);
    for (int i = 0; i < h->nw; i++)
        free(hs[i].r);
    snprintf(first, firstlen, "%s", V->nkinds && V->k[0].nmsg ? V->k[0].msg[0] : "");
    size_t n = V->total;
    vlist_free(V);
    return n;
}
