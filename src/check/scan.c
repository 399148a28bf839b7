/*
 * Conservative pointer scan: which leaked heap blocks are still reachable,
 * which are lost, and of the lost ones which are lost only because another
 * lost block pointed to them (Valgrind's definitely/indirectly lost).
 *
 * A block is reachable when an aligned 8-byte word equal to an address
 * inside it (interior pointers count, as in LeakSanitizer; so does the end of a
 * `new T[0]` cookie, see find_target) lies in a root
 * or in a reachable block. Roots:
 *   - the writable PT_LOAD segments (data, bss, relro) of every loaded
 *     module except this library, found with dl_iterate_phdr;
 *   - the stack of every live thread, from its stack pointer to the top of
 *     its mapping (which, for threads glibc made, also holds the thread
 *     descriptor and the static TLS). Other threads' stack pointers come
 *     from /proc/self/task/TID/syscall, which the kernel fills in for a
 *     thread blocked in the kernel. The calling thread's stack is scanned
 *     from the caller of exit() when exit() is on it, else from the first
 *     frame above the checker's own (see exit_caller_sp), and its
 *     callee-saved registers from a jmp_buf;
 *   - the main thread's thread descriptor, static TLS and DTV (ld.so puts
 *     them in an anonymous mapping, not on the stack);
 *   - mappings the program made and still holds (live mmap records);
 *   - blocks the dynamic loader allocated itself (see from_loader).
 * Never roots: glibc's malloc arenas and mmap'ed chunks (blocks are
 * scanned only through the closure; in sampling mode, where most blocks
 * have no record, the memory around the sampled blocks is a root instead:
 * see scan_unsampled_heap), the ledger's own tables (they hold
 * every block's address), the stacks glibc keeps cached for reuse after
 * a join, descriptors included (stale words and dropped return values there
 * would hide leaks), and malloc's own pointers in libc's data (see
 * is_next_chunk).
 *
 * A thread whose stack pointer cannot be read (running on another CPU at
 * that moment) is covered by a heuristic: an anonymous read-write mapping
 * directly above an inaccessible one is a glibc thread stack with its
 * guard page below; malloc arenas have their inaccessible part above. Such
 * a mapping that holds no heap block is then scanned whole. When every
 * thread's stack pointer is known, the same heuristic finds the stacks of
 * exited and cached threads, whose descriptors alone are scanned (they
 * hold the thread's DTV, its pthread_getspecific values and the value it
 * returned).
 *
 * This runs inside the checker with the ledger guard held, at exit or in a
 * periodic report: memory comes from mmap only, files are read with raw
 * system calls, and nothing here calls malloc. For the exit report the
 * other threads are parked (stopworld.c) from the snapshot to the end of
 * the scan, so nothing here may take the loader's or libunwind's locks:
 * stw__scan_prepare gathers what needs them beforehand. In periodic
 * reports other threads still run while their stacks are read; the result
 * is then as conservative as the words found. Blocks and roots are read
 * only where /proc/self/maps says memory is readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

/* glibc's size of the static TLS block (with the thread descriptor on
 * x86-64); the same private entry point LeakSanitizer uses. Weak, so a libc
 * without it only loses the main thread's TLS range. */
extern void _dl_get_tls_static_info(size_t *size, size_t *align) __attribute__((weak));

extern void *__libc_malloc(size_t);

/* Room kept for a thread descriptor (glibc's struct pthread, 2.3 KiB on
 * x86-64 with glibc 2.36) above its address. */
#define TCB_AREA 4096
/* Below its stack pointer a thread may keep live data in the red zone. */
#define RED_ZONE 128
/* At most this many of the checker's own mappings are left out of roots. */
#define OWN_MAX 65536

#if defined(__GNUC__) && !defined(__clang__)
#define NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_undefined))
#else
#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#endif

enum { UNREACHED = 0, REACHED, LEADER, INDIRECT };

typedef struct blk {
    uintptr_t lo, hi; /* [lo, hi): size 0 counts as one byte */
    uint64_t seq;
    uint32_t rec; /* index into the snapshot's records */
    uint8_t state;
    bool heap; /* a malloc block (not a mapping): it has a glibc chunk header */
    bool read; /* its contents were scanned (counted once in the figure) */
} blk;

enum { MAP_R = 1, MAP_W = 2, MAP_X = 4, MAP_SHARED_ = 8 };
enum { M_ANON, M_FILE, M_MAINSTACK, M_THREADSTACK, M_HEAP, M_SPECIAL };

/* What the scanned bytes were, for the report's figure. */
enum { SC_BLOCKS, SC_GLOBALS, SC_STACKS, SC_HEAP, SC_N };

typedef struct map {
    uintptr_t lo, hi;
    uintptr_t live_from; /* lowest live stack pointer inside, 0 if none */
    uint8_t prot;
    uint8_t type;
} map;

typedef struct ctx {
    blk *b;
    size_t nb, b_bytes;
    uintptr_t min, span; /* all blocks lie in [min, min + span) */
    uint32_t *stk;
    size_t nstk, stk_bytes;
    map *m;
    size_t nm, m_bytes;
    uint32_t leader; /* block being flooded in the leader pass */
    uint32_t last;   /* block find_target found last (in_module: mapping) */
    bool leader_pass;
    int unknown_sp; /* live threads whose stack pointer was not found */
    pid_t pid;
    bool direct;      /* process_vm_readv refused: read memory in place */
    uintptr_t *chunk; /* SCAN_CHUNK bytes the scanned memory is copied into */
    /* The checker's own thread (stack range and tid; 0 when unknown): its
     * words are never roots. */
    uintptr_t own_lo, own_hi;
    long own_tid;
    /* libc's loaded extent: its data holds malloc's own bookkeeping. */
    uintptr_t libc_lo, libc_span;
    const stw_snapshot *snap;
    /* Sampling mode: the unsampled heap is a root (see scan_unsampled_heap),
     * and a hashed bitmap of the pages blocks lie on lets most words of it
     * be passed over without a search. */
    bool sampling;
    int pagemap; /* /proc/self/pagemap in sampling mode, else -1 */
    uint64_t *pages;
    int cat; /* SC_*: what scan_words is reading now */
    uint64_t scanned[SC_N + 1]; /* [SC_N]: blocks read a second time */
    uint64_t blocks_read;
    /* The checker's own mappings (its tables hold every block's address),
     * sorted [start, end) pairs: never roots. */
    uintptr_t (*own_maps)[2];
    size_t n_own;
} ctx;

#define PAGE_BITS 20
static size_t page_bit(uintptr_t a)
{
    return (size_t)(((uint64_t)(a >> 12) * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - PAGE_BITS));
}

/* False when no block lies on @w's page (sampling mode only). */
static inline bool on_block_page(const ctx *c, uintptr_t w)
{
    if (c->pages == NULL)
        return true;
    size_t b = page_bit(w);
    return (c->pages[b >> 6] >> (b & 63)) & 1;
}

/* Memory is copied out with process_vm_readv before it is scanned: other
 * threads keep running while the checker reports, and a stack or block
 * they unmap in the meantime then costs a failed read, not a crash. */
#define SCAN_CHUNK (64 * 1024)

/* Captured on the main thread by this library's constructor. */
static uintptr_t main_tcb;

/* The modules' writable data as it was when this library started, where
 * a word held an address outside every loaded module (heap, stacks,
 * anonymous or unmapped memory). A word still holding that value at scan
 * time was not written by the program after it started, so it cannot
 * point at a block or mapping made since: the loader leaves such words
 * behind (ld.so keeps its pointer to the ld.so.cache it unmapped after
 * loading, and a mapping the program makes later may land right there).
 * Sorted by address; STALE_MAX entries at most (later ones are dropped:
 * the scan is then only as conservative as it was without them). */
#define STALE_MAX 65536
typedef struct stale_word {
    uintptr_t at, value;
} stale_word;
static stale_word *stale;
static size_t nstale;
static uint64_t stale_seq; /* ledger checkpoint when they were noted */

__attribute__((constructor)) static void scan_ctor(void)
{
    main_tcb = (uintptr_t)pthread_self();
    stw__scan_note_stale_words();
}

/* True when the word @w read at @at has held that value since start and
 * so cannot refer to a block with ledger sequence number @seq, made later. */
static bool is_stale(uintptr_t at, uintptr_t w, uint64_t seq)
{
    if (seq <= stale_seq)
        return false;
    size_t lo = 0, hi = nstale;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (stale[mid].at < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nstale && stale[lo].at == at && stale[lo].value == w;
}

/* ---- the block table ---- */

static void push(ctx *c, uint32_t i)
{
    if (c->nstk < c->stk_bytes / sizeof(uint32_t))
        c->stk[c->nstk++] = i;
}

/* The dynamic loader's code, whose allocations count as roots. */
static uintptr_t loader_lo, loader_hi;

static int find_loader(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    if (info->dlpi_addr != *(const uintptr_t *)ud)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            loader_lo = info->dlpi_addr + ph->p_vaddr;
            loader_hi = loader_lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* True for a block the loader allocated itself (link maps' dependency
 * lists, DTVs, dynamic TLS blocks): it keeps them in memory of its own
 * early allocator, which is no root, and frees them when it unloads the
 * object or the thread exits. As in LeakSanitizer, such blocks count as
 * reachable and are scanned like roots. */
static bool from_loader(stw_site site)
{
    if (loader_hi == 0 || site == 0)
        return false;
    void *pc[1];
    if (stw_site_stack(site, NULL, pc, 1) != 1)
        return false;
    return (uintptr_t)pc[0] >= loader_lo && (uintptr_t)pc[0] < loader_hi;
}

/* Heap blocks and the program's own mappings are classified alike: a
 * mapping something reachable points into (CPython's obmalloc arenas, a
 * custom allocator's pool) is still reachable, and its contents are
 * scanned like a block's; one nothing points into is lost. */
static bool is_block(const stw_record *r)
{
    return r->kind == STW_KIND_HEAP || (r->kind == STW_KIND_MMAP && r->size > 0);
}

/* Kept out of line so that no block address is left in a callee-saved
 * register of the caller when the roots are scanned. */
static __attribute__((noinline)) int build_blocks(ctx *c, const stw_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nrecords; i++)
        n += is_block(&s->records[i]);
    c->b_bytes = (n + 1) * sizeof(blk);
    c->b = stw__pages_alloc(c->b_bytes);
    c->stk_bytes = (2 * n + 1) * sizeof(uint32_t);
    c->stk = stw__pages_alloc(c->stk_bytes);
    if (c->b == NULL || c->stk == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->nrecords; i++) {
        const stw_record *r = &s->records[i];
        if (!is_block(r))
            continue;
        blk *k = &c->b[c->nb++];
        k->lo = (uintptr_t)r->id;
        /* A sampled block's size is what it stands for; it spans extent. */
        k->hi = k->lo + (r->extent ? r->extent : r->size ? r->size : 1);
        k->seq = r->seq;
        k->rec = (uint32_t)i;
        k->heap = r->kind == STW_KIND_HEAP;
        k->state = from_loader(r->site) ? REACHED : UNREACHED;
    }
    if (stw__radix_sort(c->b, c->nb, sizeof(blk), offsetof(blk, lo)) != 0)
        return -ENOMEM;
    for (size_t i = 0; i < c->nb; i++)
        if (c->b[i].state == REACHED)
            push(c, (uint32_t)i);
    if (c->nb > 0) {
        c->min = c->b[0].lo;
        uintptr_t max = 0;
        for (size_t i = 0; i < c->nb; i++)
            if (c->b[i].hi > max)
                max = c->b[i].hi;
        c->span = max - c->min;
    }
    if (c->sampling && c->nb > 0) {
        c->pages = stw__pages_alloc(((size_t)1 << PAGE_BITS) / 8);
        for (size_t i = 0; c->pages != NULL && i < c->nb; i++) {
            /* Up to hi itself: find_target also takes the end of a new T[0]. */
            uintptr_t last = c->b[i].hi >> 12, first = c->b[i].lo >> 12;
            if (last - first >= ((uintptr_t)1 << PAGE_BITS)) {
                memset(c->pages, 0xff, ((size_t)1 << PAGE_BITS) / 8);
                break;
            }
            for (uintptr_t pg = first; pg <= last; pg++) {
                size_t b = page_bit(pg << 12);
                c->pages[b >> 6] |= UINT64_C(1) << (b & 63);
            }
        }
    }
    return 0;
}

/* First block whose end lies above @a. */
static size_t first_block_after(const ctx *c, uintptr_t a)
{
    size_t lo = 0, hi = c->nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->b[mid].hi <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool read_word(ctx *c, uintptr_t at, uintptr_t *out);

/* True when @w is the address of the glibc chunk that follows block @k.
 * A block whose size is not a multiple of 16 shares its last bytes with
 * the next chunk's header, and malloc's own bookkeeping in libc's data
 * (main_arena.top, last_remainder, the bins) points exactly there: such a
 * word is the allocator's, not a reference to the block. */
static bool is_next_chunk(ctx *c, const blk *k, uintptr_t w)
{
    if (!k->heap || (w & 15) != 0 || w + 8 < k->hi)
        return false;
    uintptr_t size;
    if (!read_word(c, k->lo - 8, &size) || (size & 2) != 0) /* IS_MMAPPED: no neighbour */
        return false;
    return w == k->lo - 16 + (size & ~(uintptr_t)7);
}

/* Index of the block @a points into, or of the block @a points just past
 * when that block is what `new T[0]` allocates for a T with a destructor
 * (8 bytes holding an element count of 0; the program keeps only the
 * address after it), as in LeakSanitizer. -1 otherwise. */
static long find_target(ctx *c, uintptr_t a)
{
    if (a - c->min > c->span)
        return -1;
    /* Words of a block mostly point into that block or the last one hit. */
    if (a - c->b[c->last].lo < c->b[c->last].hi - c->b[c->last].lo)
        return (long)c->last;
    size_t lo = 0, hi = c->nb; /* first block with .lo > a */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->b[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const blk *k = &c->b[lo - 1];
    if (a < k->hi) {
        c->last = (uint32_t)(lo - 1);
        return (long)lo - 1;
    }
    uintptr_t count;
    if (a == k->hi && k->heap && k->hi - k->lo == 8 && read_word(c, k->lo, &count) && count == 0)
        return (long)lo - 1;
    return -1;
}

/* The word @w, read at @at, points into a block: reach it. */
static void mark(ctx *c, uintptr_t w, uintptr_t at)
{
    long i = find_target(c, w);
    if (i < 0)
        return;
    blk *k = &c->b[i];
    /* Nothing to change (most words of a large block point into blocks
     * already reached): the checks below need not be made. */
    if (!c->leader_pass ? k->state != UNREACHED
                        : (uint32_t)i == c->leader || (k->state != UNREACHED && k->state != LEADER))
        return;
    if (nstale > 0 && is_stale(at, w, k->seq))
        return;
    /* malloc's own pointers to the chunk after a block: in libc's data
     * (the main arena), and in sampling mode also in the heap that is read
     * as a root (other arenas, free chunks' links). */
    if ((at - c->libc_lo < c->libc_span || c->cat == SC_HEAP) && is_next_chunk(c, k, w))
        return;
    if (!c->leader_pass) {
        if (k->state == UNREACHED) {
            k->state = REACHED;
            push(c, (uint32_t)i);
        }
        return;
    }
    if ((uint32_t)i == c->leader)
        return;
    /* An earlier leader reached from this one is lost only through it. */
    if (k->state == UNREACHED || k->state == LEADER) {
        k->state = INDIRECT;
        push(c, (uint32_t)i);
    }
}

static NO_SANITIZE void scan_direct(ctx *c, uintptr_t lo, uintptr_t hi)
{
    if (hi > lo)
        c->scanned[c->cat] += (hi - lo) & ~(uintptr_t)7;
    for (uintptr_t p = lo; p + 8 <= hi; p += 8) {
        uintptr_t w = *(const volatile uintptr_t *)p;
        if (w - c->min <= c->span && on_block_page(c, w))
            mark(c, w, p);
    }
}

/* One word of memory that may have gone away meanwhile. */
static NO_SANITIZE bool read_word(ctx *c, uintptr_t at, uintptr_t *out)
{
    if (c->direct) {
        *out = *(const volatile uintptr_t *)at;
        return true;
    }
    struct iovec local = {out, sizeof(*out)}, remote = {(void *)at, sizeof(*out)};
    return process_vm_readv(c->pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(*out);
}

static void scan_words(ctx *c, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    if (c->direct) {
        scan_direct(c, lo, hi);
        return;
    }
    while (lo + 8 <= hi) {
        size_t want = (hi - lo) & ~(size_t)7;
        if (want > SCAN_CHUNK)
            want = SCAN_CHUNK;
        struct iovec local = {c->chunk, want}, remote = {(void *)lo, want};
        ssize_t got = process_vm_readv(c->pid, &local, 1, &remote, 1, 0);
        if (got < 0 && (errno == EPERM || errno == ENOSYS)) {
            /* A seccomp filter (some containers) refuses the call: read in
             * place from here on, which is what every scanner without this
             * protection does. */
            c->direct = true;
            scan_direct(c, lo, hi);
            return;
        }
        if (got <= 0) {
            /* Gone or unreadable now: go on at the next page. */
            lo = (lo | 4095) + 1;
            continue;
        }
        c->scanned[c->cat] += (uint64_t)got;
        for (size_t i = 0; i < (size_t)got / 8; i++) {
            uintptr_t w = c->chunk[i];
            if (w - c->min <= c->span && on_block_page(c, w))
                mark(c, w, lo + i * 8);
        }
        lo += (uintptr_t)got;
    }
}

/* ---- /proc/self/maps ---- */

/* Index of the first mapping that ends above @a (c->nm if none). */
static size_t map_index(const ctx *c, uintptr_t a)
{
    size_t lo = 0, hi = c->nm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->m[mid].hi <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static map *find_map(const ctx *c, uintptr_t a)
{
    size_t i = map_index(c, a);
    return i < c->nm && c->m[i].lo <= a ? &c->m[i] : NULL;
}

/* End of the readable memory that starts at @a (@a itself if none). */
static uintptr_t readable_end(const ctx *c, uintptr_t a)
{
    const map *m = find_map(c, a);
    if (m == NULL || !(m->prot & MAP_R))
        return a;
    const map *end = c->m + c->nm;
    while (m + 1 < end && m[1].lo == m->hi && (m[1].prot & MAP_R))
        m++;
    return m->hi;
}

/* Sampling mode: @fn on [lo, hi) except pages that were never touched
 * (/proc/self/pagemap: neither present nor swapped out). Such a page reads
 * as zeros or as its file's original contents, which hold no address of a
 * block made at run time; a program with a hundred libraries has tens of
 * MB of bss that the scan would otherwise fault in to read zeros. */
static void each_touched(ctx *c, uintptr_t lo, uintptr_t hi,
                         void (*fn)(ctx *c, uintptr_t lo, uintptr_t hi))
{
    if (c->pagemap < 0 || hi - lo < 16 * 4096) {
        fn(c, lo, hi);
        return;
    }
    uint64_t ent[512];
    uintptr_t end = (hi + 4095) >> 12, from = lo;
    bool in = false;
    for (uintptr_t pg = lo >> 12; pg < end;) {
        size_t want = end - pg > 512 ? 512 : (size_t)(end - pg);
        ssize_t got = (ssize_t)syscall(SYS_pread64, c->pagemap, ent, want * sizeof(uint64_t),
                                       (off_t)(pg * sizeof(uint64_t)));
        size_t n = got > 0 ? (size_t)got / sizeof(uint64_t) : 0;
        for (size_t j = 0; j < want; j++, pg++) {
            /* Bits 63 and 62: present, swapped. Unknown counts as touched. */
            bool touched = j >= n || (ent[j] >> 62) != 0;
            if (touched && !in) {
                in = true;
                from = pg << 12 > lo ? pg << 12 : lo;
            } else if (!touched && in) {
                in = false;
                fn(c, from, pg << 12);
            }
        }
    }
    if (in)
        fn(c, from, hi);
}

static void scan_present(ctx *c, uintptr_t lo, uintptr_t hi)
{
    each_touched(c, lo, hi, scan_words);
}

/* Scan the readable parts of [lo, hi) as a root, leaving out heap blocks
 * (they are scanned only once reached). */
static void scan_root(ctx *c, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        uintptr_t end = readable_end(c, lo);
        if (end == lo) {
            /* Unmapped or unreadable: go on at the next mapping. */
            size_t i = map_index(c, lo);
            if (i == c->nm)
                return;
            lo = c->m[i].lo > lo ? c->m[i].lo : c->m[i].hi;
            continue;
        }
        if (end > hi)
            end = hi;
        for (size_t i = first_block_after(c, lo); lo < end; i++) {
            uintptr_t stop = i < c->nb && c->b[i].lo < end ? c->b[i].lo : end;
            if (stop > lo)
                scan_present(c, lo, stop);
            if (i >= c->nb || c->b[i].lo >= end)
                break;
            lo = c->b[i].hi;
        }
        lo = end;
    }
}

static void scan_block(ctx *c, uint32_t i)
{
    blk *k = &c->b[i];
    if (readable_end(c, k->lo) >= k->hi) {
        /* The leader pass may flood a block again: it is counted once. */
        c->cat = k->read ? SC_N : SC_BLOCKS;
        c->blocks_read += !k->read;
        k->read = true;
        scan_words(c, k->lo, k->hi);
    }
}

static void flood(ctx *c)
{
    int cat = c->cat;
    c->cat = SC_BLOCKS;
    while (c->nstk > 0)
        scan_block(c, c->stk[--c->nstk]);
    c->cat = cat;
}

/* Raw-syscall file access: no libc wrappers another hook might catch. */
static int sys_open(const char *path)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
}

static ssize_t sys_read(int fd, void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_read, fd, buf, len);
}

static void sys_close(int fd)
{
    syscall(SYS_close, fd);
}

static uintptr_t parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;; (*p)++) {
        char ch = **p;
        if (ch >= '0' && ch <= '9')
            v = v * 16 + (uintptr_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v = v * 16 + (uintptr_t)(ch - 'a' + 10);
        else
            return v;
    }
}

static const char *skip_field(const char *p)
{
    while (*p == ' ')
        p++;
    while (*p && *p != ' ')
        p++;
    while (*p == ' ')
        p++;
    return p;
}

static int add_map(ctx *c, const char *line)
{
    if ((c->nm + 1) * sizeof(map) > c->m_bytes) {
        size_t nb = c->m_bytes ? c->m_bytes * 2 : 64 * 1024;
        map *nm = stw__pages_alloc(nb);
        if (nm == NULL)
            return -ENOMEM;
        if (c->m != NULL) {
            memcpy(nm, c->m, c->nm * sizeof(map));
            stw__pages_free(c->m, c->m_bytes);
        }
        c->m = nm;
        c->m_bytes = nb;
    }
    const char *p = line;
    map m = {0};
    m.lo = parse_hex(&p);
    if (*p++ != '-')
        return 0;
    m.hi = parse_hex(&p);
    if (*p++ != ' ' || strlen(p) < 4)
        return 0;
    m.prot = (uint8_t)((p[0] == 'r' ? MAP_R : 0) | (p[1] == 'w' ? MAP_W : 0) |
                       (p[2] == 'x' ? MAP_X : 0) | (p[3] == 's' ? MAP_SHARED_ : 0));
    for (int i = 0; i < 4; i++) /* perms, offset, device, inode */
        p = skip_field(p);
    const char *name = p;
    if (*name == '\0')
        m.type = M_ANON;
    else if (*name == '/')
        m.type = M_FILE;
    else if (strcmp(name, "[stack]") == 0)
        m.type = M_MAINSTACK;
    else if (strcmp(name, "[heap]") == 0)
        m.type = M_HEAP;
    else if (strncmp(name, "[anon:", 6) == 0)
        /* Named anonymous memory; glibc names its stacks when asked to. */
        m.type = strstr(name, "pthread stack") != NULL ? M_THREADSTACK : M_ANON;
    else
        m.type = M_SPECIAL;
    c->m[c->nm++] = m;
    return 0;
}

static int read_maps(ctx *c)
{
    int fd = sys_open("/proc/self/maps");
    if (fd < 0)
        return fd;
    char buf[4096], line[1024];
    size_t llen = 0;
    int rc = 0;
    ssize_t n;
    while (rc == 0 && (n = sys_read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n && rc == 0; i++) {
            if (buf[i] != '\n') {
                if (llen < sizeof(line) - 1)
                    line[llen++] = buf[i];
                continue;
            }
            line[llen] = '\0';
            rc = add_map(c, line);
            llen = 0;
        }
    }
    sys_close(fd);
    return rc;
}

/* ---- threads ---- */

/* @below: bytes under @sp that may still be live (the red zone of a
 * thread interrupted in the kernel; none for the calling thread). */
static void note_sp(ctx *c, uintptr_t sp, uintptr_t below)
{
    map *m = find_map(c, sp);
    if (m == NULL || !(m->prot & MAP_W)) {
        c->unknown_sp++;
        return;
    }
    uintptr_t from = sp - m->lo < below ? m->lo : sp - below;
    if (m->live_from == 0 || from < m->live_from)
        m->live_from = from;
}

/* Stack pointer of thread @tid from /proc/self/task/TID/syscall: the
 * second-to-last field, present while the thread is in the kernel ("running"
 * otherwise). 0 when unknown. */
/* /proc/self/task/TID followed by @suffix into @path (64 bytes). */
static void task_path(char *path, long tid, const char *suffix)
{
    memcpy(path, "/proc/self/task/", sizeof("/proc/self/task/"));
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + tid % 10);
        tid /= 10;
    } while (tid > 0 && nd < (int)sizeof(digits));
    size_t len = strlen(path);
    while (nd > 0)
        path[len++] = digits[--nd];
    memcpy(path + len, suffix, strlen(suffix) + 1);
}

/* True when thread @tid is gone or dying: pthread_join returns once the
 * kernel has cleared the thread's tid, which is before the task leaves
 * /proc/self/task, so a thread joined just before exit can still be
 * listed there, with no stack pointer to read. It runs no program code
 * any more and holds no references: it is no unknown thread. */
static bool task_dead(long tid)
{
    char path[64];
    task_path(path, tid, "/stat");
    int fd = sys_open(path);
    if (fd < 0)
        return true;
    char buf[512];
    ssize_t n = sys_read(fd, buf, sizeof(buf) - 1);
    sys_close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ')
        return false;
    char st = rp[2];
    if (st == 'Z' || st == 'X' || st == 'x')
        return true;
    /* Field 9, the kernel's flags: PF_EXITING (0x4) from the start of
     * do_exit on. "S ppid pgrp session tty_nr tpgid flags". */
    const char *p = rp + 2;
    for (int f = 0; f < 6 && *p != '\0'; f++) {
        while (*p != '\0' && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
    }
    unsigned long flags = 0;
    while (*p >= '0' && *p <= '9')
        flags = flags * 10 + (unsigned long)(*p++ - '0');
    return (flags & 0x4ul) != 0;
}

static uintptr_t thread_sp(long tid)
{
    char path[64];
    task_path(path, tid, "/syscall");
    int fd = sys_open(path);
    if (fd < 0)
        return 0;
    char buf[256];
    ssize_t n = sys_read(fd, buf, sizeof(buf) - 1);
    sys_close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *fields[16];
    int nf = 0;
    for (char *p = buf; *p && nf < 16;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        fields[nf++] = p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
    }
    if (nf < 3 || strncmp(fields[nf - 2], "0x", 2) != 0)
        return 0;
    const char *p = fields[nf - 2] + 2;
    return parse_hex(&p);
}

typedef struct sp_ctx {
    ctx *c;
    long self;
} sp_ctx;

static bool note_thread_sp(long tid, void *ud)
{
    sp_ctx *sc = ud;
    ctx *c = sc->c;
    if (tid == sc->self || tid == c->own_tid)
        return true;
    /* A thread in the fatal signal's handler: its program frames start
     * where the signal interrupted it. */
    uintptr_t sp = tid == atomic_load(&stw__fatal_ctx.tid) ? stw__fatal_ctx.sp : 0;
    if (sp != 0) {
        note_sp(c, sp, RED_ZONE);
        return true;
    }
    /* A joined thread can still be listed, exiting: /proc then shows the
     * stack pointer of its exit call, and its stack from there up holds
     * its descriptor with the value it returned, which nobody can get at
     * any more. */
    if (task_dead(tid))
        return true;
    /* Stopped by ptrace (it blocks the parking signal): its registers as
     * the helper read them, and its stack from their stack pointer. */
    const uintptr_t *regs;
    size_t nregs;
    if (stw__pt_regs(tid, &regs, &nregs, &sp)) {
        scan_words(c, (uintptr_t)regs, (uintptr_t)(regs + nregs));
        note_sp(c, sp, RED_ZONE);
        return true;
    }
    sp = thread_sp(tid);
    if (sp != 0)
        note_sp(c, sp, RED_ZONE);
    else if (!task_dead(tid))
        c->unknown_sp++;
    return true;
}

/* Every live thread's stack pointer, noted in the map that holds it. */
static void find_thread_sps(ctx *c, uintptr_t own_sp)
{
    long self = syscall(SYS_gettid);
    if (self != c->own_tid)
        note_sp(c, own_sp, 0);
    sp_ctx sc = {.c = c, .self = self};
    stw__each_task(note_thread_sp, &sc);
}

/* The heuristic for a glibc thread stack (see the top of the file). */
static bool looks_like_stack(const ctx *c, size_t i)
{
    const map *m = &c->m[i];
    if (m->type == M_THREADSTACK)
        return true;
    if (m->type != M_ANON || m->prot != (MAP_R | MAP_W) || i == 0)
        return false;
    const map *below = &c->m[i - 1];
    if (below->hi != m->lo || below->prot != 0 || below->type != M_ANON)
        return false;
    size_t k = first_block_after(c, m->lo);
    return k >= c->nb || c->b[k].lo >= m->hi;
}

/* A thread descriptor in [lo, hi): on x86-64 its header starts with two
 * pointers to itself (tcbhead_t's tcb and self). 0 if none. The words
 * are copied first: a thread still exiting may unmap its stack after
 * /proc/self/maps was read. */
static NO_SANITIZE uintptr_t find_tcb(ctx *c, uintptr_t lo, uintptr_t hi)
{
#if defined(__x86_64__)
    uintptr_t from = hi - lo > 16384 ? hi - 16384 : lo;
    const volatile uintptr_t *buf = (const volatile uintptr_t *)from;
    if (!c->direct) {
        struct iovec local = {c->chunk, hi - from}, remote = {(void *)from, hi - from};
        if (process_vm_readv(c->pid, &local, 1, &remote, 1, 0) != (ssize_t)(hi - from))
            return 0;
        buf = c->chunk;
    }
    for (uintptr_t a = (hi - 24) & ~(uintptr_t)15; a >= from; a -= 16) {
        const volatile uintptr_t *w = &buf[(a - from) / sizeof(uintptr_t)];
        if (w[0] == a && w[2] == a)
            return a;
    }
#else
    (void)c;
    (void)lo;
    (void)hi;
#endif
    return 0;
}

/* The DTV of the thread whose descriptor is @tcb: on x86-64 tcbhead_t's
 * second word; entry -1 holds the count, each entry is two words. */
static NO_SANITIZE void scan_dtv(ctx *c, uintptr_t tcb)
{
#if defined(__x86_64__)
    if (readable_end(c, tcb) < tcb + 16)
        return;
    uintptr_t dtv = ((const volatile uintptr_t *)tcb)[1];
    if (dtv < 16 || readable_end(c, dtv - 16) < dtv)
        return;
    uintptr_t count = *(const volatile uintptr_t *)(dtv - 16);
    if (count > 1u << 20)
        return;
    scan_root(c, dtv - 16, dtv + (count + 1) * 16);
#else
    (void)c;
    (void)tcb;
#endif
}

/* What the scan needs from dl_iterate_phdr and libunwind, gathered before
 * the program's threads are stopped (one of them may hold the loader's or
 * libunwind's lock while parked): the modules' writable data and where the
 * calling thread's program frames start. */
typedef struct range {
    uintptr_t lo, hi;
} range;
#define MAX_RANGES 8192
static struct {
    bool ready;
    uintptr_t from; /* exit()'s caller's stack pointer, 0 if none */
    range *mods;
    size_t nmods;
    /* The static TLS blocks, as offsets below a thread's descriptor (the
     * same in every thread): the lowest start, and the checker's own. */
    uintptr_t tls_below;
    uintptr_t own_tls_lo, own_tls_hi; /* [lo, hi) below the descriptor */
} prep;

/* A module's TLS block in the static TLS area (not one dlopen allocated
 * apart, which the DTV reaches): note how far below the descriptor it
 * starts. */
static void note_tls(const struct dl_phdr_info *info, const ElfW(Phdr) *ph, bool mine)
{
    uintptr_t tcb = (uintptr_t)pthread_self(), data = (uintptr_t)info->dlpi_tls_data;
    size_t size = 0, align = 0;
    if (_dl_get_tls_static_info != NULL)
        _dl_get_tls_static_info(&size, &align);
    if (data == 0 || data >= tcb || tcb - data > size)
        return;
    uintptr_t below = tcb - data;
    if (below > prep.tls_below)
        prep.tls_below = below;
    if (mine) {
        prep.own_tls_lo = below;
        prep.own_tls_hi = below > ph->p_memsz ? below - ph->p_memsz : 0;
    }
}

/* Descriptor, static TLS and DTV of the thread at @tcb, confined to the
 * mapping that holds it. The static TLS starts at the lowest module's
 * block, not at glibc's static size below the descriptor: that size counts
 * the descriptor and room for later modules too, and reached into
 * whatever lies below the main thread's TLS (the checker's own records
 * there kept a dropped thread result reachable, 1 run in 12). The
 * checker's own block holds nothing of the program's. */
static void scan_tls(ctx *c, uintptr_t tcb)
{
    const map *m = find_map(c, tcb);
    if (m == NULL)
        return;
    uintptr_t lo = prep.tls_below > tcb - m->lo ? m->lo : tcb - prep.tls_below;
    uintptr_t hi = m->hi - tcb < TCB_AREA ? m->hi : tcb + TCB_AREA;
    if (prep.own_tls_lo != 0 && tcb - m->lo >= prep.own_tls_lo) {
        scan_root(c, lo, tcb - prep.own_tls_lo);
        scan_root(c, tcb - prep.own_tls_hi, hi);
    } else {
        scan_root(c, lo, hi);
    }
    scan_dtv(c, tcb);
}

/* True when @tcb is a thread the program still has to join (the ledger
 * holds its record), or thread records are not kept (--kinds without
 * thread: then every exited descriptor counts, conservatively). */
static bool unjoined_thread(const ctx *c, uintptr_t tcb)
{
    if (!(stw__copts.kinds & STW_KIND_BIT(STW_KIND_THREAD)))
        return true;
    for (size_t i = 0; i < c->snap->nrecords; i++) {
        const stw_record *r = &c->snap->records[i];
        if (r->kind == STW_KIND_THREAD && r->id == tcb)
            return true;
    }
    return false;
}

/* The checker's own mappings, sorted, into @c (none when they cannot be
 * listed: the scan is then as it was without the table). */
static void load_own_maps(ctx *c)
{
    c->own_maps = stw__pages_alloc(OWN_MAX * sizeof(*c->own_maps));
    if (c->own_maps == NULL)
        return;
    c->n_own = stw__pages_own(c->own_maps, OWN_MAX);
    if (stw__radix_sort(c->own_maps, c->n_own, sizeof(*c->own_maps), 0) != 0)
        c->n_own = 0;
}

/* scan_root over [lo, hi) less the checker's own mappings. */
static void scan_root_not_own(ctx *c, uintptr_t lo, uintptr_t hi)
{
    uintptr_t(*own)[2] = c->own_maps;
    size_t n = c->n_own;
    /* First of the checker's mappings that ends above lo. */
    size_t a = 0, b = n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (own[mid][1] <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (; lo < hi; a++) {
        uintptr_t stop = a < n && own[a][0] < hi ? own[a][0] : hi;
        if (stop > lo)
            scan_root(c, lo, stop);
        if (a >= n || own[a][0] >= hi)
            break;
        if (own[a][1] > lo)
            lo = own[a][1];
    }
}

static void scan_stacks(ctx *c)
{
    for (size_t i = 0; i < c->nm; i++) {
        map *m = &c->m[i];
        if (m->lo >= c->own_lo && m->hi <= c->own_hi)
            continue;
        if (m->live_from != 0) {
            scan_root(c, m->live_from, m->hi);
            continue;
        }
        if (!looks_like_stack(c, i))
            continue;
        if (c->unknown_sp > 0) {
            /* Anonymous memory above a guard page: the checker's own
             * tables can look like that too. */
            scan_root_not_own(c, m->lo, m->hi);
            continue;
        }
        /* An exited thread never joined: its descriptor only (its value
         * is still there for pthread_join). A joined or detached one's
         * stack sits in glibc's cache of stacks, and its descriptor keeps
         * the value it returned, which nobody can get at any more. */
        uintptr_t tcb = find_tcb(c, m->lo, m->hi);
        if (tcb != 0 && unjoined_thread(c, tcb)) {
            scan_root(c, tcb, m->hi - tcb < TCB_AREA ? m->hi : tcb + TCB_AREA);
            scan_dtv(c, tcb);
        }
    }
}

/* ---- sampling mode: the unsampled heap ---- */

/* glibc's HEAP_MAX_SIZE on 64-bit: a non-main arena's heaps are mappings
 * of this size, aligned to it, that start with a heap_info. */
#define ARENA_HEAP_MAX ((uintptr_t)64 << 20)

/* True when @m starts with the heap_info of a non-main malloc arena's heap
 * (ar_ptr, prev, size, mprotect_size). Such a heap right above another's
 * inaccessible tail looks like a thread stack with its guard page. */
static bool arena_heap(ctx *c, const map *m)
{
    uintptr_t ar, size, prot_size;
    if ((m->lo & (ARENA_HEAP_MAX - 1)) != 0 || !read_word(c, m->lo, &ar) ||
        !read_word(c, m->lo + 16, &size) || !read_word(c, m->lo + 24, &prot_size))
        return false;
    return ar != 0 && (ar & 7) == 0 && size > 0 && size <= ARENA_HEAP_MAX && (size & 4095) == 0 &&
           prot_size >= size && prot_size <= ARENA_HEAP_MAX;
}

/* True when @m starts with a chunk malloc mapped by itself: its size field
 * has IS_MMAPPED and is a whole number of pages within the mapping. */
static bool mmapped_chunk(ctx *c, const map *m)
{
    uintptr_t size;
    if (!read_word(c, m->lo + 8, &size) || (size & 7) != 2)
        return false;
    size &= ~(uintptr_t)7;
    return size > 0 && (size & 4095) == 0 && size <= m->hi - m->lo;
}

/* True for a mapping that may hold unsampled heap blocks: malloc's brk
 * heap, and the program's anonymous private read-write memory that is no
 * thread's stack (other arenas' heaps and mmap'ed chunks are anonymous;
 * so is memory mapped by calls the checker does not see, which is read
 * as a root as well: conservative). */
static bool heap_candidate(ctx *c, size_t i)
{
    const map *m = &c->m[i];
    if ((m->prot & (MAP_R | MAP_W | MAP_SHARED_)) != (MAP_R | MAP_W))
        return false;
    if (m->type == M_HEAP)
        return true;
    if (m->type != M_ANON || m->live_from != 0)
        return false;
    if (m->lo < c->own_hi && m->hi > c->own_lo)
        return false;
    if (!looks_like_stack(c, i) || arena_heap(c, m) || mmapped_chunk(c, m))
        return true;
    /* Exited threads' and cached stacks are never roots (scan_stacks):
     * glibc's have their thread descriptor at the top. Memory that only
     * looks like one (anything mapped right above an arena's inaccessible
     * tail) is read. */
    return m->type != M_THREADSTACK && find_tcb(c, m->lo, m->hi) == 0;
}

/* In sampling mode most blocks have no record, so a sampled block that only
 * unsampled blocks point to would never be reached through the records:
 * the memory that holds the unsampled blocks is a root instead, less the
 * checker's own mappings (its tables hold every block's address) and the
 * sampled blocks themselves (scan_root leaves blocks out: they are read
 * only once reached, so a lost sampled block still makes those it points
 * to indirectly lost). */
static void scan_unsampled_heap(ctx *c)
{
    for (size_t i = 0; i < c->nm; i++)
        if (heap_candidate(c, i))
            scan_root_not_own(c, c->m[i].lo, c->m[i].hi);
}

/* ---- modules ---- */

static char self_marker;

static int collect_module(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    uintptr_t me = (uintptr_t)&self_marker;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        mine |= ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz;
    }
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS)
            note_tls(info, &info->dlpi_phdr[i], mine);
    if (mine)
        return 0; /* the checker's own data holds nothing of the program's */
    for (int i = 0; i < info->dlpi_phnum && prep.nmods < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        prep.mods[prep.nmods++] = (range){lo, lo + ph->p_memsz};
    }
    return 0;
}

/* ---- roots ---- */

/* libc's extent, found by an address inside it. */
static uintptr_t libc_lo, libc_span;

static int find_libc(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    uintptr_t in_libc = (uintptr_t)&__libc_malloc;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        mine |= in_libc >= a && in_libc < a + ph->p_memsz;
        lo = a < lo ? a : lo;
        hi = a + ph->p_memsz > hi ? a + ph->p_memsz : hi;
    }
    if (!mine)
        return 0;
    libc_lo = lo;
    libc_span = hi - lo;
    return 1;
}

static uintptr_t self_text_lo, self_text_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    uintptr_t me = (uintptr_t)&find_self;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz) {
            self_text_lo = lo;
            self_text_hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* Where the calling thread's stack stops being the checker's: the frames of
 * the report (its output buffers, the snapshot's copying) hold stale words
 * from the program's dead frames, so the scan starts at the first frame
 * above them, found by walking the frame pointers this library is built
 * with. Falls back to @sp when the chain cannot be followed. */
static NO_SANITIZE uintptr_t checker_frames_end(const ctx *c, uintptr_t fp, uintptr_t sp)
{
    const map *m = find_map(c, fp);
    if (m == NULL || self_text_hi == 0)
        return sp;
    for (int depth = 0; depth < 256; depth++) {
        if (fp < m->lo || fp + 16 > m->hi || (fp & 7) != 0)
            return sp;
        const volatile uintptr_t *f = (const volatile uintptr_t *)fp;
        uintptr_t ret = f[1];
        if (ret < self_text_lo || ret >= self_text_hi)
            return fp + 16;
        if (f[0] <= fp)
            return sp;
        fp = f[0];
    }
    return sp;
}

/* At exit the calling thread's stack holds libc's exit machinery
 * (__run_exit_handlers, _dl_fini) between the checker and the program,
 * and those frames, laid over the program's dead ones, keep stale words
 * in their unused slots. When exit() is on the stack, the scan starts at
 * its caller: the program's frames, live when it called exit(), or
 * __libc_start_call_main when main returned. 0 when exit() is not on the
 * stack or the DWARF walk fails. */
static uintptr_t exit_caller_sp(void)
{
    unw_context_t uc;
    unw_cursor_t cur;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
        return 0;
    uintptr_t target = (uintptr_t)&exit;
    for (int depth = 0; depth < 128 && unw_step(&cur) > 0; depth++) {
        unw_proc_info_t pi;
        if (unw_get_proc_info(&cur, &pi) != 0 || pi.start_ip != target)
            continue;
        unw_word_t sp;
        if (unw_step(&cur) <= 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) != 0)
            return 0;
        return (uintptr_t)sp;
    }
    return 0;
}

/* Out of line, so that its frame (with the registers spilled into @regs)
 * lies below everything it scans on the calling thread's stack. */
static __attribute__((noinline)) void scan_roots(ctx *c, const stw_snapshot *s)
{
    jmp_buf regs;
    /* setjmp leaves the signal mask part alone: no stale words in it. */
    memset(&regs, 0, sizeof(regs));
    __builtin_unwind_init();
    setjmp(regs);
    uintptr_t sp = (uintptr_t)&regs;
    if ((uintptr_t)__builtin_frame_address(0) < sp)
        sp = (uintptr_t)__builtin_frame_address(0);
    /* The registers the program had when it called into the checker, as
     * far as no checker frame has saved and reused them; none when this is
     * the checker's own thread (a report at death by signal). */
    bool own = syscall(SYS_gettid) == c->own_tid;
    c->cat = SC_STACKS;
    if (!own)
        scan_words(c, (uintptr_t)&regs, (uintptr_t)&regs + sizeof(regs));
    /* The registers a fatal signal interrupted (the handler's frames
     * are left out of that thread's stack). */
    if (atomic_load(&stw__fatal_ctx.tid) != 0)
        scan_words(c, (uintptr_t)stw__fatal_ctx.regs,
                   (uintptr_t)(stw__fatal_ctx.regs + stw__fatal_ctx.nregs));
    uintptr_t from = prep.from;
    if (atomic_load(&stw__fatal_ctx.tid) == syscall(SYS_gettid))
        from = stw__fatal_ctx.sp; /* below it: the handler and the signal frame */
    if (from == 0)
        from = checker_frames_end(c, (uintptr_t)__builtin_frame_address(0), sp);
    find_thread_sps(c, from);
    load_own_maps(c);
    scan_stacks(c);
    if (main_tcb != 0)
        scan_tls(c, main_tcb);
    uintptr_t self = (uintptr_t)pthread_self();
    if (self != main_tcb && !own)
        scan_tls(c, self);
    c->cat = SC_GLOBALS;
    for (size_t i = 0; i < prep.nmods; i++)
        scan_root(c, prep.mods[i].lo, prep.mods[i].hi);
    if (c->sampling) {
        c->cat = SC_HEAP;
        scan_unsampled_heap(c);
    }
    (void)s;
    /* Keep @regs alive up to here. */
    __asm__ volatile("" : : "r"(&regs) : "memory");
    stw__pages_free(c->own_maps, OWN_MAX * sizeof(*c->own_maps));
    c->own_maps = NULL;
    c->n_own = 0;
}

/* ---- classification ---- */

typedef struct by_seq {
    uint64_t seq;
    size_t index;
} by_seq;

/* Valgrind's leader pass: every unreached block not yet claimed leads a
 * flood that claims (as indirectly lost) all unreached blocks it reaches,
 * including earlier leaders. In a cycle that nothing else points to, the
 * block allocated first stays the leader: definitely lost. */
static int classify_lost(ctx *c)
{
    size_t nu = 0;
    for (size_t i = 0; i < c->nb; i++)
        nu += c->b[i].state == UNREACHED;
    if (nu == 0)
        return 0;
    size_t bytes = nu * sizeof(by_seq);
    by_seq *order = stw__pages_alloc(bytes);
    if (order == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < c->nb; i++)
        if (c->b[i].state == UNREACHED)
            order[k++] = (by_seq){.seq = c->b[i].seq, .index = i};
    if (stw__radix_sort(order, nu, sizeof(by_seq), offsetof(by_seq, seq)) != 0) {
        stw__pages_free(order, bytes);
        return -ENOMEM;
    }
    c->leader_pass = true;
    for (size_t j = 0; j < nu; j++) {
        blk *b = &c->b[order[j].index];
        if (b->state != UNREACHED)
            continue;
        b->state = LEADER;
        c->leader = (uint32_t)(b - c->b);
        c->nstk = 0;
        push(c, c->leader);
        flood(c);
    }
    stw__pages_free(order, bytes);
    return 0;
}

/* Zero the stack below the caller: the frames this scan is about to use
 * would otherwise hold words left there by earlier calls (the snapshot's
 * copying, the report's work), and the calling thread's stack is scanned
 * from the scan's own frame upwards. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char area[16384];
    for (size_t i = 0; i < sizeof(area); i++)
        area[i] = 0;
}

/* The context lives in mmap'ed memory, not in this frame: it holds the
 * lowest block address, and the frame is part of the scanned stack. */
static __attribute__((noinline)) int classify(const stw_snapshot *s, uint8_t *cls,
                                              stw__scan_stats *st)
{
    ctx *c = stw__pages_alloc(sizeof(ctx));
    if (c == NULL)
        return -ENOMEM;
    c->pid = getpid();
    c->snap = s;
    c->sampling = stw__copts.sample_bytes > 0;
    c->pagemap = c->sampling ? sys_open("/proc/self/pagemap") : -1;
    if (!prep.ready)
        stw__scan_prepare();
    c->libc_lo = libc_lo;
    c->libc_span = libc_span;
    if (!stw__checker_thread(&c->own_lo, &c->own_hi, &c->own_tid))
        c->own_lo = c->own_hi = 0, c->own_tid = 0;
    c->chunk = stw__pages_alloc(SCAN_CHUNK);
    int rc = c->chunk != NULL ? build_blocks(c, s) : -ENOMEM;
    if (rc == 0 && c->nb > 0)
        rc = read_maps(c);
    if (rc == 0 && c->nb > 0) {
        scrub_stack();
        scan_roots(c, s);
        flood(c);
        rc = classify_lost(c);
    }
    if (rc == 0) {
        for (size_t i = 0; i < c->nb; i++) {
            const blk *b = &c->b[i];
            cls[b->rec] = b->state == REACHED    ? STW__STILL_REACHABLE
                          : b->state == INDIRECT ? STW__INDIRECTLY_LOST
                                                 : STW__DEFINITELY_LOST;
        }
    }
    if (st != NULL)
        *st = (stw__scan_stats){
            .sampling = c->sampling,
            .blocks = c->nb,
            .blocks_read = c->blocks_read,
            .block_bytes = c->scanned[SC_BLOCKS],
            .global_bytes = c->scanned[SC_GLOBALS],
            .stack_bytes = c->scanned[SC_STACKS],
            .heap_bytes = c->scanned[SC_HEAP],
        };
    stw__pages_free(c->b, c->b_bytes);
    stw__pages_free(c->stk, c->stk_bytes);
    stw__pages_free(c->m, c->m_bytes);
    stw__pages_free(c->chunk, SCAN_CHUNK);
    if (c->pages != NULL)
        stw__pages_free(c->pages, ((size_t)1 << PAGE_BITS) / 8);
    if (c->pagemap >= 0)
        sys_close(c->pagemap);
    stw__pages_free(c, sizeof(ctx));
    prep.ready = false;
    return rc;
}

void stw__scan_prepare(void)
{
    if (prep.mods == NULL) {
        prep.mods = stw__pages_reserve(MAX_RANGES * sizeof(range));
        if (prep.mods == NULL)
            return;
    }
    uintptr_t base = (uintptr_t)getauxval(AT_BASE);
    if (loader_hi == 0 && base != 0)
        dl_iterate_phdr(find_loader, &base);
    if (self_text_hi == 0)
        dl_iterate_phdr(find_self, NULL);
    if (libc_span == 0)
        dl_iterate_phdr(find_libc, NULL);
    prep.nmods = 0;
    prep.tls_below = prep.own_tls_lo = prep.own_tls_hi = 0;
    dl_iterate_phdr(collect_module, NULL);
    prep.from = exit_caller_sp();
    prep.ready = true;
}

int stw__scan_classify(const stw_snapshot *s, uint8_t *cls, stw__scan_stats *st)
{
    memset(cls, STW__DEFINITELY_LOST, s->nrecords);
    if (st != NULL)
        *st = (stw__scan_stats){0};
    return classify(s, cls, st);
}

/* ---- the modules' data as it was at start ---- */

/* True when @w lies in a loaded module's mappings: no block can be there
 * while the module is loaded, so such words need not be remembered. */
static bool in_module(ctx *c, uintptr_t w)
{
    /* Relocated words point mostly into the module last found (a GOT, a
     * vtable): try it before searching (a program with a hundred
     * libraries spent 2% of its run here). */
    const map *last = &c->m[c->last];
    if (c->last < c->nm && w - last->lo < last->hi - last->lo)
        return true;
    const map *m = find_map(c, w);
    if (m == NULL || m->type != M_FILE)
        return false;
    c->last = (uint32_t)(m - c->m);
    return true;
}

static NO_SANITIZE void note_words(ctx *c, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t p = lo; p + 8 <= hi && nstale < STALE_MAX; p += 8) {
        uintptr_t w = *(const volatile uintptr_t *)p;
        if (w < 0x10000 || w >= ((uintptr_t)1 << 47) || in_module(c, w))
            continue;
        stale[nstale++] = (stale_word){.at = p, .value = w};
    }
}

static NO_SANITIZE int note_module_words(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    ctx *c = ud;
    uintptr_t me = (uintptr_t)&self_marker;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz)
            return 0;
    }
    for (int i = 0; i < info->dlpi_phnum && nstale < STALE_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr + 7) & ~(uintptr_t)7;
        uintptr_t hi = readable_end(c, lo);
        if (hi > info->dlpi_addr + ph->p_vaddr + ph->p_memsz)
            hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        if (hi > lo)
            each_touched(c, lo, hi, note_words);
    }
    return 0;
}

void stw__scan_note_stale_words(void)
{
    if (stale != NULL)
        return;
    ctx *c = stw__pages_alloc(sizeof(ctx));
    stale = stw__pages_reserve(STALE_MAX * sizeof(stale_word));
    if (c == NULL || stale == NULL || read_maps(c) != 0) {
        nstale = 0;
    } else {
        /* In sampling mode pages not touched yet (a large bss) are left
         * out: they hold zeros or their file's contents, no dangling
         * address the loader left, and reading them costs a page fault
         * each. Full tracking reads everything, as it always did. */
        const char *sb = getenv("STW_CHECK_SAMPLE_BYTES");
        c->pagemap = sb != NULL && atol(sb) > 0 ? sys_open("/proc/self/pagemap") : -1;
        stale_seq = stw_ledger_checkpoint();
        dl_iterate_phdr(note_module_words, c);
        if (c->pagemap >= 0)
            sys_close(c->pagemap);
    }
    if (nstale > 1 &&
        stw__radix_sort(stale, nstale, sizeof(stale_word), offsetof(stale_word, at)) != 0)
        nstale = 0;
    if (c != NULL) {
        stw__pages_free(c->m, c->m_bytes);
        stw__pages_free(c, sizeof(ctx));
    }
}
