// The few system calls LoadKit's event loop needs that Glibc does not expose to Swift (epoll,
// eventfd) plus a thread-local slot and the CPU affinity count. Kept tiny on purpose.
#ifndef CLOADKIT_H
#define CLOADKIT_H

#include <stdint.h>
#include <stddef.h>

/// Readiness bits reported by lk_poll_wait (the same on every platform).
enum {
    LK_READABLE = 1,
    LK_WRITABLE = 2,
    LK_HANGUP = 4,   // peer closed (EPOLLHUP / EPOLLRDHUP / EV_EOF)
    LK_ERROR = 8,
};

/// One readiness event: the bits above and the registration's 64-bit token.
typedef struct {
    uint32_t events;
    uint64_t token;
} lk_event;

/// A new poller (epoll or kqueue), close-on-exec; -1 and errno on failure.
int lk_poll_create(void);
/// Registers `fd`. `edge` != 0: edge-triggered for reading and writing (a socket registered once
/// for its whole life); else level-triggered for reading only (listeners, the wake-up fd).
int lk_poll_add(int pfd, int fd, uint64_t token, int edge);
/// Level-triggered registrations only: turn read interest on or off (a listener out of fds).
int lk_poll_set_reading(int pfd, int fd, uint64_t token, int on);
/// Removes `fd` (closing it does the same).
int lk_poll_remove(int pfd, int fd);
/// Waits for at most `max` (<= 1024) events; `timeout_ns` < 0 waits without limit. Nanosecond
/// precision where the kernel offers it (epoll_pwait2), else rounded up to the next millisecond.
int lk_poll_wait(int pfd, lk_event *events, int max, int64_t timeout_ns);

/// The loop's wake-up: an eventfd (Linux) or a pipe; returns the fd to poll, -1 on failure.
int lk_wakeup_create(int *write_fd);
/// Wakes the poller (thread-safe).
void lk_wakeup_signal(int write_fd);
/// Consumes pending wake-ups (on the loop).
void lk_wakeup_drain(int read_fd);

/// The event loop that runs on the calling thread (NULL when none).
void *lk_current_loop(void);
void lk_set_current_loop(void *loop);

/// accept(2) returning a non-blocking, close-on-exec socket (accept4 on Linux).
int lk_accept(int fd, void *addr, uint32_t *len);

/// Names the calling thread (at most 15 characters are kept).
void lk_set_thread_name(const char *name);

/// CPUs this process may use: its affinity mask, lowered to a container's CPU quota (cgroup v2
/// `cpu.max`, v1 `cpu.cfs_quota_us`) rounded up; at least 1.
int lk_cpu_count(void);

/// Bytes the C heap has handed out and not taken back (glibc mallinfo2: arena chunks in use plus
/// mmapped chunks); -1 where unknown.
long long lk_heap_in_use(void);


/// Incremental UTF-8 validation (RFC 3629, as WebSocket text requires): feeds `n` bytes from
/// `p`; `state` holds, between calls, the continuation bytes still needed and the allowed range
/// of the next one ({needed, lower, upper}). Returns 0 as soon as the bytes cannot be valid UTF-8.
/// In C so that debug builds validate as fast as release ones (a Swift loop at -Onone took
/// hundreds of milliseconds of a shared event loop for a megabyte of non-ASCII text).
int lk_utf8_validate(const unsigned char *p, size_t n, unsigned char state[3]);

/// What lk_http_split_head answers when a head is not acceptable (negative, as its field count
/// is not).
enum {
    LK_HEAD_EMPTY = -1,                // no start line
    LK_HEAD_FOLD_WITHOUT_FIELD = -2,   // a continuation line before any field
    LK_HEAD_NAME_SPACE = -3,           // a space in or after a field name
    LK_HEAD_NAME_CHARACTER = -4,       // a field name byte that is not a token character
    LK_HEAD_NO_COLON = -5,             // a field line without ':'
    LK_HEAD_EMPTY_NAME = -6,           // ':' first on a field line
    LK_HEAD_VALUE_CHARACTER = -7,      // a control character in a value (bad = that field's name)
    LK_HEAD_FOLD_CHARACTER = -8,       // a control character in a continuation line (bad = its field's name)
    LK_HEAD_CAPACITY = -9,             // more fields than `capacity`
};

/// Splits a complete HTTP/1 head (start line, fields, the empty line; LF or CRLF line ends) into
/// its start line (`first_start` ..< `first_end`, the line break excluded) and its fields: for
/// field k, spans[4k ... 4k+3] = name begin, name end, value begin, value end, the value trimmed
/// of blanks. An obs-fold line extends the previous value's span over it and sets `*folded`.
/// Checks what a decoder would: name bytes are token characters, values hold no control
/// character but HTAB. Returns the number of fields, or an LK_HEAD_* error (for
/// LK_HEAD_VALUE_CHARACTER and LK_HEAD_FOLD_CHARACTER, `bad_start` ..< `bad_end` is the offending
/// field's name).
long lk_http_split_head(const unsigned char *h, size_t n, uint32_t *spans, size_t capacity,
                        uint32_t *first_start, uint32_t *first_end, int *folded,
                        uint32_t *bad_start, uint32_t *bad_end);

/// 1 when `c` is an RFC 9110 token character (tchar), else 0: the table the splitter uses.
int lk_http_is_token(unsigned char c);

/// 1 when the `n` bytes at `p` hold no control character but HTAB (a field value, a reason
/// phrase), else 0: the check the splitter makes.
int lk_http_is_field_value(const unsigned char *p, size_t n);

#endif
