/*
 * Symbolization with elfutils libdwfl: function names come from the ELF
 * symbol table (.symtab when present, so static functions of a binary
 * built without -rdynamic are named too) and file:line from DWARF. One
 * Dwfl session describes the process's modules; it is rebuilt when a pc
 * falls outside every known module (a library dlopen'ed since).
 */
#include <dlfcn.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger_internal.h"

static pthread_mutex_t dwfl_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;
static char *debuginfo_path;
static int64_t last_refresh_ns;

/* Separate debug info is looked up by build id only (/usr/lib/debug, where
 * Debian's -dbgsym packages put it). The standard lookup would also ask
 * debuginfod servers over the network, which means starting libcurl inside
 * the process being reported on, possibly during its exit. */
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_build_id_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static int dwfl_refresh(void)
{
    if (dwfl != NULL)
        dwfl_end(dwfl);
    dwfl = dwfl_begin(&callbacks);
    if (dwfl == NULL)
        return -ENOMEM;
    dwfl_report_begin(dwfl);
    int rc = dwfl_linux_proc_report(dwfl, getpid());
    dwfl_report_end(dwfl, NULL, NULL);
    if (rc != 0) {
        dwfl_end(dwfl);
        dwfl = NULL;
        return -ENOENT;
    }
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static const char *basename_of(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

/* Line lookup for a module whose compiler left out .debug_aranges (clang's
 * default), which libdwfl's own lookup depends on: find the compilation
 * unit that covers the address by walking them all. */
static bool getsrc_by_cu_walk(Dwfl_Module *mod, Dwarf_Addr addr, int *lineno, const char **file)
{
    Dwarf_Addr bias = 0;
    Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
    if (dw == NULL)
        return false;
    Dwarf_Off off = 0, next;
    size_t hsize;
    while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
        Dwarf_Die cu;
        if (dwarf_offdie(dw, off + hsize, &cu) != NULL && dwarf_haspc(&cu, addr - bias) == 1) {
            Dwarf_Line *l = dwarf_getsrc_die(&cu, addr - bias);
            if (l != NULL) {
                *file = dwarf_linesrc(l, NULL, NULL);
                dwarf_lineno(l, lineno);
                return true;
            }
            return false;
        }
        off = next;
    }
    return false;
}

/* C++ names are demangled with the C++ runtime's own demangler when the
 * process has one loaded (every C++ program does); otherwise they stay
 * mangled rather than pull libstdc++ into C programs. */
typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);

static void copy_demangled(char *dst, size_t cap, const char *name)
{
    static demangle_fn demangle;
    static bool looked;
    if (name[0] == '_' && name[1] == 'Z') {
        if (!looked) {
            demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
            looked = true;
        }
        int status = -1;
        char *d = demangle ? demangle(name, NULL, NULL, &status) : NULL;
        if (d != NULL && status == 0) {
            copy_str(dst, cap, d);
            free(d);
            return;
        }
        free(d);
    }
    copy_str(dst, cap, name);
}

int stw_symbolize(void *pc, stw_symbol *out)
{
    memset(out, 0, sizeof(*out));
    if (pc == NULL)
        return -ENOENT;
    /* A return address points after the call; pc - 1 is inside it. */
    Dwarf_Addr addr = (Dwarf_Addr)(uintptr_t)pc - 1;
    bool guarded = stw_ledger_guard_enter();
    pthread_mutex_lock(&dwfl_lock);
    Dwfl_Module *mod = NULL;
    if (dwfl != NULL)
        mod = dwfl_addrmodule(dwfl, addr);
    /* A pc outside every module (garbage, JIT code) must not rebuild the
     * session for each frame of a report: at most one rebuild per second. */
    if (mod == NULL && (dwfl == NULL || stw_now_ns() - last_refresh_ns > 1000000000) &&
        (last_refresh_ns = stw_now_ns(), dwfl_refresh() == 0))
        mod = dwfl_addrmodule(dwfl, addr);
    int rc = -ENOENT;
    if (mod != NULL) {
        const char *mname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        copy_str(out->module, sizeof(out->module), basename_of(mname));
        GElf_Off off = 0;
        GElf_Sym sym;
        const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
        if (name != NULL) {
            copy_demangled(out->func, sizeof(out->func), name);
            out->offset = (uintptr_t)off + 1;
        }
        Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
        int lineno = 0;
        const char *file = NULL;
        if (line != NULL)
            file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        else
            getsrc_by_cu_walk(mod, addr, &lineno, &file);
        copy_str(out->file, sizeof(out->file), file);
        out->line = lineno;
        rc = 0;
    }
    pthread_mutex_unlock(&dwfl_lock);
    if (guarded)
        stw_ledger_guard_exit();
    return rc;
}

void stw_symbolize_release(void)
{
    bool guarded = stw_ledger_guard_enter();
    pthread_mutex_lock(&dwfl_lock);
    if (dwfl != NULL)
        dwfl_end(dwfl);
    dwfl = NULL;
    last_refresh_ns = 0;
    pthread_mutex_unlock(&dwfl_lock);
    if (guarded)
        stw_ledger_guard_exit();
}
