/*
 * Growth analysis, periodic and on-demand reports: the checker's own
 * thread samples live bytes per creation site at a fixed interval and
 * keeps a bounded series per site (halving its resolution when full, so a
 * run of any length fits in 64 points). At report time a site whose live
 * bytes kept rising through the second half of the run is flagged as
 * growing — the reachable-but-never-trimmed cache or buffer that no exit
 * report calls a leak — and one that rose and then held steady is listed
 * as levelled off.
 *
 * The thread is created with the ledger guard held, so it is not booked
 * as the program's, and it makes no descriptors: an on-demand report is
 * requested by a signal handler that only sets a flag.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

#define SERIES_LEN 64
#define MAX_TRACKED 16384
#define SLAB 64
/* Sites below this many live bytes are not worth a series. */
#define TRACK_MIN_BYTES 4096
/* A site is reported only once its rise is at least this large, or
 * STEADY_MIN_BYTES when nearly every one of at least STEADY_STEPS samples
 * in the second half of the run rose (a short run's slow, steady leak). */
#define GROWTH_MIN_BYTES (64 * 1024)
#define STEADY_MIN_BYTES (8 * 1024)
#define STEADY_STEPS 12
/* Sampling starts this fast and slows to the configured interval as the
 * run gets longer (every run-time/RAMP_POINTS), so that a run of a few
 * seconds has enough samples to judge and a long one costs no more. */
#define FIRST_INTERVAL_NS (50 * 1000000LL)
#define RAMP_POINTS 48
#define SAMPLE_SHARE 20
#define SITE_INDEX_CAP (1u << 18)

typedef struct series {
    stw_site site;
    int kind;
    int n;        /* points stored */
    int stride;   /* samples per point */
    long counter; /* samples seen since the series started */
    long gen;     /* last sample that gave this series a point */
    int64_t v[SERIES_LEN];
    int64_t t[SERIES_LEN]; /* when (ns): samples are not evenly spaced */
} series;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static series **by_site; /* site id -> series, reserved lazily */
static series *slab;
static int slab_used = SLAB;
static int ntracked;
static series *tracked[MAX_TRACKED];
static int64_t interval_ns;
static int64_t last_sample_ns;
static int64_t start_ns;
static int64_t sample_cost_ns; /* how long the last sample took */
static atomic_int report_requested;
static atomic_int thread_running;
/* A fatal signal's exit report: requested by its handler, written by this
 * module's thread (whose allocator arena and locks the interrupted thread
 * cannot be holding), then acknowledged. */
static atomic_int final_requested;
static atomic_int final_done;
/* The thread's own stack, so that the pointer scan can leave it out: the
 * copies of the ledger's records it makes while sampling and reporting
 * hold the address of every block and mapping. */
#define THREAD_STACK_BYTES (8u << 20)
static uintptr_t stack_lo, stack_hi;
static atomic_long thread_tid;

static series *series_for(stw_site site, int kind)
{
    if (site == 0 || site >= SITE_INDEX_CAP)
        return NULL;
    if (by_site == NULL &&
        (by_site = stw__pages_reserve(sizeof(series *) * SITE_INDEX_CAP)) == NULL)
        return NULL;
    if (by_site[site] != NULL)
        return by_site[site];
    if (ntracked >= MAX_TRACKED)
        return NULL;
    if (slab_used == SLAB) {
        slab = stw__pages_alloc(sizeof(series) * SLAB);
        if (slab == NULL)
            return NULL;
        slab_used = 0;
    }
    series *s = &slab[slab_used++];
    *s = (series){.site = site, .kind = kind, .stride = 1};
    by_site[site] = s;
    tracked[ntracked++] = s;
    return s;
}

static void push(series *s, int64_t bytes, int64_t now)
{
    if (s->counter++ % s->stride != 0)
        return;
    if (s->n == SERIES_LEN) {
        /* Keep every second point (the later of each pair): same span,
         * half the resolution. */
        for (int i = 0; i < SERIES_LEN / 2; i++) {
            s->v[i] = s->v[2 * i + 1];
            s->t[i] = s->t[2 * i + 1];
        }
        s->n = SERIES_LEN / 2;
        s->stride *= 2;
    }
    s->t[s->n] = now;
    s->v[s->n++] = bytes;
}

static void sample(int64_t now)
{
    static long gen;
    uint64_t kinds = stw__copts.kinds & ~STW_KIND_BIT(stw__kind_internal);
    stw_snapshot_opts so = {.kinds = kinds};
    stw_snapshot *snap = NULL;
    if (stw_snapshot_new(&so, &snap) != 0)
        return;
    pthread_mutex_lock(&lock);
    gen++;
    for (size_t i = 0; i < snap->nsites; i++) {
        const stw_site_stat *st = &snap->sites[i];
        series *s = st->site < SITE_INDEX_CAP && by_site ? by_site[st->site] : NULL;
        if (s == NULL && st->live_bytes >= TRACK_MIN_BYTES)
            s = series_for(st->site, st->kind);
        if (s != NULL) {
            push(s, st->live_bytes, now);
            s->gen = gen;
        }
    }
    /* A tracked site with nothing live is absent from the snapshot: 0. */
    for (int i = 0; i < ntracked; i++) {
        if (tracked[i]->gen != gen) {
            push(tracked[i], 0, now);
            tracked[i]->gen = gen;
        }
    }
    pthread_mutex_unlock(&lock);
    stw_snapshot_free(&snap);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&report_requested, 1);
}

static void *run(void *arg)
{
    (void)arg;
    /* Everything this thread allocates is the checker's, never the program's. */
    stw_ledger_guard_enter();
    atomic_store(&thread_tid, (long)syscall(SYS_gettid));
    atomic_store(&thread_running, 1);
    int64_t every_ns = (int64_t)stw__copts.report_every_s * 1000000000;
    int64_t next_report = every_ns > 0 ? stw_now_ns() + every_ns : INT64_MAX;
    start_ns = stw_now_ns();
    for (;;) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        if (atomic_load(&final_requested)) {
            stw_ledger_guard_exit();
            stw__check_final_report(atomic_load(&final_requested));
            atomic_store(&final_done, 1);
            return NULL;
        }
        int64_t now = stw_now_ns();
        int64_t every = (now - start_ns) / RAMP_POINTS;
        if (every < FIRST_INTERVAL_NS)
            every = FIRST_INTERVAL_NS;
        if (every > interval_ns)
            every = interval_ns;
        /* Sampling never takes more than 1/SAMPLE_SHARE of the time
         * (a sample costs more the more records there are). */
        if (every < sample_cost_ns * SAMPLE_SHARE)
            every = sample_cost_ns * SAMPLE_SHARE;
        if (interval_ns > 0 && now - last_sample_ns >= every) {
            last_sample_ns = now;
            sample(now);
            sample_cost_ns = stw_now_ns() - now;
        }
        if (atomic_exchange(&report_requested, 0)) {
            stw_ledger_guard_exit();
            stw__check_report(false, "on demand");
            stw_ledger_guard_enter();
        }
        if (now >= next_report) {
            next_report = now + every_ns;
            stw_ledger_guard_exit();
            stw__check_report(false, "periodic");
            stw_ledger_guard_enter();
        }
    }
    return NULL;
}

void stw__growth_start(void)
{
    const char *ms = getenv("STW_CHECK_SAMPLE_MS");
    interval_ns = (int64_t)(ms != NULL ? atoi(ms) : 1000) * 1000000;
    const char *sig = getenv("STW_CHECK_REPORT_SIGNAL");
    int signo = sig != NULL ? atoi(sig) : 0;
    if (signo > 0 && signo < NSIG) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(signo, &sa, NULL);
    }
    /* The thread also writes the report when a signal kills the program,
     * so it runs even with sampling and periodic reports off. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* A stack of our own, reserved (pages cost nothing until touched),
     * with an inaccessible guard page at its low end. */
    char *stack = stw__pages_reserve(THREAD_STACK_BYTES);
    if (stack != NULL &&
        (mprotect(stack, 4096, PROT_NONE) != 0 ||
         pthread_attr_setstack(&attr, stack + 4096, THREAD_STACK_BYTES - 4096) != 0)) {
        stw__pages_free(stack, THREAD_STACK_BYTES);
        stack = NULL;
    }
    /* The program's signals stay with the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (stack != NULL) {
        stack_lo = (uintptr_t)stack;
        stack_hi = stack_lo + THREAD_STACK_BYTES;
    }
    if (pthread_create(&t, &attr, run, NULL) == 0) {
        /* scan.c knows the thread by this name until it has run. */
        pthread_setname_np(t, "steward-check");
    } else if (stack != NULL) {
        stack_lo = stack_hi = 0;
        stw__pages_free(stack, THREAD_STACK_BYTES);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

bool stw__checker_thread(uintptr_t *lo, uintptr_t *hi, long *tid)
{
    long t = atomic_load(&thread_tid);
    if (t == 0)
        return false;
    *lo = stack_lo;
    *hi = stack_hi;
    *tid = t;
    return true;
}

void stw__check_fatal_report(int sig)
{
    if (!atomic_load(&thread_running)) {
        stw__check_final_report(sig);
        return;
    }
    atomic_store(&final_requested, sig);
    /* nanosleep is async-signal-safe; give the report ten seconds at most. */
    for (int i = 0; i < 1000 && !atomic_load(&final_done); i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

void stw__growth_forked(void)
{
    atomic_store(&thread_running, 0);
}

int stw__growth_analyse(stw__growth *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ntracked; i++) {
        const series *s = tracked[i];
        if (s->n < 8)
            continue;
        /* The middle of the series' time span (samples are denser early). */
        int m = 0;
        int64_t half = s->t[0] + (s->t[s->n - 1] - s->t[0]) / 2;
        while (m < s->n - 2 && s->t[m] < half)
            m++;
        int64_t first = s->v[0], mid = s->v[m], last = s->v[s->n - 1], peak = 0;
        for (int k = 0; k < s->n; k++)
            peak = s->v[k] > peak ? s->v[k] : peak;
        if (peak - first < STEADY_MIN_BYTES)
            continue;
        /* Rising through the second half: most steps up, and a real rise;
         * a smaller rise counts when nearly every one of many steps rose. */
        int ups = 0, steps = 0;
        for (int k = m + 1; k < s->n; k++, steps++)
            ups += s->v[k] > s->v[k - 1];
        bool big = peak - first >= GROWTH_MIN_BYTES && last - mid >= GROWTH_MIN_BYTES / 2;
        bool steady =
            steps >= STEADY_STEPS && ups * 10 >= steps * 9 && last - mid >= STEADY_MIN_BYTES / 2;
        bool growing = last > mid + (mid / 10) && ups * 10 >= steps * 6 && (big || steady);
        /* Levelled off: it rose, it still holds most of the rise, and it
         * stays there. A site that rose and gave it all back (a reload's
         * temporary copy, "from 0 to 0 bytes") is no finding. */
        bool levelled = !growing && peak - first >= GROWTH_MIN_BYTES &&
                        peak >= 2 * (first > 0 ? first : 1) && last - first >= (peak - first) / 2 &&
                        (last >= mid ? last - mid : mid - last) <= last / 10;
        if (!growing && !levelled)
            continue;
        double secs = (double)(s->t[s->n - 1] - s->t[m]) / 1e9;
        stw__growth g = {.site = s->site,
                         .kind = s->kind,
                         .growing = growing,
                         .samples = s->n,
                         .first_bytes = first,
                         .mid_bytes = mid,
                         .last_bytes = last,
                         .peak_bytes = peak,
                         .bytes_per_s = secs > 0 ? (double)(last - mid) / secs : 0};
        /* Keep the strongest: growing before levelled, then by rise. */
        int pos = n;
        while (pos > 0) {
            const stw__growth *p = &out[pos - 1];
            bool better = g.growing != p->growing
                              ? g.growing
                              : (g.last_bytes - g.first_bytes) > (p->last_bytes - p->first_bytes);
            if (!better)
                break;
            pos--;
        }
        if (pos >= max)
            continue;
        int end = n < max ? n : max - 1;
        memmove(&out[pos + 1], &out[pos], sizeof(*out) * (size_t)(end - pos));
        out[pos] = g;
        if (n < max)
            n++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}
