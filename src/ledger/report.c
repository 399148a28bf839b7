/*
 * Report emitters. Output is formatted into a fixed buffer and handed to
 * the caller's write callback, so emitting needs no heap of its own (only
 * symbolization, when asked for, allocates inside libdw).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ledger_internal.h"

#define DEFAULT_MAX_SITES 20

void stw__out_init(stw__out *o, stw_write_fn write, void *ud)
{
    o->write = write;
    o->ud = ud;
    o->err = 0;
    o->len = 0;
}

int stw__out_flush(stw__out *o)
{
    if (o->err == 0 && o->len > 0)
        o->err = o->write(o->ud, o->buf, o->len);
    o->len = 0;
    return o->err;
}

static void out_bytes(stw__out *o, const char *s, size_t n)
{
    while (n > 0 && o->err == 0) {
        size_t room = sizeof(o->buf) - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == sizeof(o->buf))
            stw__out_flush(o);
    }
}

void stw__out_puts(stw__out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

void stw__out_printf(stw__out *o, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void stw__out_json_string(stw__out *o, const char *s)
{
    out_bytes(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            out_bytes(o, "\\\"", 2);
            break;
        case '\\':
            out_bytes(o, "\\\\", 2);
            break;
        case '\n':
            out_bytes(o, "\\n", 2);
            break;
        case '\r':
            out_bytes(o, "\\r", 2);
            break;
        case '\t':
            out_bytes(o, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                out_bytes(o, esc, 6);
            } else {
                out_bytes(o, (const char *)p, 1);
            }
        }
    }
    out_bytes(o, "\"", 1);
}

int stw_write_fd(void *ud, const char *data, size_t len)
{
    int fd = (int)(intptr_t)ud;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A kind appears in a report when anything of it ever existed. */
static bool kind_active(const stw_snapshot *s, const stw_snapshot *base, int k)
{
    if (s->kinds[k].live != 0 || s->kinds[k].created != 0)
        return true;
    return base != NULL && base->kinds[k].live != 0;
}

static int max_sites_of(const stw_report_opts *o)
{
    return o->max_sites > 0 ? o->max_sites : DEFAULT_MAX_SITES;
}

static int frames_of(const stw_report_opts *o, void **pcs, stw_site site, int *kind)
{
    int n = stw_site_stack(site, kind, pcs, STW_STACK_MAX);
    if (n < 0)
        return 0;
    if (o->max_frames > 0 && n > o->max_frames)
        n = o->max_frames;
    return n;
}

bool stw__out_text_frame(stw__out *o, const char *prefix, int i, void *pc, bool symbolize)
{
    stw_symbol sym;
    if (!symbolize || stw_symbolize(pc, &sym) != 0) {
        stw__out_printf(o, "%s#%-2d %p\n", prefix, i, pc);
        return false;
    }
    stw__out_printf(o, "%s#%-2d %p %s", prefix, i, pc, sym.func[0] ? sym.func : "??");
    if (sym.file[0])
        stw__out_printf(o, " %s:%d", sym.file, sym.line);
    if (sym.module[0])
        stw__out_printf(o, " (%s)", sym.module);
    stw__out_puts(o, "\n");
    return strcmp(sym.func, "main") == 0;
}

void stw__out_json_frame(stw__out *o, bool first, void *pc, bool symbolize)
{
    stw_symbol sym;
    stw__out_printf(o, "%s{\"pc\":\"%p\"", first ? "" : ",", pc);
    if (symbolize && stw_symbolize(pc, &sym) == 0) {
        stw__out_puts(o, ",\"func\":");
        stw__out_json_string(o, sym.func);
        stw__out_puts(o, ",\"file\":");
        stw__out_json_string(o, sym.file);
        stw__out_printf(o, ",\"line\":%d,\"module\":", sym.line);
        stw__out_json_string(o, sym.module);
    }
    stw__out_puts(o, "}");
}

static void text_records(stw__out *o, const stw_snapshot *s, const stw_site_stat *st)
{
    int64_t now = stw_now_ns();
    int shown = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        const stw_record *r = &s->records[i];
        if (r->site != st->site || r->kind != st->kind)
            continue;
        if (++shown > 10) {
            stw__out_printf(o, "      ... %lld more\n", (long long)(st->live - 10));
            break;
        }
        stw__out_printf(o, "      - id 0x%llx size %llu age %lld ms", (unsigned long long)r->id,
                        (unsigned long long)r->size, (long long)((now - r->birth_ns) / 1000000));
        if (r->label != NULL)
            stw__out_printf(o, " \"%s\"", r->label);
        if (r->owner != 0)
            stw__out_printf(o, " owner 0x%llx", (unsigned long long)r->owner);
        stw__out_puts(o, "\n");
    }
}

int stw_report_text(const stw_snapshot *s, const stw_report_opts *opts, stw_write_fn write,
                    void *ud)
{
    stw_report_opts o = opts ? *opts : (stw_report_opts){0};
    const stw_snapshot *base = o.baseline;
    stw__out out;
    stw__out_init(&out, write, ud);
    stw__out_printf(&out, "== steward ledger%s%s ==\n", o.title ? ": " : "",
                    o.title ? o.title : "");
    if (base != NULL)
        stw__out_printf(&out, "%-10s %10s %10s %10s %14s\n", "kind", "initial", "final", "delta",
                        "final bytes");
    else
        stw__out_printf(&out, "%-10s %10s %14s %10s %10s\n", "kind", "live", "live bytes",
                        "created", "released");
    for (int k = 0; k < STW_KIND_MAX; k++) {
        if (!kind_active(s, base, k))
            continue;
        const stw_kind_stat *ks = &s->kinds[k];
        if (base != NULL)
            stw__out_printf(&out, "%-10s %10lld %10lld %+10lld %14lld\n", stw_kind_name(k),
                            (long long)base->kinds[k].live, (long long)ks->live,
                            (long long)(ks->live - base->kinds[k].live), (long long)ks->live_bytes);
        else
            stw__out_printf(&out, "%-10s %10lld %14lld %10lld %10lld\n", stw_kind_name(k),
                            (long long)ks->live, (long long)ks->live_bytes, (long long)ks->created,
                            (long long)ks->released);
    }
    int max = max_sites_of(&o);
    if (s->nsites > 0)
        stw__out_printf(&out, "-- %zu site(s) holding live resources, largest first --\n",
                        s->nsites);
    for (size_t i = 0; i < s->nsites && (int)i < max; i++) {
        const stw_site_stat *st = &s->sites[i];
        stw__out_printf(&out, "[%zu] %lld %s, %lld bytes (site %u)\n", i + 1, (long long)st->live,
                        stw_kind_name(st->kind), (long long)st->live_bytes, st->site);
        void *pcs[STW_STACK_MAX];
        int n = frames_of(&o, pcs, st->site, NULL);
        if (n == 0)
            stw__out_puts(&out, "      (no stack)\n");
        for (int f = 0; f < n; f++)
            stw__out_text_frame(&out, "      ", f, pcs[f], o.symbolize);
        if (o.records)
            text_records(&out, s, st);
    }
    if ((int)s->nsites > max)
        stw__out_printf(&out, "... and %zu more site(s)\n", s->nsites - (size_t)max);
    return stw__out_flush(&out);
}

static void json_frames(stw__out *o, const stw_report_opts *opts, stw_site site)
{
    void *pcs[STW_STACK_MAX];
    int n = frames_of(opts, pcs, site, NULL);
    stw__out_puts(o, "[");
    for (int f = 0; f < n; f++)
        stw__out_json_frame(o, f == 0, pcs[f], opts->symbolize);
    stw__out_puts(o, "]");
}

static void json_records(stw__out *o, const stw_snapshot *s, const stw_site_stat *st)
{
    int64_t now = stw_now_ns();
    bool first = true;
    stw__out_puts(o, ",\"records\":[");
    for (size_t i = 0; i < s->nrecords; i++) {
        const stw_record *r = &s->records[i];
        if (r->site != st->site || r->kind != st->kind)
            continue;
        stw__out_printf(o,
                        "%s{\"id\":\"0x%llx\",\"size\":%llu,\"seq\":%llu,\"age_ms\":%lld,"
                        "\"owner\":\"0x%llx\",\"label\":",
                        first ? "" : ",", (unsigned long long)r->id, (unsigned long long)r->size,
                        (unsigned long long)r->seq, (long long)((now - r->birth_ns) / 1000000),
                        (unsigned long long)r->owner);
        if (r->label != NULL)
            stw__out_json_string(o, r->label);
        else
            stw__out_puts(o, "null");
        stw__out_puts(o, "}");
        first = false;
    }
    stw__out_puts(o, "]");
}

int stw_report_json(const stw_snapshot *s, const stw_report_opts *opts, stw_write_fn write,
                    void *ud)
{
    stw_report_opts o = opts ? *opts : (stw_report_opts){0};
    const stw_snapshot *base = o.baseline;
    stw__out out;
    stw__out_init(&out, write, ud);
    stw__out_printf(&out,
                    "{\"schema\":\"steward.ledger/1\",\"pid\":%d,\"taken_ns\":%lld,"
                    "\"seq\":%llu,\"title\":",
                    (int)getpid(), (long long)s->taken_ns, (unsigned long long)s->seq);
    if (o.title != NULL)
        stw__out_json_string(&out, o.title);
    else
        stw__out_puts(&out, "null");
    stw__out_puts(&out, ",\"kinds\":[");
    bool first = true;
    for (int k = 0; k < STW_KIND_MAX; k++) {
        if (!kind_active(s, base, k))
            continue;
        const stw_kind_stat *ks = &s->kinds[k];
        stw__out_printf(&out, "%s{\"kind\":", first ? "" : ",");
        stw__out_json_string(&out, stw_kind_name(k));
        stw__out_printf(&out,
                        ",\"live\":%lld,\"live_bytes\":%lld,\"created\":%lld,\"released\":%lld",
                        (long long)ks->live, (long long)ks->live_bytes, (long long)ks->created,
                        (long long)ks->released);
        if (base != NULL)
            stw__out_printf(&out, ",\"initial_live\":%lld,\"initial_live_bytes\":%lld",
                            (long long)base->kinds[k].live, (long long)base->kinds[k].live_bytes);
        stw__out_puts(&out, "}");
        first = false;
    }
    int max = max_sites_of(&o);
    stw__out_printf(&out, "],\"nsites\":%zu,\"sites\":[", s->nsites);
    for (size_t i = 0; i < s->nsites && (int)i < max; i++) {
        const stw_site_stat *st = &s->sites[i];
        stw__out_printf(&out, "%s{\"site\":%u,\"kind\":", i ? "," : "", st->site);
        stw__out_json_string(&out, stw_kind_name(st->kind));
        stw__out_printf(&out, ",\"live\":%lld,\"live_bytes\":%lld,\"stack\":", (long long)st->live,
                        (long long)st->live_bytes);
        json_frames(&out, &o, st->site);
        if (o.records)
            json_records(&out, s, st);
        stw__out_puts(&out, "}");
    }
    stw__out_puts(&out, "]}\n");
    return stw__out_flush(&out);
}

int stw_report_prometheus(const stw_snapshot *s, stw_write_fn write, void *ud)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } metrics[] = {
        {"steward_live_resources", "gauge", "Resources currently alive, by kind.",
         offsetof(stw_kind_stat, live)},
        {"steward_live_bytes", "gauge", "Bytes held by live resources, by kind.",
         offsetof(stw_kind_stat, live_bytes)},
        {"steward_created_total", "counter", "Resources created since start, by kind.",
         offsetof(stw_kind_stat, created)},
        {"steward_released_total", "counter", "Resources released since start, by kind.",
         offsetof(stw_kind_stat, released)},
    };
    stw__out out;
    stw__out_init(&out, write, ud);
    for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
        stw__out_printf(&out, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
                        metrics[m].name, metrics[m].type);
        for (int k = 0; k < STW_KIND_MAX; k++) {
            if (k >= STW_KIND_BUILTIN_COUNT && stw_kind_name(k)[0] == '?')
                continue;
            const char *field = (const char *)&s->kinds[k] + metrics[m].off;
            int64_t v;
            memcpy(&v, field, sizeof(v));
            stw__out_printf(&out, "%s{kind=\"%s\"} %lld\n", metrics[m].name, stw_kind_name(k),
                            (long long)v);
        }
    }
    stw__out_printf(&out,
                    "# HELP steward_sites Interned creation sites.\n"
                    "# TYPE steward_sites gauge\nsteward_sites %u\n",
                    stw__site_count());
    return stw__out_flush(&out);
}
