/* The threads a decoder step's native calls share: they spin briefly between calls, then sleep.
 *
 * A step makes ~217 native calls (193 matmuls, 24 attentions), each ~30-100 us apart. With OpenMP
 * waiting passively (the engine's policy: spinning threads made steps up to 5x slower when another
 * process wanted the cores), every call woke the sleeping second thread: ~20 us a call on a 2-core
 * EPYC, ~4 ms of a 31 ms step. This team's workers instead spin for up to SPIN_NANOSECONDS after a
 * call, yielding the core every few dozen turns (so a thread that shares their core still runs),
 * and only then sleep on a condition variable: the calls of a step find them awake, and between
 * jobs they sleep as OpenMP's did.
 *
 * segue_team_run(work, context, threads) runs work(context, index, threads) for index 0..threads-1,
 * index 0 on the calling thread, and returns when all are done. Workers are started on first use
 * and live as long as the process (a forked child starts a team of its own). One caller at a time
 * (the engine's decoder runs on one thread): a call made while another runs does its work alone.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define RELAX() _mm_pause()
#else
#define RELAX() ((void)0)
#endif

#define MAX_WORKERS 63
#define SPIN_NANOSECONDS 200000LL /* after a call, a worker waits this long for the next before it sleeps */
#define YIELD_EVERY 32            /* turns of the spin between sched_yield() calls */

typedef void (*team_work)(void *context, int index, int count);

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_ullong generation; /* one per call */
    atomic_int pending;       /* workers yet to finish (or pass over) the current call */
    atomic_int sleepers;
    team_work work; /* the current call: written before its generation is published */
    void *context;
    int count;
    int workers; /* started */
} team = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

typedef struct {
    int index;
    unsigned long long seen; /* the generation before the worker's first call */
} worker_start;

static long long now_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static unsigned long long next_generation(unsigned long long seen) {
    long long started = now_nanoseconds();
    for (int turn = 1;; turn++) {
        unsigned long long generation = atomic_load(&team.generation);
        if (generation != seen) return generation;
        if (turn % YIELD_EVERY) {
            RELAX();
            continue;
        }
        if (now_nanoseconds() - started < SPIN_NANOSECONDS) {
            sched_yield();
            continue;
        }
        pthread_mutex_lock(&team.lock);
        atomic_fetch_add(&team.sleepers, 1);
        while ((generation = atomic_load(&team.generation)) == seen) pthread_cond_wait(&team.wake, &team.lock);
        atomic_fetch_sub(&team.sleepers, 1);
        pthread_mutex_unlock(&team.lock);
        return generation;
    }
}

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    unsigned long long seen = start.seen;
    for (;;) {
        seen = next_generation(seen);
        if (start.index < team.count) team.work(team.context, start.index, team.count);
        atomic_fetch_sub(&team.pending, 1);
    }
    return NULL;
}

static void forget_team_in_child(void) {
    pthread_mutex_init(&team.lock, NULL);
    pthread_cond_init(&team.wake, NULL);
    atomic_store(&team.pending, 0);
    atomic_store(&team.sleepers, 0);
    team.workers = 0;
}

/* Start workers up to `wanted`; returns how many there are. */
static int start_workers(int wanted) {
    static int fork_handler = 0;
    if (!fork_handler) {
        pthread_atfork(NULL, NULL, forget_team_in_child);
        fork_handler = 1;
    }
    while (team.workers < wanted && team.workers < MAX_WORKERS) {
        worker_start *start = malloc(sizeof(worker_start));
        if (start == NULL) break;
        start->index = team.workers + 1;
        start->seen = atomic_load(&team.generation);
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, worker_main, start);
        pthread_attr_destroy(&attributes);
        if (failed) {
            free(start);
            break;
        }
        team.workers++;
    }
    return team.workers;
}

void segue_team_run(team_work work, void *context, int threads) {
    static atomic_flag busy = ATOMIC_FLAG_INIT;
    if (threads <= 1 || atomic_flag_test_and_set(&busy)) { /* a second caller meanwhile: on its own thread */
        work(context, 0, 1);
        return;
    }
    int workers = start_workers(threads - 1);
    int count = workers + 1 < threads ? workers + 1 : threads;
    if (count <= 1) {
        work(context, 0, 1);
        atomic_flag_clear(&busy);
        return;
    }
    team.work = work;
    team.context = context;
    team.count = count;
    atomic_store(&team.pending, workers); /* every worker passes each call, if only to skip it */
    atomic_fetch_add(&team.generation, 1);
    if (atomic_load(&team.sleepers) > 0) {
        pthread_mutex_lock(&team.lock);
        pthread_cond_broadcast(&team.wake);
        pthread_mutex_unlock(&team.lock);
    }
    work(context, 0, count);
    for (int turn = 1; atomic_load(&team.pending) > 0; turn++) {
        if (turn % YIELD_EVERY)
            RELAX();
        else
            sched_yield();
    }
    atomic_flag_clear(&busy);
}
