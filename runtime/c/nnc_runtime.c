/* nncompiler C runtime: a small spinning thread pool (see nnc_runtime.h). */
#define _GNU_SOURCE
#include "nnc_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

int64_t nnc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How a job runs.  The caller opens it (generation becomes odd), takes tasks
 * like any worker, waits until `done` counts them all, closes it (generation
 * even again), then waits for the workers still inside it (`active`) to
 * leave before the fields may be reused.  A worker enters a job by counting
 * itself in `active` and then checking that the job is still open: if the
 * check sees it open, the caller's close comes later in the seq_cst order
 * and its wait on `active` sees the worker; if not, the worker leaves
 * without touching the job.  So the caller waits only for tasks and for
 * workers that are inside, never for a worker that is asleep or not
 * scheduled: on a busy machine the job finishes with whoever is running. */
static void run_tasks(nnc_pool *pool) {
    for (;;) {
        int64_t t = __atomic_fetch_add(&pool->next_task, 1, __ATOMIC_ACQ_REL);
        if (t >= pool->n_tasks) return;
        pool->fn(pool->args, t);
        __atomic_fetch_add(&pool->done, 1, __ATOMIC_RELEASE);
    }
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait (spin, then sleep) until the generation differs from `seen` or the pool stops.
 * The spin is measured in time, not iterations (a pause costs 10 to 150 cycles depending
 * on the CPU): kernels come in quick succession, and so do the calls of a serving loop,
 * so a worker that spins ~20 us is there for the next kernel within nanoseconds; past that
 * it sleeps (on a loaded machine longer spinning only takes CPU time from the caller), and
 * the caller wakes it only if it is asleep. */
static int64_t wait_for_change(nnc_pool *pool, int64_t seen) {
    int64_t spin_ns = __atomic_load_n(&pool->spin, __ATOMIC_RELAXED);
    if (spin_ns > 0) {
        int64_t start = nnc_now_ns();
        for (int64_t spins = 1;; spins++) {
            int64_t g = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
            if (g != seen || __atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)) return g;
            cpu_relax();
            if ((spins & 63) == 0 && nnc_now_ns() - start > spin_ns) break;
        }
    }
    pthread_mutex_lock(&pool->lock);
    /* Counted before the generation is read again (both sequentially consistent), so an opener
     * either sees this sleeper and broadcasts under the lock, or this check sees its job. */
    __atomic_fetch_add(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pool->generation, __ATOMIC_SEQ_CST) == seen &&
           !__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&pool->wake, &pool->lock);
    __atomic_fetch_sub(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&pool->lock);
    return __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
}

static void *worker_main(void *arg) {
    nnc_pool *pool = (nnc_pool *)arg;
    int64_t seen = 0;
    for (;;) {
        int64_t g = wait_for_change(pool, seen);
        if (__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)) return NULL;
        seen = g;
        if (!(g & 1)) continue; /* that job is over already */
        __atomic_fetch_add(&pool->active, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&pool->generation, __ATOMIC_SEQ_CST) == g) run_tasks(pool);
        __atomic_fetch_sub(&pool->active, 1, __ATOMIC_SEQ_CST);
    }
}

int nnc_pool_init(nnc_pool *pool, int threads) {
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > NNC_MAX_THREADS) threads = NNC_MAX_THREADS;
    pool->threads = threads;
    pool->generation = 0;
    pool->stop = 0;
    pool->n_tasks = 0;
    pool->next_task = 0;
    pool->active = 0;
    pool->done = 0;
    pool->spin = NNC_DEFAULT_SPIN_NS;
    pool->sleepers = 0;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
            pool->threads = i + 1;
            return -1;
        }
    }
    return 0;
}

void nnc_pool_destroy(nnc_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->threads - 1; i++) pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
}

int nnc_pool_threads(const nnc_pool *pool) { return pool ? pool->threads : 1; }

void nnc_pool_set_spin_ns(nnc_pool *pool, int64_t ns) {
    if (pool) __atomic_store_n(&pool->spin, ns < 0 ? 0 : ns, __ATOMIC_RELAXED);
}

void nnc_parallel_for(nnc_pool *pool, nnc_task_fn fn, void *args, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (!pool || pool->threads <= 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(args, t);
        return;
    }
    /* No worker is inside a job here (the previous call waited), so the fields are ours. */
    pool->fn = fn;
    pool->args = args;
    pool->n_tasks = n_tasks;
    __atomic_store_n(&pool->next_task, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->done, 0, __ATOMIC_RELAXED);
    __atomic_fetch_add(&pool->generation, 1, __ATOMIC_SEQ_CST); /* open */
    if (__atomic_load_n(&pool->sleepers, __ATOMIC_SEQ_CST) > 0) { /* spinning workers need no call */
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    run_tasks(pool);
    while (__atomic_load_n(&pool->done, __ATOMIC_ACQUIRE) < n_tasks) cpu_relax();
    __atomic_fetch_add(&pool->generation, 1, __ATOMIC_SEQ_CST); /* close */
    while (__atomic_load_n(&pool->active, __ATOMIC_SEQ_CST) > 0) cpu_relax();
}

typedef struct batched_job {
    nnc_task_fn fn;
    void *const *slots;
    const int64_t *strides;
    int64_t n_slots, n_tasks;
} batched_job;

static void batched_task(void *args, int64_t t) {
    const batched_job *job = (const batched_job *)args;
    int64_t sample = t / job->n_tasks, task = t % job->n_tasks;
    void *local[NNC_MAX_SLOTS];
    for (int64_t k = 0; k < job->n_slots; k++)
        local[k] = (char *)job->slots[k] + sample * job->strides[k];
    job->fn(local, task);
}

void nnc_parallel_for_batched(nnc_pool *pool, nnc_task_fn fn, void *const *slots, const int64_t *strides,
                              int64_t n_slots, int64_t n_tasks, int64_t batch) {
    if (batch == 1 || n_slots > NNC_MAX_SLOTS) {
        /* n_slots > NNC_MAX_SLOTS never happens: the compiler refuses such kernels. */
        if (batch == 1) nnc_parallel_for(pool, fn, (void *)slots, n_tasks);
        return;
    }
    batched_job job = {fn, slots, strides, n_slots, n_tasks};
    nnc_parallel_for(pool, batched_task, &job, n_tasks * batch);
}

nnc_pool *nnc_pool_create(int threads) {
    nnc_pool *pool = (nnc_pool *)calloc(1, sizeof(nnc_pool));
    if (pool && nnc_pool_init(pool, threads) != 0) {
        nnc_pool_destroy(pool);
        free(pool);
        return NULL;
    }
    return pool;
}

void nnc_pool_free(nnc_pool *pool) {
    if (!pool) return;
    nnc_pool_destroy(pool);
    free(pool);
}

void nnc_amx_enable(void) {
    static int state; /* 0: not asked yet, 1: granted */
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1) return;
#if defined(__linux__) && defined(__x86_64__)
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0) {
        __atomic_store_n(&state, 1, __ATOMIC_RELEASE);
        return;
    }
#endif
    fputs("nnc runtime: the operating system refused the AMX tile state (Linux 5.16+ on an AMX CPU "
          "is needed); rebuild the model without AMX (--option features=... without amx-int8)\n", stderr);
    abort();
}
