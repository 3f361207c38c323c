/* local/sketch.c: the frequency sketch behind W-TinyLFU admission.
 *
 * A count-min sketch of 4-bit counters, laid out like Caffeine's
 * FrequencySketch: 16 counters per 64-bit word, and the four counters of one
 * key all inside one 64-byte block so an increment touches one cache line.
 * Four bits are enough because admission only compares "how popular lately";
 * after 10 x capacity increments every counter is halved, which both keeps
 * them from saturating and lets yesterday's hot keys age out.
 */
#include <stdlib.h>
#include <string.h>

#include "local/local.h"

#define ONE_MASK 0x1111111111111111ull
#define RESET_MASK 0x7777777777777777ull

int sc__sketch_resize(sc__sketch *s, size_t capacity)
{
    /* Two words (32 counters) per expected entry up to 32768 entries, then
     * half a word (8 counters) per entry. The wider sketch breaks fewer ties
     * between equally popular keys at random, worth 0.3-0.5 points of hit
     * ratio on the OLTP and GLI traces, and costs nothing that matters in a
     * small cache; a large one keeps 4 bytes per entry, which is what keeps
     * a 1M-entry W-TinyLFU store under 64 bytes of overhead per entry. The
     * block is picked by multiply-shift, so the table is exactly that size
     * (no rounding up to a power of two). */
    if (capacity > ((size_t)1 << 30))
        capacity = (size_t)1 << 30;
    size_t want = capacity < 32768 ? capacity * 2 : capacity / 2;
    size_t blocks = (want + 7) / 8;
    if (blocks < 1)
        blocks = 1;
    uint64_t *t = calloc(blocks * 8, sizeof *t);
    if (!t)
        return -1;
    free(s->table);
    s->table = t;
    s->blocks = blocks;
    s->size = 0;
    s->sample = 10 * (uint64_t)(capacity ? capacity : 1);
    s->capacity = capacity;
    return 0;
}

void sc__sketch_free(sc__sketch *s)
{
    free(s->table);
    memset(s, 0, sizeof *s);
}

static void reset(sc__sketch *s)
{
    uint64_t odd = 0;
    size_t words = (size_t)s->blocks << 3;
    for (size_t i = 0; i < words; i++) {
        odd += (uint64_t)__builtin_popcountll(s->table[i] & ONE_MASK);
        s->table[i] = (s->table[i] >> 1) & RESET_MASK;
    }
    /* Halving drops half a count from every odd counter; a key has four. */
    s->size = (s->size - (odd >> 2)) >> 1;
}

void sc__sketch_increment(sc__sketch *s, uint64_t hash)
{
    if (!s->table)
        return;
    uint64_t h = sc__sketch_remix(hash);
    uint64_t block = sc__sketch_block(s, h);
    uint32_t c = (uint32_t)h;
    int added = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint32_t x = c >> (i << 3);
        unsigned index = (x >> 1) & 15;
        uint64_t *w = &s->table[block + (x & 1) + (i << 1)];
        uint64_t mask = 0xfull << (index << 2);
        if ((*w & mask) != mask) {
            *w += 1ull << (index << 2);
            added = 1;
        }
    }
    if (added && ++s->size >= s->sample)
        reset(s);
}

unsigned sc__sketch_frequency(const sc__sketch *s, uint64_t hash)
{
    if (!s->table)
        return 0;
    uint64_t h = sc__sketch_remix(hash);
    uint64_t block = sc__sketch_block(s, h);
    uint32_t c = (uint32_t)h;
    unsigned freq = 15;
    for (unsigned i = 0; i < 4; i++) {
        uint32_t x = c >> (i << 3);
        unsigned index = (x >> 1) & 15;
        unsigned v = (unsigned)(s->table[block + (x & 1) + (i << 1)] >> (index << 2)) & 15;
        if (v < freq)
            freq = v;
    }
    return freq;
}
