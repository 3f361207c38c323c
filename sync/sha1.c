/* SHA-1 (FIPS 180-4), for the event authentication code only: the write
 * scripts sign each event with redis.sha1hex (the one hash Redis' Lua
 * offers), so pods must compute the same. SHA-1's collision weakness does
 * not matter here: the code is keyed with a secret and nested (see
 * sc__event_authentic in sync/event.c), which is what resists forgery and
 * length extension. */
#include "sync/sync.h"

#include <string.h>

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void sc__sha1_init(sc__sha1 *s)
{
    static const uint32_t init[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(s->h, init, sizeof init);
    s->total = 0;
    s->used = 0;
}

void sc__sha1_update(sc__sha1 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->total += len;
    while (len > 0) {
        size_t n = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->buf + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            block(s->h, s->buf);
            s->used = 0;
        }
    }
}

void sc__sha1_hex(sc__sha1 *s, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t bits = s->total * 8;
    unsigned char pad = 0x80;
    sc__sha1_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56)
        sc__sha1_update(s, &pad, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sc__sha1_update(s, len, 8);
    for (int i = 0; i < 20; i++) {
        unsigned char byte = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[40] = '\0';
}
