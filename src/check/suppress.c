/*
 * Suppressions, in LeakSanitizer's syntax: one rule per line,
 * "leak:PATTERN"; '#' starts a comment line; blank lines are ignored.
 * A finding is suppressed when any frame of its creation stack matches a
 * rule by function name, module (the shared object's file name or its
 * full path) or source file. PATTERN is matched as in LSan: a substring
 * unless anchored with a leading '^' or a trailing '$', with '*' standing
 * for any run of characters.
 *
 * "leak:" applies to findings of every kind. As an extension a rule may
 * name a ledger kind instead ("thread:worker_main", "fd:open_log") to apply
 * to that kind only. Lines of any other type (a TSan or ASan file's
 * "race:", "interceptor_via_fun:" and so on) are skipped with a warning, so
 * one file can serve several tools.
 *
 * The defaults compiled in below are always loaded before the user's file.
 *
 * Loading runs at initialisation, possibly inside the program's first
 * malloc, so it reads the file with raw system calls into mmap'ed memory.
 * Matching symbolizes frames (libdw allocates; the report holds the ledger
 * guard, so those allocations are the checker's own) and caches the
 * result per program counter, since the same frames recur in many stacks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

/*
 * The default suppressions, in the file syntax, loaded before the user's
 * file. A correct program must report nothing, so this is where a leak
 * that glibc, the loader or a common runtime makes on purpose would be
 * silenced. None is needed at present: what those keep for the life of
 * the process is still reachable (from their data segments, the main
 * thread's TLS and DTV, or as the loader's own allocations, which the scan
 * treats as roots), and still-reachable blocks are not leaks. See
 * docs/checker-heap.md for the programs this was checked with; a rule
 * added here must name the function that allocates, anchored ("^name$").
 */
static const char default_rules[] = "# no default rules: see the comment above\n";

#define MAX_RULES 1024
#define PATTERN_MAX 256
#define TYPE_MAX 32

typedef struct rule {
    char type[TYPE_MAX]; /* "leak" or a kind name */
    char pattern[PATTERN_MAX];
} rule;

static rule *rules;
static int nrules;

/* ---- pattern matching ---- */

/* '*'-glob of @p (length @pn) against all of @s. */
static bool glob(const char *p, size_t pn, const char *s)
{
    size_t pi = 0, star = (size_t)-1;
    const char *mark = s;
    while (*s) {
        if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = s;
        } else if (pi < pn && p[pi] == *s) {
            pi++;
            s++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            s = ++mark;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

/* LSan's template match: substring unless anchored by '^' and/or '$'. An
 * empty string (an unknown name) never matches. */
static bool template_match(const char *pat, const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    char buf[PATTERN_MAX + 4];
    size_t n = 0;
    if (*pat == '^')
        pat++;
    else
        buf[n++] = '*';
    size_t len = strlen(pat);
    bool end = len > 0 && pat[len - 1] == '$';
    if (end)
        len--;
    memcpy(buf + n, pat, len);
    n += len;
    if (!end)
        buf[n++] = '*';
    return glob(buf, n, s);
}

/* ---- loading ---- */

static void warn(const char *path, int line, const char *what, const char *text, size_t tlen)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "==%d== steward check: %s:%d: %s '%.*s', line ignored\n",
                     (int)getpid(), path, line, what, (int)(tlen > 200 ? 200 : tlen), text);
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static bool known_type(const char *type)
{
    return strcmp(type, "leak") == 0 || stw_kind_lookup(type) >= 0;
}

/* Parse one line (not NUL-terminated). */
static void add_line(const char *src, int lineno, const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    if (len == 0 || *s == '#')
        return;
    const char *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s || (size_t)(colon - s) >= TYPE_MAX) {
        warn(src, lineno, "not a TYPE:PATTERN rule", s, len);
        return;
    }
    size_t tlen = (size_t)(colon - s);
    size_t plen = len - tlen - 1;
    if (plen == 0 || plen >= PATTERN_MAX) {
        warn(src, lineno, plen == 0 ? "empty pattern" : "pattern too long", s, len);
        return;
    }
    if (nrules >= MAX_RULES) {
        warn(src, lineno, "too many rules", s, len);
        return;
    }
    rule *r = &rules[nrules];
    memcpy(r->type, s, tlen);
    r->type[tlen] = '\0';
    if (!known_type(r->type)) {
        warn(src, lineno, "unknown suppression type", s, len);
        return;
    }
    memcpy(r->pattern, colon + 1, plen);
    r->pattern[plen] = '\0';
    nrules++;
}

static void add_text(const char *src, const char *text, size_t len)
{
    int lineno = 1;
    while (len > 0) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) : len;
        add_line(src, lineno++, text, n);
        if (nl == NULL)
            break;
        text += n + 1;
        len -= n + 1;
    }
}

static int load_file(const char *path)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 64 * 1024, len = 0;
    char *buf = stw__pages_alloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            char *nb = stw__pages_alloc(cap * 2);
            if (nb == NULL) {
                rc = -ENOMEM;
                break;
            }
            memcpy(nb, buf, len);
            stw__pages_free(buf, cap);
            buf = nb;
            cap *= 2;
        }
        long n = syscall(SYS_read, fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break;
        else
            len += (size_t)n;
    }
    syscall(SYS_close, fd);
    if (rc == 0)
        add_text(path, buf, len);
    stw__pages_free(buf, cap);
    return rc;
}

int stw__supp_load(const char *path)
{
    if (rules == NULL) {
        rules = stw__pages_reserve(sizeof(rule) * MAX_RULES);
        if (rules == NULL)
            return -ENOMEM;
        add_text("(defaults)", default_rules, sizeof(default_rules) - 1);
    }
    return path != NULL ? load_file(path) : 0;
}

/* ---- symbol cache ---- */

#define CACHE_SLOTS 4096

typedef struct sym_entry {
    void *pc;
    stw_symbol sym;
    char path[256]; /* the module's full path, from dladdr */
} sym_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static sym_entry *cache;

static void resolve(void *pc, sym_entry *e)
{
    e->pc = pc;
    if (stw_symbolize(pc, &e->sym) != 0)
        memset(&e->sym, 0, sizeof(e->sym));
    Dl_info info;
    e->path[0] = '\0';
    /* pc - 1: the call instruction, as stw_symbolize does. */
    if (dladdr((char *)pc - 1, &info) != 0 && info.dli_fname != NULL) {
        size_t n = strlen(info.dli_fname);
        if (n >= sizeof(e->path))
            n = sizeof(e->path) - 1;
        memcpy(e->path, info.dli_fname, n);
        e->path[n] = '\0';
    }
}

/* Copy the symbol of @pc into @out, from the cache when possible. Called
 * with cache_lock held. */
static void lookup(void *pc, sym_entry *out)
{
    if (cache == NULL)
        cache = stw__pages_reserve(sizeof(sym_entry) * CACHE_SLOTS);
    if (cache == NULL) {
        resolve(pc, out);
        return;
    }
    size_t h = (size_t)(((uintptr_t)pc * UINT64_C(0x9e3779b97f4a7c15)) >> 52) & (CACHE_SLOTS - 1);
    for (size_t probe = 0; probe < CACHE_SLOTS; probe++) {
        sym_entry *e = &cache[(h + probe) & (CACHE_SLOTS - 1)];
        if (e->pc == pc) {
            *out = *e;
            return;
        }
        if (e->pc == NULL) {
            resolve(pc, e);
            *out = *e;
            return;
        }
    }
    /* Full: this and every later new pc are resolved each time. */
    resolve(pc, out);
}

static bool rule_matches(const rule *r, const sym_entry *e)
{
    return template_match(r->pattern, e->sym.func) || template_match(r->pattern, e->sym.module) ||
           template_match(r->pattern, e->path) || template_match(r->pattern, e->sym.file);
}

bool stw__supp_match(stw_site site)
{
    if (nrules == 0)
        return false;
    void *pcs[STW_STACK_MAX];
    int kind = -1;
    int n = stw_site_stack(site, &kind, pcs, STW_STACK_MAX);
    if (n <= 0)
        return false;
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < n && !hit; i++) {
        sym_entry e;
        lookup(pcs[i], &e);
        for (int k = 0; k < nrules && !hit; k++) {
            const rule *r = &rules[k];
            if (strcmp(r->type, "leak") != 0 && stw_kind_lookup(r->type) != kind)
                continue;
            hit = rule_matches(r, &e);
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}
