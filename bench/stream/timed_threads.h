// The timing harness shared by stream_read.c and compute_peak.c: `threads` threads each run work(t, arg) once,
// released together by a barrier, and the wall time between the release and the last one finishing is returned.
#pragma once
#include <pthread.h>
#include <time.h>

#define TIMED_MAX_THREADS 64

typedef void (*timed_work)(int thread, void* arg);
typedef struct { timed_work work; void* arg; int thread; pthread_barrier_t* bar; } TimedJob;

static double timed_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void* timed_worker(void* p) {
  TimedJob* j = (TimedJob*)p;
  pthread_barrier_wait(j->bar);
  j->work(j->thread, j->arg);
  pthread_barrier_wait(j->bar);
  return NULL;
}

// Seconds for all threads (1..TIMED_MAX_THREADS) to run their work.
static double timed_run(timed_work work, void* arg, int threads) {
  pthread_t th[TIMED_MAX_THREADS];
  TimedJob jobs[TIMED_MAX_THREADS];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, threads + 1);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (TimedJob){work, arg, t, &bar};
    pthread_create(&th[t], NULL, timed_worker, &jobs[t]);
  }
  pthread_barrier_wait(&bar);
  const double t0 = timed_now();
  pthread_barrier_wait(&bar);
  const double s = timed_now() - t0;
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  pthread_barrier_destroy(&bar);
  return s;
}
