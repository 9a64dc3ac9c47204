/* nncompiler C runtime: a small spinning thread pool (see nnc_runtime.h). */
#define _GNU_SOURCE
#include "nnc_runtime.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int64_t nnc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_tasks(nnc_pool *pool) {
    for (;;) {
        int64_t t = __atomic_fetch_add(&pool->next_task, 1, __ATOMIC_ACQ_REL);
        if (t >= pool->n_tasks) return;
        pool->fn(pool->args, t);
    }
}

static void *worker_main(void *arg) {
    nnc_pool *pool = (nnc_pool *)arg;
    int64_t seen = 0;
    for (;;) {
        /* Spin a while for the next job (kernels come in quick succession), then sleep. */
        int64_t spins = 0;
        while (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen &&
               !__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE) && spins < pool->spin) {
            __builtin_ia32_pause();
            spins++;
        }
        if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen &&
            !__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)) {
            pthread_mutex_lock(&pool->lock);
            while (pool->generation == seen && !pool->stop)
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)) return NULL;
        seen = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
        run_tasks(pool);
        __atomic_fetch_sub(&pool->active, 1, __ATOMIC_ACQ_REL);
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
    pool->spin = 20000; /* about a millisecond */
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

void nnc_parallel_for(nnc_pool *pool, nnc_task_fn fn, void *args, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (!pool || pool->threads <= 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(args, t);
        return;
    }
    pool->fn = fn;
    pool->args = args;
    pool->n_tasks = n_tasks;
    __atomic_store_n(&pool->next_task, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->active, pool->threads - 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool->lock);
    __atomic_fetch_add(&pool->generation, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    run_tasks(pool);
    /* Wait until every worker has left this job, so the next one can reuse the fields. */
    while (__atomic_load_n(&pool->active, __ATOMIC_ACQUIRE) > 0) __builtin_ia32_pause();
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
