/* A small pool of encoder threads. Jobs are taken in submission order by idle workers and
 * handed back to the submitting thread in the same order (h5ml__pool_next), so every HDF5
 * call stays on the caller's thread and chunks reach the file in a deterministic order.
 * Workers only run the job's function (filtering: shuffle, zlib, LZF), never HDF5. A caller
 * waiting for the oldest job runs queued ones itself meanwhile. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FREE, QUEUED, RUNNING, DONE };

struct h5ml_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *threads;
    int nthreads;
    h5ml_job *slots;
    int *state;
    int nslots;
    int64_t head, tail; /* jobs [head, tail) are in flight, by sequence number */
    bool stop;
    scratch *scratch;   /* one per worker, and the caller's (last) */
};

/* Runs the oldest queued job, if any, with the thread's scratch (called and returning with
 * p->mu held); false if none. */
static bool run_queued(h5ml_pool *p, scratch *own)
{
    int pick = -1;
    for (int64_t s = p->head; s < p->tail && pick < 0; s++)
        if (p->state[s % p->nslots] == QUEUED) pick = (int)(s % p->nslots);
    if (pick < 0) return false;
    p->state[pick] = RUNNING;
    pthread_mutex_unlock(&p->mu);
    p->slots[pick].run(&p->slots[pick], own);
    pthread_mutex_lock(&p->mu);
    p->state[pick] = DONE;
    pthread_cond_broadcast(&p->done);
    return true;
}

typedef struct worker_arg { h5ml_pool *p; int id; } worker_arg;

static void *worker(void *arg)
{
    h5ml_pool *p = ((worker_arg *)arg)->p;
    scratch *s = &p->scratch[((worker_arg *)arg)->id];
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (run_queued(p, s)) continue;
        if (p->stop) break;
        pthread_cond_wait(&p->work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int h5ml__default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

h5ml_pool *h5ml__pool_new(int threads)
{
    if (threads < 1) return NULL;
    h5ml_pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    /* Chunks reach the file in order, so a long job (a large chunk, or one that compresses
     * slowly) holds back the finished ones behind it; with too few slots the workers then
     * run dry. 16 per thread keeps them busy (2 threads, 100,000 64-atom structures,
     * gzip 4: 0.85 s with 6 slots, 0.81 s with 10, 0.76 s with 20, 0.75 s with 32). A slot
     * holds up to two chunks (rows and filtered bytes, about 0.8 MB with the default chunk
     * sizes), so past 4 threads the slots grow by 2 per thread (64 threads: 130 slots). */
    p->nslots = 16 * threads < 64 ? 16 * threads : 64 > 2 * threads + 2 ? 64 : 2 * threads + 2;
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    p->state = calloc((size_t)p->nslots, sizeof *p->state);
    /* The calling thread is one of `threads`: it encodes queued jobs whenever it waits for
     * one, so it starts threads - 1 workers. With a worker per core the caller made one
     * thread too many whenever it waited: 2 cores, 100,000 64-atom structures, lzf, median of
     * 5: 0.481 s with 2 workers, 0.472 s with 1 (gzip 4: 0.779, 0.770 s). */
    int workers = threads > 1 ? threads - 1 : 1;
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    p->scratch = calloc((size_t)workers + 1, sizeof *p->scratch);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!p->slots || !p->state || !p->threads || !p->scratch) {
        h5ml__pool_free(p);
        return NULL;
    }
    for (int i = 0; i < workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a == NULL) break;
        *a = (worker_arg){ p, i };
        if (pthread_create(&p->threads[i], NULL, worker, a) != 0) {
            free(a);
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        h5ml__pool_free(p);
        return NULL;
    }
    return p;
}

void h5ml__pool_free(h5ml_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    for (int k = 0; p->slots && k < p->nslots; k++) h5ml__job_release(&p->slots[k]);
    for (int k = 0; p->scratch && k <= p->nthreads; k++) h5ml__scratch_free(&p->scratch[k]);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->state);
    free(p->threads);
    free(p->scratch);
    free(p);
}

h5ml_job *h5ml__pool_slot(h5ml_pool *p)
{
    pthread_mutex_lock(&p->mu);
    h5ml_job *j = NULL;
    if (p->tail - p->head < p->nslots) j = &p->slots[p->tail % p->nslots];
    pthread_mutex_unlock(&p->mu);
    return j;
}

void h5ml__pool_submit(h5ml_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->state[p->tail % p->nslots] = QUEUED;
    p->tail++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
}

h5ml_job *h5ml__pool_next(h5ml_pool *p, bool wait)
{
    pthread_mutex_lock(&p->mu);
    h5ml_job *j = NULL;
    while (p->head < p->tail) {
        int k = (int)(p->head % p->nslots);
        if (p->state[k] == DONE) {
            j = &p->slots[k];
            break;
        }
        if (!wait) break;
        /* Rather than sleep while the oldest job runs, the caller encodes a queued one. */
        if (!run_queued(p, &p->scratch[p->nthreads])) pthread_cond_wait(&p->done, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return j;
}

void h5ml__pool_retire(h5ml_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->state[p->head % p->nslots] = FREE;
    p->head++;
    pthread_mutex_unlock(&p->mu);
}

int64_t h5ml__pool_pending(h5ml_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t n = p->tail - p->head;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void h5ml__job_release(h5ml_job *j)
{
    free(j->raw);
    free(j->kept);
    memset(j, 0, sizeof *j);
}
