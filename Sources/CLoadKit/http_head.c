// The byte loops of splitting an HTTP/1 head (see lk_http_split_head in CLoadKit.h). In C because
// they run over every byte of every response head: the Swift loops they replaced took ≈ 5 % of
// the README scenario's user time (docs/http-cpu-per-request.md), and a debug build parses as
// fast as a release one.
#include "CLoadKit.h"
#include <string.h>

// tchar per RFC 9110 §5.6.2: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA.
static const unsigned char token_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline int is_blank(unsigned char c) { return c == ' ' || c == '\t'; }

int lk_http_is_token(unsigned char c) { return token_table[c]; }

// No control characters but HTAB (obs-text, 0x80–0xFF, is allowed). Eight bytes at a time while
// none is below 0x20 or 0x7F (exact tests for "any byte": bytes from 0x80 never count); a word with
// one — an HTAB, or a bad byte — is checked byte by byte from there.
static inline int is_field_value(const unsigned char *h, size_t lo, size_t hi) {
    size_t i = lo;
    while (i + 8 <= hi) {
        uint64_t w;
        memcpy(&w, h + i, 8);
        uint64_t below = (w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL;
        uint64_t x = w ^ 0x7f7f7f7f7f7f7f7fULL;
        uint64_t del = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
        if (below | del) break;
        i += 8;
    }
    for (; i < hi; i++) {
        unsigned char c = h[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

int lk_http_is_field_value(const unsigned char *p, size_t n) { return is_field_value(p, 0, n); }

long lk_http_split_head(const unsigned char *h, size_t n, uint32_t *spans, size_t capacity,
                        uint32_t *first_start, uint32_t *first_end, int *folded,
                        uint32_t *bad_start, uint32_t *bad_end) {
    size_t line_start = 0, fields = 0;
    int have_first = 0;
    *folded = 0;
    while (line_start < n) {
        const unsigned char *p = memchr(h + line_start, '\n', n - line_start);
        size_t lf = p ? (size_t)(p - h) : n;
        size_t line_end = lf;
        if (line_end > line_start && h[line_end - 1] == '\r') line_end--;
        size_t this_start = line_start;
        line_start = lf + 1;
        if (!have_first) { *first_start = (uint32_t)this_start; *first_end = (uint32_t)line_end; have_first = 1; continue; }
        if (line_end == this_start) break;  // the empty line that ends the head
        if (is_blank(h[this_start])) {
            // obs-fold: the previous value's span runs on over this line (RFC 9112 §5.2).
            if (fields == 0) return LK_HEAD_FOLD_WITHOUT_FIELD;
            size_t lo = this_start, hi = line_end;
            while (lo < hi && is_blank(h[lo])) lo++;
            while (hi > lo && is_blank(h[hi - 1])) hi--;
            if (!is_field_value(h, lo, hi)) {
                *bad_start = spans[4 * fields - 4]; *bad_end = spans[4 * fields - 3];
                return LK_HEAD_FOLD_CHARACTER;
            }
            // An empty continuation keeps the line break: it decodes as the trailing space.
            spans[4 * fields - 1] = (uint32_t)(hi > lo ? hi : this_start);
            *folded = 1;
            continue;
        }
        size_t colon = this_start;
        while (colon < line_end && h[colon] != ':') {
            if (!token_table[h[colon]]) return h[colon] == ' ' ? LK_HEAD_NAME_SPACE : LK_HEAD_NAME_CHARACTER;
            colon++;
        }
        if (colon == line_end) return LK_HEAD_NO_COLON;
        if (colon == this_start) return LK_HEAD_EMPTY_NAME;
        size_t lo = colon + 1, hi = line_end;
        while (lo < hi && is_blank(h[lo])) lo++;
        while (hi > lo && is_blank(h[hi - 1])) hi--;
        if (!is_field_value(h, lo, hi)) {
            *bad_start = (uint32_t)this_start; *bad_end = (uint32_t)colon;
            return LK_HEAD_VALUE_CHARACTER;
        }
        if (fields == capacity) return LK_HEAD_CAPACITY;
        spans[4 * fields] = (uint32_t)this_start;
        spans[4 * fields + 1] = (uint32_t)colon;
        spans[4 * fields + 2] = (uint32_t)lo;
        spans[4 * fields + 3] = (uint32_t)hi;
        fields++;
    }
    if (!have_first) return LK_HEAD_EMPTY;
    return (long)fields;
}
