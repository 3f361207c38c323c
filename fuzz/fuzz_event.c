/* libFuzzer target for the event decoder, the one piece of synccache that
 * parses bytes anyone can PUBLISH on the channel. Each input is decoded under
 * a few size limits (the limit must be honoured before any parsing); every
 * event that decodes is encoded again in both wire formats, and that encoding
 * must decode to the same event, so the fuzzer also checks that the encoder
 * and the decoder agree on everything the decoder can produce.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_die(const sc__event *a, const sc__event *b)
{
    if (a->format != b->format || a->action != b->action || a->key_len != b->key_len ||
        memcmp(a->key, b->key, a->key_len + 1) != 0 || a->sender_len != b->sender_len ||
        memcmp(a->sender, b->sender, a->sender_len + 1) != 0 || a->version != b->version ||
        a->has_value != b->has_value || a->value_len != b->value_len || a->ttl_ms != b->ttl_ms ||
        a->time_ms != b->time_ms || a->has_ns != b->has_ns || a->ns_len != b->ns_len ||
        memcmp(a->ns, b->ns, a->ns_len + 1) != 0 || a->inst_len != b->inst_len ||
        memcmp(a->inst, b->inst, a->inst_len + 1) != 0 || a->epoch_len != b->epoch_len ||
        memcmp(a->epoch, b->epoch, a->epoch_len + 1) != 0 || a->digest_len != b->digest_len ||
        memcmp(a->digest, b->digest, a->digest_len + 1) != 0)
        abort();
    if (a->has_value && memcmp(a->value, b->value, a->value_len + 1) != 0)
        abort();
}

static void round_trip(const sc__event *ev, sc_wire_format fmt)
{
    sc__event back;
    char *buf = NULL;
    size_t len = 0;
    sc_status st = sc__event_encode(ev, fmt, &buf, &len);

    if (st == SC_ERR_NOMEM)
        return;
    if (st != SC_OK || sc__event_decode(buf, len, 0, &back) != SC_OK)
        abort();
    same_or_die(ev, &back);
    sc__event_free(&back);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t limits[] = { 1, 64, 4096, size, size ? size - 1 : 0 };
    /* The signature check reads the same network bytes. */
    (void)sc__event_authentic(data, size, "0123456789abcdef0123456789abcdef");
    sc__event first;
    sc_status st0 = sc__event_decode(data, size, 0, &first);
    size_t i;

    if (st0 == SC_OK) {
        round_trip(&first, SC_WIRE_MSGPACK);
        round_trip(&first, SC_WIRE_JSON);
    } else if (first.storage_) {
        abort(); /* a failed decode leaves nothing to free */
    }
    /* A limit the input fits changes nothing; one it exceeds is reported
     * as such whatever the bytes are. */
    for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        sc__event ev;
        sc_status st = sc__event_decode(data, size, limits[i], &ev);

        if (limits[i] && size > limits[i]) {
            if (st != SC_ERR_TOO_LARGE)
                abort();
            continue;
        }
        if (st != st0)
            abort();
        if (st == SC_OK) {
            same_or_die(&first, &ev);
            sc__event_free(&ev);
        }
    }
    sc__event_free(&first);
    return 0;
}
