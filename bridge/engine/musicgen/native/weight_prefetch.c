/* The next weights of a decoder step read into the cache while the memory would otherwise idle.
 *
 * Part of Segue's `native-int8` kernel library (native_int8.py builds it with int8_rows.c). A fast-mode
 * step streams ~360 MB of int8 weights (musicgen-small) through ~145 kernel calls, and between two
 * calls the engine runs its small ops on one core (norms, GELU, residual adds, Python): ~60 us a call,
 * a quarter of the step, in which the memory reads nothing and the other cores sleep. Here a thread
 * reads the weights of the calls that come next during those gaps, so the next call finds their first
 * megabytes in the last-level cache instead of in DRAM.
 *
 * - The order: segue_prefetch_order(buffers, bytes, count, budget) names the weight buffers a step
 *   reads, in the order it reads them (cyclic: after the last comes the first of the next step). The
 *   caller keeps them alive until it clears the order (count 0), which returns only when this thread
 *   has stopped and will not read them again.
 * - The gaps: every native call marks itself busy at its start (prefetch_pause) and, at its end, says
 *   which weights it read (prefetch_after): the thread then reads the buffers after those, up to `budget`
 *   bytes (half the last-level cache: what a step's own reads would evict sooner is wasted), one load
 *   per 64-byte line. It checks every 4 kB whether a call has started and, if so, sleeps until it ends
 *   (a futex on Linux: no CPU while the team computes), keeping its place. It runs under SCHED_IDLE:
 *   it takes a core only when no other thread wants it (the streaming decode's thread shares the gaps).
 * - Only reads: the results of every kernel are the same bits with or without it.
 * Elsewhere than Linux it is not built in (segue_prefetch_order returns -1) and nothing changes.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include <stdint.h>
#include <stdlib.h>

int64_t segue_prefetch_bytes_read(void);
int segue_prefetch_order(const int8_t *const *buffers, const int64_t *bytes, int count, int64_t budget);
void prefetch_pause(void);
void prefetch_after(const void *weights);

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK 4096 /* bytes read between two looks at whether a call has started */
#define LINE 64

typedef struct {
    const int8_t *start;
    int64_t bytes;
} Span;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards the order and the place below */
static Span *order;
static int count;
static int64_t budget;
static int next_span = -1;   /* where to read from next (-1: nothing to read) */
static int64_t next_offset;  /* within that span */
static int64_t left;         /* bytes of the budget left */

static pthread_t thread;
static int running;              /* the thread exists (changed by segue_prefetch_order only) */
static atomic_int busy;          /* a native call is running */
static atomic_int quit;
static atomic_uint news;         /* bumped when a call ends or the order changes: the futex word */
static atomic_int sleeping;      /* the thread waits on `news` */
static atomic_int_fast64_t bytes_read;

static void wake(void) {
    atomic_fetch_add(&news, 1);
    if (atomic_load(&sleeping)) syscall(SYS_futex, &news, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void wait_for_news(unsigned seen) {
    atomic_store(&sleeping, 1);
    if (atomic_load(&news) == seen) syscall(SYS_futex, &news, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    atomic_store(&sleeping, 0);
}

/* Reads [start, start + bytes) a chunk at a time; returns the bytes read before a call started or the
 * order changed (news moved on from `seen`). */
static int64_t read_lines(const int8_t *start, int64_t bytes, unsigned seen) {
    int64_t done = 0;
    int8_t folded = 0;
    while (done < bytes && !atomic_load_explicit(&busy, memory_order_relaxed) && atomic_load(&news) == seen) {
        int64_t end = done + CHUNK < bytes ? done + CHUNK : bytes;
        for (int64_t at = done; at < end; at += LINE) folded ^= *(const volatile int8_t *)(start + at);
        done = end;
    }
    __asm__ volatile("" : : "r"(folded)); /* the loads are kept */
    atomic_fetch_add(&bytes_read, done);
    return done;
}

static void *prefetcher(void *unused) {
    (void)unused;
    /* Idle time only: any other thread that wants the core (the streaming decode's, the team's) has it. */
    struct sched_param none = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    while (!atomic_load(&quit)) {
        unsigned seen = atomic_load(&news);
        pthread_mutex_lock(&lock);
        int span = next_span;
        Span target = span >= 0 ? order[span] : (Span){NULL, 0};
        int64_t offset = next_offset, allowed = left;
        pthread_mutex_unlock(&lock);
        if (span < 0 || allowed <= 0 || atomic_load(&busy)) {
            wait_for_news(seen);
            continue;
        }
        int64_t want = target.bytes - offset < allowed ? target.bytes - offset : allowed;
        /* The buffers stay alive while they are in the order, and the order changes only under the lock
         * with this thread told (news) and then stopped: reading without the lock is safe. */
        int64_t done = read_lines(target.start + offset, want, seen);
        pthread_mutex_lock(&lock);
        if (atomic_load(&news) == seen && next_span == span) { /* the place is still ours to move on */
            left -= done;
            next_offset += done;
            if (next_offset >= target.bytes) {
                next_span = (span + 1) % count;
                next_offset = 0;
            }
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

void prefetch_pause(void) {
    if (running) atomic_store(&busy, 1);
}

void prefetch_after(const void *weights) {
    if (!running) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < count; i++) {
        if (order[i].start == (const int8_t *)weights) {
            next_span = (i + 1) % count;
            next_offset = 0;
            left = budget;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    atomic_store(&busy, 0);
    wake();
}

static void stop(void) {
    if (!running) return;
    atomic_store(&quit, 1);
    wake();
    pthread_join(thread, NULL);
    running = 0;
    atomic_store(&quit, 0);
    atomic_store(&busy, 0);
}

int segue_prefetch_order(const int8_t *const *buffers, const int64_t *bytes, int count_, int64_t budget_) {
    stop(); /* after this no read of the old order is under way */
    pthread_mutex_lock(&lock);
    free(order);
    order = NULL;
    count = 0;
    next_span = -1;
    Span *spans = count_ > 0 ? malloc((size_t)count_ * sizeof(Span)) : NULL;
    if (spans != NULL) {
        for (int i = 0; i < count_; i++) spans[i] = (Span){buffers[i], bytes[i]};
        order = spans;
        count = count_;
        budget = budget_;
    }
    pthread_mutex_unlock(&lock);
    if (count == 0) return count_ > 0 ? -1 : 0;
    if (pthread_create(&thread, NULL, prefetcher, NULL) != 0) return -1;
    running = 1;
    return 0;
}

int64_t segue_prefetch_bytes_read(void) { return atomic_load(&bytes_read); }

#else /* no futex: not built in */
void prefetch_pause(void) {}
void prefetch_after(const void *weights) { (void)weights; }
int segue_prefetch_order(const int8_t *const *buffers, const int64_t *bytes, int count, int64_t budget) {
    (void)buffers, (void)bytes, (void)budget;
    return count > 0 ? -1 : 0;
}
int64_t segue_prefetch_bytes_read(void) { return 0; }
#endif
