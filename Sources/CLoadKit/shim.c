#define _GNU_SOURCE
#include "CLoadKit.h"
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>

#include <pthread.h>
#include <string.h>

static __thread void *current_loop;
void *lk_current_loop(void) { return current_loop; }
void lk_set_current_loop(void *loop) { current_loop = loop; }

void lk_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, 15);
    buf[15] = 0;
#if defined(__APPLE__)
    pthread_setname_np(buf);
#else
    pthread_setname_np(pthread_self(), buf);
#endif
}

#include <sys/socket.h>

int lk_accept(int fd, void *addr, uint32_t *len) {
    socklen_t l = *len;
#if defined(__linux__)
    int c = accept4(fd, (struct sockaddr *)addr, &l, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int c = accept(fd, (struct sockaddr *)addr, &l);
    if (c >= 0) {
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
        fcntl(c, F_SETFD, FD_CLOEXEC);
    }
#endif
    *len = l;
    return c;
}

#if defined(__linux__)
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

int lk_poll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int lk_poll_add(int pfd, int fd, uint64_t token, int edge) {
    struct epoll_event ev;
    ev.events = edge ? (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) : EPOLLIN;
    ev.data.u64 = token;
    return epoll_ctl(pfd, EPOLL_CTL_ADD, fd, &ev);
}

int lk_poll_set_reading(int pfd, int fd, uint64_t token, int on) {
    struct epoll_event ev;
    ev.events = on ? EPOLLIN : 0;
    ev.data.u64 = token;
    return epoll_ctl(pfd, EPOLL_CTL_MOD, fd, &ev);
}

int lk_poll_remove(int pfd, int fd) {
    struct epoll_event ev = {0};
    return epoll_ctl(pfd, EPOLL_CTL_DEL, fd, &ev);
}

static int pwait2_missing;

int lk_poll_wait(int pfd, lk_event *out, int max, int64_t timeout_ns) {
    struct epoll_event evs[1024];
    if (max > 1024) max = 1024;
    int n;
#ifdef SYS_epoll_pwait2
    if (timeout_ns > 0 && !pwait2_missing) {
        struct timespec ts = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
        n = (int)syscall(SYS_epoll_pwait2, pfd, evs, max, &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS) { pwait2_missing = 1; return lk_poll_wait(pfd, out, max, timeout_ns); }
    } else
#endif
    {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(pfd, evs, max, ms);
    }
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events, bits = 0;
        if (e & EPOLLIN) bits |= LK_READABLE;
        if (e & EPOLLOUT) bits |= LK_WRITABLE;
        if (e & (EPOLLHUP | EPOLLRDHUP)) bits |= LK_HANGUP;
        if (e & EPOLLERR) bits |= LK_ERROR;
        out[i].events = bits;
        out[i].token = evs[i].data.u64;
    }
    return n;
}

int lk_wakeup_create(int *write_fd) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    *write_fd = fd;
    return fd;
}

void lk_wakeup_signal(int write_fd) {
    uint64_t one = 1;
    ssize_t r = write(write_fd, &one, sizeof one);
    (void)r;
}

void lk_wakeup_drain(int read_fd) {
    uint64_t v;
    ssize_t r = read(read_fd, &v, sizeof v);
    (void)r;
}

/* A container's CPU quota in whole CPUs, rounded up (cgroup v2 `cpu.max`, else v1
   `cpu.cfs_quota_us` / `cpu.cfs_period_us`, at the cgroup root a container sees); 0 when none. */
static int cgroup_quota_cpus(void) {
    long long quota = -1, period = 0;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char q[32] = {0};
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) {
        if (fscanf(f, "%lld", &quota) != 1) quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r"))) {
            if (fscanf(f, "%lld", &period) != 1) period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0) return 0;
    return (int)((quota + period - 1) / period);
}

int lk_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    int n;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    } else {
        n = CPU_COUNT(&set);
    }
    /* `--cpus=2` on a 16-core host: 2, not 16 (loops per CPU, and the CPU a summary judges). */
    int quota = cgroup_quota_cpus();
    if (quota > 0 && quota < n) n = quota;
    return n > 0 ? n : 1;
}

#elif defined(__APPLE__)
// kqueue: EV_CLEAR gives the edge-triggered behaviour the Linux path has. Not exercised by the
// test suite (Linux only); kept small and honest.
#include <sys/types.h>
#include <sys/event.h>
#include <sys/sysctl.h>

int lk_poll_create(void) {
    int fd = kqueue();
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int lk_poll_add(int pfd, int fd, uint64_t token, int edge) {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_ADD | (edge ? EV_CLEAR : 0), 0, 0, (void *)(uintptr_t)token);
    if (!edge) return kevent(pfd, ch, 1, NULL, 0, NULL);
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, (void *)(uintptr_t)token);
    return kevent(pfd, ch, 2, NULL, 0, NULL);
}

int lk_poll_set_reading(int pfd, int fd, uint64_t token, int on) {
    struct kevent ch;
    EV_SET(&ch, fd, EVFILT_READ, on ? EV_ENABLE : EV_DISABLE, 0, 0, (void *)(uintptr_t)token);
    return kevent(pfd, &ch, 1, NULL, 0, NULL);
}

int lk_poll_remove(int pfd, int fd) {
    struct kevent ch[2];
    EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    kevent(pfd, ch, 2, NULL, 0, NULL);
    return 0;
}

int lk_poll_wait(int pfd, lk_event *out, int max, int64_t timeout_ns) {
    struct kevent evs[1024];
    if (max > 1024) max = 1024;
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tp = &ts;
    }
    int n = kevent(pfd, NULL, 0, evs, max, tp);
    for (int i = 0; i < n; i++) {
        uint32_t bits = 0;
        if (evs[i].filter == EVFILT_READ) bits |= LK_READABLE;
        if (evs[i].filter == EVFILT_WRITE) bits |= LK_WRITABLE;
        if (evs[i].flags & EV_EOF) bits |= LK_HANGUP;
        if (evs[i].flags & EV_ERROR) bits |= LK_ERROR;
        out[i].events = bits;
        out[i].token = (uint64_t)(uintptr_t)evs[i].udata;
    }
    return n;
}

int lk_wakeup_create(int *write_fd) {
    int p[2];
    if (pipe(p) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    *write_fd = p[1];
    return p[0];
}

void lk_wakeup_signal(int write_fd) {
    char one = 1;
    ssize_t r = write(write_fd, &one, 1);
    (void)r;
}

void lk_wakeup_drain(int read_fd) {
    char buf[64];
    while (read(read_fd, buf, sizeof buf) > 0) {}
}

int lk_cpu_count(void) {
    int n = 0;
    size_t len = sizeof n;
    if (sysctlbyname("hw.activecpu", &n, &len, NULL, 0) != 0 || n < 1) return 1;
    return n;
}
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
long long lk_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return (long long)(m.uordblks + m.hblkhd);
}
#else
long long lk_heap_in_use(void) { return -1; }
#endif

int lk_utf8_validate(const unsigned char *p, size_t n, unsigned char state[3]) {
    unsigned char needed = state[0], lower = state[1], upper = state[2];
    size_t i = 0;
    while (i < n) {
        if (needed == 0) {
            /* ASCII 8 bytes at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL) break;
                i += 8;
            }
            if (i >= n) break;
            unsigned char b = p[i++];
            if (b <= 0x7F) continue;
            else if (b >= 0xC2 && b <= 0xDF) { needed = 1; lower = 0x80; upper = 0xBF; }
            else if (b == 0xE0) { needed = 2; lower = 0xA0; upper = 0xBF; }
            else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) { needed = 2; lower = 0x80; upper = 0xBF; }
            else if (b == 0xED) { needed = 2; lower = 0x80; upper = 0x9F; }
            else if (b == 0xF0) { needed = 3; lower = 0x90; upper = 0xBF; }
            else if (b >= 0xF1 && b <= 0xF3) { needed = 3; lower = 0x80; upper = 0xBF; }
            else if (b == 0xF4) { needed = 3; lower = 0x80; upper = 0x8F; }
            else { state[0] = needed; state[1] = lower; state[2] = upper; return 0; }
        } else {
            unsigned char b = p[i++];
            if (b < lower || b > upper) { state[0] = needed; state[1] = lower; state[2] = upper; return 0; }
            needed -= 1;
            lower = 0x80;
            upper = 0xBF;
        }
    }
    state[0] = needed; state[1] = lower; state[2] = upper;
    return 1;
}
