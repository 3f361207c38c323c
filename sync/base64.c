/* Base64 (RFC 4648, standard alphabet, with padding) for the "value" field of
 * JSON events, which cannot carry raw bytes. The decoder is strict because it
 * reads bytes from the network: anything but the alphabet, missing or
 * misplaced padding, and non-zero bits under the padding are rejected, so a
 * value has exactly one accepted spelling.
 */
#include "sync/sync.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sc__base64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

void sc__base64_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t i = 0;

    for (; len - i >= 3; i += 3) {
        uint32_t n = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = b64_alphabet[n >> 18];
        *out++ = b64_alphabet[(n >> 12) & 63];
        *out++ = b64_alphabet[(n >> 6) & 63];
        *out++ = b64_alphabet[n & 63];
    }
    if (len - i == 1) {
        uint32_t n = (uint32_t)p[i] << 16;
        *out++ = b64_alphabet[n >> 18];
        *out++ = b64_alphabet[(n >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        uint32_t n = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *out++ = b64_alphabet[n >> 18];
        *out++ = b64_alphabet[(n >> 12) & 63];
        *out++ = b64_alphabet[(n >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

size_t sc__base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

/* The 6-bit value of an alphabet character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long long sc__base64_decode(const char *in, size_t len, void *out)
{
    const unsigned char *s = (const unsigned char *)in;
    unsigned char *o = out;
    size_t i;

    if (len % 4 != 0)
        return -1;
    for (i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        /* Padding may only appear in the last quantum: "xx==" or "xxx=". */
        int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
        int v[4] = { 0, 0, 0, 0 };
        int k;

        for (k = 0; k < 4 - pad; k++) {
            v[k] = b64_value(s[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t n = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        *o++ = (unsigned char)(n >> 16);
        if (pad == 2) {
            if (n & 0xffff)
                return -1;
        } else {
            *o++ = (unsigned char)(n >> 8);
            if (pad == 1) {
                if (n & 0xff)
                    return -1;
            } else {
                *o++ = (unsigned char)n;
            }
        }
    }
    return (long long)(o - (unsigned char *)out);
}
