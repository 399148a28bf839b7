#include <time.h>

#include "ledger_internal.h"

stw_baseline stw_verify_begin(void)
{
    return (stw_baseline){.seq = stw_ledger_checkpoint(), .kinds = 0};
}

int stw_verify_none(stw_baseline base, int retry_ms, int fd)
{
    stw_snapshot_opts o = {.kinds = base.kinds, .since_seq = base.seq, .records = true};
    stw_deadline until = stw_deadline_in_ms(retry_ms < 0 ? 0 : retry_ms);
    for (;;) {
        stw_snapshot *s = NULL;
        if (stw_snapshot_new(&o, &s) != 0)
            return -1;
        int n = (int)s->nrecords;
        if (n == 0 || stw_now_ns() >= until) {
            if (n > 0 && fd >= 0) {
                stw_report_opts ro = {.symbolize = true,
                                      .records = true,
                                      .title = "resources still alive since the baseline"};
                stw_report_text(s, &ro, stw_write_fd, (void *)(intptr_t)fd);
                stw_symbolize_release();
            }
            stw_snapshot_free(&s);
            return n;
        }
        stw_snapshot_free(&s);
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
}
