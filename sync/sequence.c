/* The apply rules for the namespace sequence. Every write in a namespace takes
 * the next version from one Redis counter and publishes its event from the
 * same script, so events reach the channel in version order. A pod that has
 * applied everything up to last_seq therefore expects last_seq + 1 next; an
 * older version is a duplicate or a replay, a newer one means events were
 * lost. These few comparisons are the whole of it, kept apart from the
 * subscriber so they can be tested without a loop or a Redis.
 */
#include "sync/sync.h"

#include <string.h>

void sc__seq_init(sc__seq *s, const char *own_id)
{
    s->last_seq = 0;
    s->own_id = own_id;
    s->own_len = own_id ? strlen(own_id) : 0;
}

static int is_own(const sc__seq *s, const sc__event *ev)
{
    /* An empty id is what an outside publisher sends when it names no
     * sender, so it never identifies this pod. */
    return s->own_len > 0 && ev->sender_len == s->own_len && memcmp(ev->sender, s->own_id, s->own_len) == 0;
}

sc__verdict sc__seq_classify(const sc__seq *s, const sc__event *ev)
{
    if (ev->version == 0)
        return SC__EXTERNAL;
    if (ev->version <= s->last_seq)
        return SC__STALE; /* own duplicates too: there is nothing to advance */
    /* The gap test comes before the own-event test: an own event that skips
     * numbers also proves that the events in between were lost, and
     * advancing past it as SC__SELF would hide them for good. */
    if (s->last_seq != 0 && ev->version != s->last_seq + 1)
        return SC__GAP;
    if (is_own(s, ev))
        return SC__SELF;
    return SC__APPLY;
}

int sc__seq_heartbeat_gap(const sc__seq *s, uint64_t seq)
{
    return s->last_seq != 0 && seq > s->last_seq;
}

void sc__seq_advance(sc__seq *s, uint64_t version)
{
    if (version > s->last_seq)
        s->last_seq = version;
}
