/* The apply rules for the namespace sequence (docs/protocol.md, rules 1-5).
 * Every write in a namespace takes the next version from one Redis counter
 * and publishes its event from the same script, so events reach the channel
 * in version order. A pod that has applied everything up to last_seq
 * therefore expects last_seq + 1 next; an older version is a duplicate or a
 * replay, a newer one means events were lost. Whether a version is believed
 * at all (Redis' counter must have reached it) is for the caller, which can
 * ask Redis; these comparisons are kept apart so they can be tested without
 * a loop or a Redis.
 */
#include "sync/sync.h"

#include <string.h>

void sc__seq_init(sc__seq *s, const char *ns, const char *pod_id, const char *inst)
{
    memset(s, 0, sizeof *s);
    s->ns = ns ? ns : "";
    s->pod_id = pod_id ? pod_id : "";
    s->inst = inst ? inst : "";
    s->ns_len = strlen(s->ns);
    s->pod_len = strlen(s->pod_id);
    s->inst_len = strlen(s->inst);
}

uint64_t sc__seq_digest(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

int sc__seq_foreign(const sc__seq *s, const sc__event *ev)
{
    return ev->has_ns && !same(ev->ns, ev->ns_len, s->ns, s->ns_len);
}

int sc__seq_own(const sc__seq *s, const sc__event *ev)
{
    /* An empty id is what an outside publisher sends when it names none, so
     * it never identifies this pod. */
    return s->inst_len > 0 && same(ev->inst, ev->inst_len, s->inst, s->inst_len);
}

int sc__seq_same_pod_id(const sc__seq *s, const sc__event *ev)
{
    return s->pod_len > 0 && !sc__seq_own(s, ev) && same(ev->sender, ev->sender_len, s->pod_id, s->pod_len);
}

sc__verdict sc__seq_classify(const sc__seq *s, uint64_t version)
{
    if (version == 0)
        return SC__EXTERNAL;
    if (version <= s->last_seq)
        return SC__STALE;
    if (s->last_seq != 0 && version != s->last_seq + 1)
        return SC__GAP;
    return SC__NEXT;
}

int sc__seq_conflict(const sc__seq *s, uint64_t version, uint64_t digest)
{
    const struct sc__seq_recent *r = &s->recent[version % SC__SEQ_RECENT];
    return r->version == version && r->digest != digest;
}

void sc__seq_record(sc__seq *s, uint64_t version, uint64_t digest)
{
    s->recent[version % SC__SEQ_RECENT].version = version;
    s->recent[version % SC__SEQ_RECENT].digest = digest;
    if (version > s->last_seq) {
        s->last_seq = version;
        s->last_digest = digest;
    }
}

void sc__seq_reset(sc__seq *s, uint64_t seq, uint64_t digest, const char *epoch)
{
    memset(s->recent, 0, sizeof s->recent);
    s->last_seq = seq;
    s->last_digest = digest;
    if (epoch) {
        strncpy(s->epoch, epoch, sizeof s->epoch - 1);
        s->epoch[sizeof s->epoch - 1] = '\0';
    }
}
