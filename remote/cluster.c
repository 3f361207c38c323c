/* Redis Cluster slot arithmetic and the slot map. hiredis 0.14 has no
 * cluster support, so the routing is ours; it stays small because a
 * namespace lives in one hash slot (every key carries the tag {ns}): the pool
 * only needs to know which master owns that one slot, and CLUSTER SLOTS from
 * any node tells it.
 */
#include "remote/remote.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the function
 * Redis Cluster uses for key slots. Bitwise: it runs once per open and per
 * re-route, never per command. */
static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned sc__cluster_keyslot(const char *key, size_t len)
{
    /* The hash tag: the bytes between the first '{' and the first '}'
     * after it, when there are any; else the whole key (Redis' rule). */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from)
            return crc16(key + from, (size_t)(close - (key + from))) & 16383;
    }
    return crc16(key, len) & 16383;
}

sc_status sc__cluster_slot_owner(redisContext *c, const char *node_host, unsigned slot, sc__addr *a, char *err,
                                 size_t errlen)
{
    redisReply *reply = redisCommand(c, "CLUSTER SLOTS");
    if (!reply) {
        sc__remote_errf(err, errlen, "CLUSTER SLOTS: %s", c->errstr[0] ? c->errstr : "I/O error");
        return SC_ERR_REMOTE;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        sc__remote_errf(err, errlen, "CLUSTER SLOTS: %s",
                        reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    /* Each range: [start, end, [ip, port, id, ...] of the master, replicas...]. */
    sc_status st = SC_NOT_FOUND;
    for (size_t i = 0; i < reply->elements && st == SC_NOT_FOUND; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        if ((long long)slot < r->element[0]->integer || (long long)slot > r->element[1]->integer)
            continue;
        const redisReply *m = r->element[2];
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer <= 0 ||
            m->element[1]->integer > 65535)
            break;
        /* An empty or "?" address: the node does not know its own; it is
         * reachable where we reached the node that told us. */
        const char *host = m->element[0]->len && strcmp(m->element[0]->str, "?") != 0 ? m->element[0]->str
                                                                                      : node_host;
        if (strlen(host) >= sizeof a->host)
            break;
        snprintf(a->host, sizeof a->host, "%s", host);
        a->port = (int)m->element[1]->integer;
        st = SC_OK;
    }
    if (st == SC_NOT_FOUND)
        sc__remote_errf(err, errlen, "CLUSTER SLOTS: no master serves slot %u", slot);
    freeReplyObject(reply);
    return st;
}
