/* nncompiler C runtime: the thread pool compiled models run their kernels on.
 *
 * A compiled model splits each kernel into tasks and calls nnc_parallel_for;
 * the pool's workers and the calling thread take tasks until none are left.
 * The call returns once every task has finished: it never waits for a worker
 * that has not started (an idle or descheduled worker just misses the job),
 * so a busy machine slows a model down but does not stall it.
 * The pool lives in caller-provided storage (no malloc): declare an
 * nnc_pool, call nnc_pool_init, pass it to the model, nnc_pool_destroy at
 * the end.  A NULL pool runs every task on the calling thread.
 */
#ifndef NNC_RUNTIME_H
#define NNC_RUNTIME_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NNC_MAX_THREADS 64
#define NNC_DEFAULT_SPIN_NS 20000 /* 20 us: covers the gap between two kernels; idle longer, a worker sleeps */

typedef void (*nnc_task_fn)(void *args, int64_t task);

typedef struct nnc_pool {
    int threads;                    /* workers + the calling thread */
    pthread_t workers[NNC_MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    volatile int64_t generation;    /* odd while a job is open; +1 to open, +1 to close */
    volatile int stop;
    nnc_task_fn fn;
    void *args;
    int64_t n_tasks;
    volatile int64_t next_task;     /* atomic: the next task to take */
    volatile int64_t active;        /* atomic: workers inside the open job */
    int64_t spin;                   /* nanoseconds a worker spins before it sleeps */
    volatile int64_t sleepers;      /* atomic: workers asleep on `wake` (the opener wakes only those) */
    volatile int64_t done;          /* atomic: tasks of the open job finished */
} nnc_pool;

/* Start a pool of `threads` threads in all (<= 0: one per online CPU). 0 on success. */
int nnc_pool_init(nnc_pool *pool, int threads);
void nnc_pool_destroy(nnc_pool *pool);
int nnc_pool_threads(const nnc_pool *pool);
/* How long an idle worker spins before it sleeps (0: sleep at once; it then costs a futex wake-up,
 * tens of microseconds, to start each job).  Default NNC_DEFAULT_SPIN_NS. */
void nnc_pool_set_spin_ns(nnc_pool *pool, int64_t ns);

/* Run fn(args, t) for t in [0, n_tasks) on the pool; returns when all are done. */
void nnc_parallel_for(nnc_pool *pool, nnc_task_fn fn, void *args, int64_t n_tasks);

/* The same over a batch: runs fn(slots_b, t) for every sample b in [0, batch) and task t in
 * [0, n_tasks), where slots_b[k] = slots[k] + b * strides[k] bytes (stride 0: shared by every
 * sample, e.g. weights).  The batch x tasks calls are split over the pool's threads. */
#define NNC_MAX_SLOTS 256
void nnc_parallel_for_batched(nnc_pool *pool, nnc_task_fn fn, void *const *slots, const int64_t *strides,
                              int64_t n_slots, int64_t n_tasks, int64_t batch);

/* Monotonic clock in nanoseconds (the profiling entry point times kernels with it). */
int64_t nnc_now_ns(void);

/* AMX tile kernels call this before their first tile instruction: Linux hands a process the
 * AMX register state only after arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).  Asked
 * once per process (every thread then has it); if the kernel refuses, it says so and aborts
 * (the tile instructions would fault). */
void nnc_amx_enable(void);

/* Heap-allocated pool for callers that prefer it (the Python runtime). */
nnc_pool *nnc_pool_create(int threads);
void nnc_pool_free(nnc_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
