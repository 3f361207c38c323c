/* The end of a podsim run in two forms: a summary table on stdout and a
 * self-contained HTML report (inline CSS and SVG, no scripts or external
 * assets, so it can be mailed or attached to a CI run as is) with
 * throughput, hit ratio, propagation delay, errors, stale reads and sync
 * state over time, faults drawn as shaded intervals, and what each fault
 * cost (the same numbers the summary prints).
 */
#include "podsim.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* Whole-run numbers of one pod, or of all of them (the total row). */
typedef struct row {
    char name[16];
    const char *role;
    uint64_t ops, errors, local_hits, local_misses, remote_hits, applied, verified, stale_reads;
    uint64_t reconnects, gaps, flushes, replayed;
    uint64_t end_checked, end_stale, end_unreadable, entries, quiesce_ms;
    int quiesced;              /* 1 yes, 0 no, -1 unknown (no final record) */
    double p50, p99, p999;
    const char *note;          /* first stale key, exit trouble; "" if none */
    char note_buf[200];
} row;

static double per_s(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static double hit_pct(const row *r)
{
    uint64_t n = r->local_hits + r->local_misses;
    return n ? 100.0 * (double)r->local_hits / (double)n : 0;
}

static void fmt_us(char *buf, size_t len, double us)
{
    if (us <= 0)
        snprintf(buf, len, "-");
    else if (us < 1000)
        snprintf(buf, len, "%.0f us", us);
    else if (us < 1e6)
        snprintf(buf, len, "%.1f ms", us / 1e3);
    else
        snprintf(buf, len, "%.2f s", us / 1e6);
}

static void pod_row(const ps_run *run, int i, row *r)
{
    const ps_pod_summary *p = &run->pod[i];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "pod-%d", i + 1);
    r->role = p->role_reader ? "reader" : "writer";
    r->ops = p->ops;
    r->errors = p->errors;
    r->local_hits = p->local_hits;
    r->local_misses = p->local_misses;
    r->remote_hits = p->remote_hits;
    r->applied = p->applied;
    r->verified = p->verified;
    r->stale_reads = p->stale_reads;
    r->reconnects = p->reconnects;
    r->gaps = p->gaps;
    r->flushes = p->flushes;
    r->replayed = p->replayed;
    r->p50 = ps_hist_quantile(p->hist, 0.50);
    r->p99 = ps_hist_quantile(p->hist, 0.99);
    r->p999 = ps_hist_quantile(p->hist, 0.999);
    r->quiesced = p->final_seen ? (int)p->final.quiesced : -1;
    r->note = "";
    if (p->final_seen) {
        r->end_checked = p->final.end_checked;
        r->end_stale = p->final.end_stale;
        r->end_unreadable = p->final.end_unreadable;
        r->entries = p->final.entries_before_check;
        r->quiesce_ms = p->final.quiesce_ms;
        if (p->final.end_stale) {
            snprintf(r->note_buf, sizeof r->note_buf, "first stale entry %s", p->final.msg);
            r->note = r->note_buf;
        } else if (p->final.end_unreadable) {
            snprintf(r->note_buf, sizeof r->note_buf, "end check incomplete: %" PRIu32 " keys unreadable in Redis",
                     p->final.end_unreadable);
            r->note = r->note_buf;
        } else if (!p->final.quiesced) {
            snprintf(r->note_buf, sizeof r->note_buf, "did not catch up with Redis' sequence");
            r->note = r->note_buf;
        }
    } else if (!run->interrupted) {
        r->note = "no end check (the pod exited early)";
    }
    if (p->exit_status > 0 && WIFSIGNALED(p->exit_status) && !run->interrupted) {
        snprintf(r->note_buf, sizeof r->note_buf, "killed by signal %d", WTERMSIG(p->exit_status));
        r->note = r->note_buf;
    }
}

static void total_row(const ps_run *run, row *t)
{
    uint64_t hist[PS_HIST_BUCKETS] = {0};
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "total");
    t->role = "";
    t->note = "";
    t->quiesced = 1;
    for (int i = 0; i < run->cfg->pods; i++) {
        row r;
        pod_row(run, i, &r);
        t->ops += r.ops;
        t->errors += r.errors;
        t->local_hits += r.local_hits;
        t->local_misses += r.local_misses;
        t->remote_hits += r.remote_hits;
        t->applied += r.applied;
        t->verified += r.verified;
        t->stale_reads += r.stale_reads;
        t->reconnects += r.reconnects;
        t->gaps += r.gaps;
        t->flushes += r.flushes;
        t->replayed += r.replayed;
        t->end_checked += r.end_checked;
        t->end_stale += r.end_stale;
        t->end_unreadable += r.end_unreadable;
        t->entries += r.entries;
        if (r.quiesce_ms > t->quiesce_ms)
            t->quiesce_ms = r.quiesce_ms;
        if (r.quiesced != 1)
            t->quiesced = r.quiesced < t->quiesced ? r.quiesced : t->quiesced;
        for (unsigned b = 0; b < PS_HIST_BUCKETS; b++)
            hist[b] += run->pod[i].hist[b];
    }
    t->p50 = ps_hist_quantile(hist, 0.50);
    t->p99 = ps_hist_quantile(hist, 0.99);
    t->p999 = ps_hist_quantile(hist, 0.999);
}

/* 1: every pod quiesced, checked every entry it held and held nothing
 * stale (an entry Redis could not be read for was not checked: no pass). */
static int verdict_ok(const ps_run *run, const row *t)
{
    if (run->interrupted || t->end_stale || t->end_unreadable || t->quiesced != 1)
        return 0;
    if (run->cfg->write_behind_db && (!run->wb_checked || run->wb_mismatch || !run->wb_flushed))
        return 0;
    for (int i = 0; i < run->cfg->pods; i++)
        if (!run->pod[i].final_seen || run->pod[i].exit_status != 0)
            return 0;
    return 1;
}

static const char *quiesce_text(const row *r, char *buf, size_t len)
{
    if (r->quiesced < 0)
        return "-";
    snprintf(buf, len, "%s %" PRIu64 " ms", r->quiesced ? "yes" : "NO", r->quiesce_ms);
    return buf;
}

static void print_row(const row *r, double secs)
{
    char a[16], b[16], c[16], q[32], st[32], end[40];
    fmt_us(a, sizeof a, r->p50);
    fmt_us(b, sizeof b, r->p99);
    fmt_us(c, sizeof c, r->p999);
    snprintf(st, sizeof st, "%" PRIu64 "/%" PRIu64, r->stale_reads, r->verified);
    if (r->quiesced < 0)
        snprintf(end, sizeof end, "-");
    else
        snprintf(end, sizeof end, "%" PRIu64 "/%" PRIu64 "/%" PRIu64, r->end_stale, r->end_checked, r->entries);
    printf("%-7s %-6s %9" PRIu64 " %7.0f %6.1f %8" PRIu64 " %6" PRIu64 " %8s %8s %8s %11s %15s %12s %5" PRIu64
           " %5" PRIu64 " %5" PRIu64 "\n",
           r->name, r->role, r->ops, per_s(r->ops, secs), hit_pct(r), r->remote_hits, r->errors, a, b, c, st, end,
           quiesce_text(r, q, sizeof q), r->reconnects, r->gaps, r->flushes);
    if (*r->note)
        printf("        ^ %s\n", r->note);
}

/* The local hit ratio of the seconds [from, to) (1-based), all pods
 * together; -1 when no get was made then. */
static double window_hit(const ps_run *run, size_t from, size_t to, uint64_t *stale)
{
    uint64_t hits = 0, lookups = 0;
    for (size_t k = from; k < to && k <= run->nseconds; k++) {
        if (k == 0)
            continue;
        const ps_second *sec = &run->seconds[k - 1];
        hits += sec->local_hits;
        lookups += sec->local_hits + sec->local_misses;
        if (stale)
            *stale += sec->stale_reads;
    }
    return lookups ? 100.0 * (double)hits / (double)lookups : -1;
}

void ps_fault_impact_of(const ps_run *run, const ps_fault *f, ps_fault_impact *out)
{
    memset(out, 0, sizeof *out);
    out->back_s = -1;
    out->resync_s = -1;
    size_t k = (size_t)f->at_s + 1; /* the second the fault fell in */
    double before = window_hit(run, k > 3 ? k - 3 : 1, k, NULL);
    double lowest = 101;
    for (size_t s = k; s < k + 5 && s <= run->nseconds; s++) {
        double h = window_hit(run, s, s + 1, &out->stale);
        if (h < 0)
            continue;
        if (h < lowest)
            lowest = h;
        if (out->back_s < 0 && before >= 0 && h >= before - 2.0)
            out->back_s = (double)s - f->at_s;
    }
    /* Sync: the first second (from the fault's own) in which some pod was
     * unsynced at a sample, then the first whole second after it in which
     * every pod reported and was synced at every sample. */
    int pods = run->cfg->pods;
    size_t lost = 0;
    for (size_t s = k; s < k + 3 && s <= run->nseconds && !lost; s++)
        if (run->seconds[s - 1].pods_unsynced > 0)
            lost = s;
    if (!lost) {
        out->resync_s = 0; /* no pod was seen unsynced */
    } else {
        out->lost_sync = 1;
        size_t end = 0;
        for (size_t s = lost + 1; s < k + 10 && s <= run->nseconds; s++) {
            const ps_second *sec = &run->seconds[s - 1];
            if (sec->pods_reported == pods && sec->pods_unsynced == 0) {
                out->resync_s = (double)(s - 1) - f->at_s; /* synced from this second's start */
                if (out->resync_s < 0)
                    out->resync_s = 0;
                end = s;
                break;
            }
        }
        if (!end)
            end = k + 10 <= run->nseconds + 1 ? k + 10 : run->nseconds + 1;
        uint64_t most = 0;
        for (int p = 0; p < pods && p < PS_MAX_PODS; p++) {
            uint64_t n = 0;
            for (size_t s = lost; s < end; s++)
                n += run->seconds[s - 1].pod_unsynced[p];
            most = n > most ? n : most;
        }
        out->unsynced_ms = (double)most * PS_SYNC_SAMPLE_MS;
    }
    out->before = before;
    out->lowest = lowest;
    out->measured = before >= 0 && lowest <= 100;
}

/* "hit ratio 87.1% before, ... ; all pods synced again within 2.0 s" */
static void fault_impact_text(const ps_run *run, const ps_fault *f, char *buf, size_t len)
{
    ps_fault_impact im;
    ps_fault_impact_of(run, f, &im);
    size_t n = 0;
#define APPEND(...) n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__)
    if (!im.measured) {
        APPEND("not enough seconds around it to measure the hit ratio");
    } else {
        APPEND("hit ratio %.1f%% before, lowest %.1f%% after (dip %.1f points), ", im.before, im.lowest,
               im.before > im.lowest ? im.before - im.lowest : 0.0);
        if (im.back_s >= 0)
            APPEND("within 2 points again by %.1f s after", im.back_s);
        else
            APPEND("not back within 2 points in 5 s");
        APPEND("; %" PRIu64 " stale reads sampled in the 5 s after", im.stale);
    }
    if (!im.lost_sync)
        APPEND("; no pod seen unsynced (sampled every %d ms)", PS_SYNC_SAMPLE_MS);
    else if (im.resync_s >= 0)
        APPEND("; a pod was unsynced for up to ~%.0f ms, every pod synced again within %.1f s", im.unsynced_ms,
               im.resync_s);
    else
        APPEND("; a pod was unsynced for ~%.0f ms, NOT every pod synced again within 10 s", im.unsynced_ms);
#undef APPEND
}

static void print_fault_impact(const ps_run *run, const ps_fault *f)
{
    char text[400];
    fault_impact_text(run, f, text, sizeof text);
    printf("  fault at %6.2f s: %s\n", f->at_s, text);
}

void ps_print_summary(const ps_run *run)
{
    const ps_config *cfg = run->cfg;
    double secs = run->elapsed_s;
    printf("\n%spodsim summary: %.1f s of workload%s, %d pods, Redis sequence %" PRIu64 "%s\n",
           run->ansi ? "\033[1m" : "", secs, run->interrupted ? " (interrupted)" : "", cfg->pods, run->redis_seq,
           run->ansi ? "\033[0m" : "");
    printf("%-7s %-6s %9s %7s %6s %8s %6s %8s %8s %8s %11s %15s %12s %5s %5s %5s\n", "pod", "role", "ops tot",
           "ops/s", "hit%", "rem.hits", "errs", "prop p50", "p99", "p999", "stale rd", "end stale/chk", "quiesced",
           "recon", "gaps", "flush");
    for (int i = 0; i < cfg->pods; i++) {
        row r;
        pod_row(run, i, &r);
        print_row(&r, secs);
    }
    row t;
    total_row(run, &t);
    print_row(&t, secs);
    printf("Totals over the run, except ops/s (mean per second) and hit%% (local hits / lookups).\n"
           "prop p50/p99/p999 = propagation delay: a write to its apply on another pod (not operation latency);\n"
           "stale rd = sampled reads that returned an older version than Redis held when the read began / reads\n"
           "sampled; end stale/chk = local entries older than Redis after quiescing / compared / held.\n");
    for (size_t i = 0; i < run->nfaults; i++) {
        char dur[32] = "";
        if (run->faults[i].dur_s > 0)
            snprintf(dur, sizeof dur, " (lasted %.2f s)", run->faults[i].dur_s);
        printf("fault at %6.2f s: %s%s\n", run->faults[i].at_s, run->faults[i].what, dur);
    }
    if (run->nfaults)
        printf("what each fault cost (all pods, one-second buckets):\n");
    for (size_t i = 0; i < run->nfaults; i++)
        print_fault_impact(run, &run->faults[i]);
    if (cfg->write_behind_db && run->wb_checked) {
        uint64_t failures = 0;
        for (int i = 0; i < cfg->pods; i++)
            failures += run->pod[i].final.behind_failures;
        printf("write-behind into %s: %" PRIu64 " writes saved during the run, %" PRIu64 " failed saves, queue %s; "
               "database vs Redis: %" PRIu64 " of %" PRIu64 " keys equal, %" PRIu64 " differ%s%s\n",
               cfg->write_behind_db, run->wb_saved, failures, run->wb_flushed ? "flushed" : "NOT flushed",
               run->wb_equal, run->wb_keys,
               run->wb_mismatch, run->wb_note[0] ? ": " : "", run->wb_note);
    }
    if (run->interrupted)
        printf("RESULT: interrupted; the end check did not run\n");
    else if (verdict_ok(run, &t))
        printf("RESULT: PASS: no pod holds a stale entry after quiescing (%" PRIu64
               " stale reads seen during the run)\n",
               t.stale_reads);
    else
        printf("RESULT: FAIL: %" PRIu64 " stale entries after quiescing%s%s\n", t.end_stale,
               t.quiesced != 1 ? "; not every pod caught up with Redis" : "",
               t.end_unreadable ? "; the end check could not read every entry's key in Redis" : "");
}

/* ---- HTML ---- */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct series {
    const char *name;
    const char *color;
    double width;
    const double *v;           /* one value per second; < 0: none */
    const char *dash;          /* stroke-dasharray; NULL: solid */
} series;

enum { CW = 900, CH = 310, ML = 84, MR = 16, MT = 50, MB = 52 };

/* "100 us", "1 ms", "10 s" for the decade 10^e µs. */
static void decade_label(char *buf, size_t len, double e)
{
    int d = (int)lround(e);
    const char *unit = d < 3 ? "us" : d < 6 ? "ms" : "s";
    int shift = d < 3 ? 0 : d < 6 ? 3 : 6;
    snprintf(buf, len, "%g %s", pow(10, d - shift), unit);
}

static double nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw)));
    double n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

/* One chart, id `id` (the report test looks for it). With log_us the values
 * are µs on a log10 axis; otherwise the axis is linear from 0 (to fixed_max
 * when > 0). Faults are shaded over their duration (a thin band when they
 * were instantaneous) and labelled F1, F2, ... as in the fault list. */
static void chart(FILE *f, const ps_run *run, const char *id, const char *title, const char *ytitle,
                  const series *ser, int nser, int log_us, double fixed_max, const char *unit)
{
    size_t n = run->nseconds;
    double xmax = run->elapsed_s > (double)n ? run->elapsed_s : (double)n;
    if (xmax < 1)
        xmax = 1;
    double lo = INFINITY, hi = 0;
    for (int s = 0; s < nser; s++)
        for (size_t i = 0; i < n; i++)
            if (ser[s].v[i] >= 0 && !(log_us && ser[s].v[i] <= 0)) {
                lo = ser[s].v[i] < lo ? ser[s].v[i] : lo;
                hi = ser[s].v[i] > hi ? ser[s].v[i] : hi;
            }
    double ymin = 0, ymax, step;
    if (log_us) {
        ymin = isfinite(lo) ? floor(log10(lo)) : 1;
        ymax = hi > 0 ? ceil(log10(hi)) : ymin + 1;
        if (ymax <= ymin)
            ymax = ymin + 1;
        step = 1;
    } else if (fixed_max > 0) {
        ymax = fixed_max;
        step = fixed_max <= 10 ? 1 : fixed_max / 5;
    } else {
        step = nice_step(hi > 0 ? hi : 1);
        if (step < 1)
            step = 1; /* counts: no fractional grid lines */
        ymax = ceil((hi > 0 ? hi : 1) / step) * step;
        if (ymax < hi * 1.05)
            ymax += step;
    }
    const double pw = CW - ML - MR, ph = CH - MT - MB;
#define X(t) (ML + (t) / xmax * pw)
#define Y(v) (MT + ph - ((log_us ? log10(v) : (v)) - ymin) / (ymax - ymin) * ph)

    fprintf(f, "<svg id='%s' class='chart' xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' font-family='sans-serif' style='display:block;margin:8px 0 4px;border:1px solid #eee'>\n",
            id, CW, CH, CW, CH);
    fprintf(f, "<text x='%d' y='18' font-size='14' font-weight='600'>", ML);
    html_text(f, title);
    fprintf(f, "</text>\n");
    /* Grid and y labels. */
    for (double v = ymin; v <= ymax + 1e-9; v += step) {
        double y = MT + ph - (v - ymin) / (ymax - ymin) * ph;
        char lab[32];
        if (log_us)
            decade_label(lab, sizeof lab, v);
        else if (v >= 1e6)
            snprintf(lab, sizeof lab, "%.1fM%s", v / 1e6, unit);
        else if (v >= 1e4)
            snprintf(lab, sizeof lab, "%.0fk%s", v / 1e3, unit);
        else
            snprintf(lab, sizeof lab, "%g%s", v, unit);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/>", ML, y, CW - MR, y);
        fprintf(f, "<text x='%d' y='%.1f' font-size='11' text-anchor='end' fill='#555'>%s</text>\n", ML - 6, y + 4, lab);
    }
    double xstep = nice_step(xmax);
    if (xstep < 1)
        xstep = 1;
    for (double t = 0; t <= xmax + 1e-9; t += xstep)
        fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle' fill='#555'>%g</text>", X(t), CH - MB + 16, t);
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#999'/>\n", ML, MT + (int)ph, CW - MR, MT + (int)ph);
    /* Axis titles. */
    fprintf(f, "<text class='axis-title' x='%.1f' y='%d' font-size='12' text-anchor='middle' fill='#333'>"
               "time since the workload started (s); each point is one second, drawn at its end</text>\n",
            ML + pw / 2, CH - 10);
    fprintf(f, "<text class='axis-title' transform='translate(16 %.1f) rotate(-90)' font-size='12' "
               "text-anchor='middle' fill='#333'>",
            MT + ph / 2);
    html_text(f, ytitle);
    fprintf(f, "</text>\n");

    /* Faults under the data so the lines stay readable: a band over the
     * fault's duration, at least 3 px wide. */
    for (size_t i = 0; i < run->nfaults; i++) {
        const ps_fault *ft = &run->faults[i];
        double x0 = X(ft->at_s), x1 = X(ft->at_s + ft->dur_s);
        if (x1 > CW - MR)
            x1 = CW - MR;
        if (x1 - x0 < 3)
            x1 = x0 + 3;
        char dur[32];
        if (ft->dur_s > 0)
            snprintf(dur, sizeof dur, "%.2f s", ft->dur_s);
        else
            snprintf(dur, sizeof dur, "instant");
        fprintf(f, "<rect class='fault' x='%.1f' y='%d' width='%.1f' height='%.1f' fill='#c62828' fill-opacity='0.16'>"
                   "<title>F%zu at %.2f s, %s: ",
                x0, MT, x1 - x0, ph, i + 1, ft->at_s, dur);
        html_text(f, ft->what);
        fprintf(f, "</title></rect><text x='%.1f' y='%d' font-size='11' fill='#c62828'>F%zu %s</text>\n", x1 + 3,
                MT + 10 + 12 * (int)(i % 3), i + 1, dur);
    }

    /* A point sits at the end of the second it measured; gaps break lines. */
    for (int s = 0; s < nser; s++) {
        int open = 0;
        for (size_t i = 0; i < n; i++) {
            double v = ser[s].v[i];
            int ok = v >= 0 && !(log_us && v <= 0);
            if (ok && !open) {
                fprintf(f, "<polyline class='series' fill='none' stroke='%s' stroke-width='%.1f'%s%s%s points='",
                        ser[s].color, ser[s].width, ser[s].dash ? " stroke-dasharray='" : "",
                        ser[s].dash ? ser[s].dash : "", ser[s].dash ? "'" : "");
                open = 1;
            } else if (!ok && open) {
                fprintf(f, "'/>\n");
                open = 0;
            }
            if (ok)
                fprintf(f, "%.1f,%.1f ", X((double)i + 1), Y(v));
        }
        if (open)
            fprintf(f, "'/>\n");
    }
    /* Legend: its own row under the title, so a long title keeps its room;
     * each entry shows the line's color, width and dash pattern. */
    double lx = ML;
    for (int s = 0; s < nser; s++) {
        fprintf(f, "<line x1='%.0f' y1='33' x2='%.0f' y2='33' stroke='%s' stroke-width='%.1f'%s%s%s/>", lx, lx + 28,
                ser[s].color, ser[s].width < 2 ? 2 : ser[s].width, ser[s].dash ? " stroke-dasharray='" : "",
                ser[s].dash ? ser[s].dash : "", ser[s].dash ? "'" : "");
        fprintf(f, "<text x='%.0f' y='37' font-size='12'>", lx + 32);
        html_text(f, ser[s].name);
        fprintf(f, "</text>\n");
        lx += 44 + 6.5 * (double)strlen(ser[s].name);
    }
    fprintf(f, "</svg>\n");
#undef X
#undef Y
}

/* Per-pod lines differ in color and in dash pattern, so they stay apart in
 * print, for color-blind readers and where colors repeat. */
static const char *pod_color(int i)
{
    static const char *c[] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
                              "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"};
    return c[i % 10];
}

static const char *pod_dash(int i)
{
    static const char *d[] = {NULL, "7 3", "2 2", "9 3 2 3", "4 4", "1 3", "12 4", "6 2 2 2 2 2"};
    return d[i % 8];
}

static void charts(FILE *f, const ps_run *run)
{
    size_t n = run->nseconds ? run->nseconds : 1;
    int pods = run->cfg->pods;
    int per_pod = pods <= 10; /* more lines than colors only adds noise */
    double *buf = calloc((size_t)(pods + 2) * n, sizeof *buf);
    series *ser = calloc((size_t)pods + 2, sizeof *ser);
    char(*names)[16] = calloc((size_t)pods, sizeof *names);
    if (!buf || !ser || !names) {
        fprintf(f, "<p>out of memory drawing the charts</p>\n");
        free(buf);
        free(ser);
        free(names);
        return;
    }
    for (int p = 0; p < pods; p++)
        snprintf(names[p], sizeof names[p], "pod-%d", p + 1);

    /* Throughput: all pods, then each pod thin. */
    int ns = 0;
    double *tot = buf;
    for (size_t i = 0; i < run->nseconds; i++)
        tot[i] = (double)run->seconds[i].ops;
    ser[ns++] = (series){"all pods", "#222", 2.4, tot, NULL};
    for (int p = 0; per_pod && p < pods; p++) {
        double *v = buf + (size_t)(p + 1) * n;
        for (size_t i = 0; i < run->nseconds; i++)
            v[i] = (double)run->seconds[i].pod_ops[p];
        ser[ns++] = (series){names[p], pod_color(p), 1.6, v, pod_dash(p)};
    }
    chart(f, run, "chart-throughput", "Throughput: operations per second", "operations per second", ser, ns, 0, 0,
          "");

    /* Local hit ratio. */
    ns = 0;
    for (size_t i = 0; i < run->nseconds; i++) {
        const ps_second *s = &run->seconds[i];
        uint64_t lk = s->local_hits + s->local_misses;
        tot[i] = lk ? 100.0 * (double)s->local_hits / (double)lk : -1;
    }
    ser[ns++] = (series){"all pods", "#222", 2.4, tot, NULL};
    for (int p = 0; per_pod && p < pods; p++) {
        double *v = buf + (size_t)(p + 1) * n;
        for (size_t i = 0; i < run->nseconds; i++)
            v[i] = run->seconds[i].pod_hit[p];
        ser[ns++] = (series){names[p], pod_color(p), 1.6, v, pod_dash(p)};
    }
    chart(f, run, "chart-hit-ratio", "Local hit ratio, per second", "local hits / lookups (%)", ser, ns, 0, 100,
          "%");

    /* Propagation delay. */
    double *p50 = buf, *p99 = buf + n;
    for (size_t i = 0; i < run->nseconds; i++) {
        p50[i] = run->seconds[i].p50_us;
        p99[i] = run->seconds[i].p99_us;
    }
    ser[0] = (series){"p50", "#4e79a7", 2.0, p50, NULL};
    ser[1] = (series){"p99", "#e15759", 2.0, p99, "7 3"};
    chart(f, run, "chart-propagation",
          "Propagation delay (a write to its apply on another pod; not operation latency), per second",
          "delay (log scale)", ser, 2, 1, 0, "");

    /* Errors per second. */
    for (size_t i = 0; i < run->nseconds; i++)
        tot[i] = (double)run->seconds[i].errors;
    ser[0] = (series){"errors/s, all pods", "#c62828", 2.0, tot, NULL};
    chart(f, run, "chart-errors", "Errors per second (failed gets and sets, all pods)", "errors per second", ser, 1,
          0, 0, "");

    /* Stale reads per second, against the reads sampled. */
    double *stale = buf, *verified = buf + n;
    for (size_t i = 0; i < run->nseconds; i++) {
        stale[i] = (double)run->seconds[i].stale_reads;
        verified[i] = (double)run->seconds[i].verified;
    }
    ser[0] = (series){"stale reads/s", "#c62828", 2.2, stale, NULL};
    ser[1] = (series){"reads checked/s", "#999", 1.4, verified, "4 3"};
    chart(f, run, "chart-stale-reads",
          "Stale reads per second (sampled reads that returned an older version than Redis held)",
          "reads per second", ser, 2, 0, 0, "");

    /* Sync state, from samples every PS_SYNC_SAMPLE_MS in each pod. */
    double *mean = buf, *lost = buf + n;
    for (size_t i = 0; i < run->nseconds; i++) {
        const ps_second *s = &run->seconds[i];
        mean[i] = s->pods_reported ? s->synced_pods : -1;
        lost[i] = s->pods_reported ? (double)s->pods_unsynced : -1;
    }
    ser[0] = (series){"pods synced (mean over the second)", "#2e7d32", 2.4, mean, NULL};
    ser[1] = (series){"pods unsynced at some point in the second", "#c62828", 1.8, lost, "7 3"};
    char title[120];
    snprintf(title, sizeof title, "Sync state, sampled every %d ms in each pod", PS_SYNC_SAMPLE_MS);
    chart(f, run, "chart-sync", title, "pods", ser, 2, 0, pods, "");

    if (run->cfg->write_behind_db) {
        double *depth = buf, *saved = buf + n;
        for (size_t i = 0; i < run->nseconds; i++) {
            depth[i] = (double)run->seconds[i].wb_pending;
            saved[i] = (double)run->seconds[i].wb_saved;
        }
        ser[0] = (series){"queue depth (writes not yet saved)", "#e15759", 2.0, depth, NULL};
        ser[1] = (series){"writes saved per second", "#59a14f", 2.0, saved, "7 3"};
        chart(f, run, "chart-write-behind", "Write-behind: queue depth and save rate", "writes", ser, 2, 0, 0, "");
    }
    free(buf);
    free(ser);
    free(names);
}

static void html_row(FILE *f, const row *r, double secs, int total)
{
    char a[16], b[16], c[16], q[32];
    fmt_us(a, sizeof a, r->p50);
    fmt_us(b, sizeof b, r->p99);
    fmt_us(c, sizeof c, r->p999);
    fprintf(f, "<tr%s><td>%s</td><td>%s</td><td>%" PRIu64 "</td><td>%.0f</td><td>%.1f</td><td>%" PRIu64
               "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td><td>%s</td>",
            total ? " class='total'" : "", r->name, r->role, r->ops, per_s(r->ops, secs), hit_pct(r),
            r->remote_hits, r->errors, r->applied, a, b, c);
    fprintf(f, "<td%s>%" PRIu64 " / %" PRIu64 "</td>", r->stale_reads ? " class='warn'" : "", r->stale_reads,
            r->verified);
    if (r->quiesced < 0)
        fprintf(f, "<td>-</td>");
    else
        fprintf(f, "<td%s>%" PRIu64 " / %" PRIu64 " / %" PRIu64 "</td>", r->end_stale ? " class='bad'" : "",
                r->end_stale, r->end_checked, r->entries);
    fprintf(f, "<td%s>%s</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
               "</td><td>",
            r->quiesced == 0 ? " class='bad'" : "", quiesce_text(r, q, sizeof q), r->reconnects, r->gaps,
            r->flushes, r->replayed);
    html_text(f, r->note);
    fprintf(f, "</td></tr>\n");
}

int ps_write_report(const ps_run *run, const char *path)
{
    const ps_config *cfg = run->cfg;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    row t;
    total_row(run, &t);
    int ok = verdict_ok(run, &t);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));

    fprintf(f, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
               "<title>podsim report</title>\n<style>\n"
               "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}\n"
               "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}\n"
               ".meta{color:#555}.pass{color:#fff;background:#2e7d32;padding:2px 8px;border-radius:4px}\n"
               ".fail{color:#fff;background:#c62828;padding:2px 8px;border-radius:4px}\n"
               "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;"
               "text-align:right}th{background:#f4f4f4}td:nth-child(-n+2){text-align:left}\n"
               "td:last-child{text-align:left;color:#c62828}tr.total td{font-weight:bold;background:#fafafa}\n"
               "td.warn{background:#fff4d6}td.bad{background:#ffd6d6}\n"
               "</style></head><body>\n");
    fprintf(f, "<h1>podsim report <span class='%s'>%s</span></h1>\n", ok ? "pass" : "fail",
            run->interrupted ? "INTERRUPTED" : ok ? "PASS" : "FAIL");
    fprintf(f, "<p class='meta'>%s &middot; synccache %s &middot; %.1f s of workload &middot; Redis ", when,
            SC_VERSION_STRING, run->elapsed_s);
    html_text(f, cfg->redis_host);
    fprintf(f, ":%d%s &middot; namespace ", cfg->redis_port, cfg->private_redis ? " (private, started by podsim)" : "");
    html_text(f, cfg->ns);
    fprintf(f, " &middot; final sequence %" PRIu64, run->redis_seq);
    if (run->prefill_s > 0)
        fprintf(f, " &middot; %u keys prefilled in %.2f s before the workload", cfg->keys, run->prefill_s);
    fprintf(f, "</p>\n");
    fprintf(f, "<p class='meta'>%d pods (%d readers) &middot; %u keys, zipf %.2f &middot; writes %.1f%% of a writer's ops"
               " &middot; values %zu&ndash;%zu B &middot; local tier %s, %zu entries &middot; rate %u ops/s per pod%s"
               " &middot; %.1f%% of reads verified &middot; seed %" PRIu64 "</p>\n",
            cfg->pods, cfg->readers, cfg->keys, cfg->zipf, cfg->write_ratio * 100, cfg->value_min, cfg->value_max,
            cfg->policy == SC_LOCAL_LRU ? "LRU" : "W-TinyLFU", cfg->local_size, cfg->rate,
            cfg->rate ? "" : " (unlimited)", cfg->verify_ratio * 100, cfg->seed);

    fprintf(f, "<h2>Over time</h2>\n");
    charts(f, run);
    if (run->nfaults) {
        fprintf(f, "<h2>Faults and recovery</h2>\n<ol class='faults'>\n");
        for (size_t i = 0; i < run->nfaults; i++) {
            const ps_fault *ft = &run->faults[i];
            char text[400];
            fault_impact_text(run, ft, text, sizeof text);
            fprintf(f, "<li>F%zu at %.2f s", i + 1, ft->at_s);
            if (ft->dur_s > 0)
                fprintf(f, ", lasted %.2f s", ft->dur_s);
            else
                fprintf(f, ", instantaneous");
            fprintf(f, ": <b>");
            html_text(f, ft->what);
            fprintf(f, "</b><br><span class='recovery'>recovery: ");
            html_text(f, text);
            fprintf(f, "</span></li>\n");
        }
        fprintf(f, "</ol>\n<p class='meta'>Hit ratio before: all pods over the 3 s before the fault; lowest: the "
                   "lowest one-second hit ratio in the 5 s after; recovery: when a second was back within 2 points. "
                   "Sync: each pod samples its sync state every %d ms; \"unsynced for up to\" counts the samples that "
                   "found a pod unsynced (the longest of the pods), \"synced again within\" is the start of the "
                   "first whole second in which every pod was synced at every sample.</p>\n",
                PS_SYNC_SAMPLE_MS);
    }

    fprintf(f, "<h2>Summary (totals over the run)</h2>\n<table><tr><th>pod</th><th>role</th><th>ops, total</th>"
               "<th>ops/s, mean</th><th>local hit %%</th><th>remote hits, total</th><th>errors, total</th>"
               "<th>events applied, total</th><th>propagation delay p50</th><th>propagation p99</th>"
               "<th>propagation p99.9</th><th>stale reads / reads checked, total</th>"
               "<th>end: stale / checked / held</th><th>quiesced</th><th>reconnects</th><th>gaps</th>"
               "<th>flushes</th><th>events replayed</th><th>note</th></tr>\n");
    for (int i = 0; i < cfg->pods; i++) {
        row r;
        pod_row(run, i, &r);
        html_row(f, &r, run->elapsed_s, 0);
    }
    html_row(f, &t, run->elapsed_s, 1);
    fprintf(f, "</table>\n<p class='meta'>Propagation delay: from the writer's clock when it wrote the value to "
               "the moment another pod applied the set event (both clocks are this machine's); it is not the "
               "latency of a get or a set. "
               "Stale reads: sampled reads that returned an older version than Redis held when the read began "
               "&mdash; the window every eventually consistent cache has, wider during faults; reported, never "
               "failing. End check: after the workload stopped and every pod caught up with Redis' sequence, each "
               "local entry compared with Redis' version; any difference fails the run. Entries a pod evicted while "
               "the check loaded keys it did not hold are not compared (see checked / held).</p>\n");
    if (cfg->write_behind_db && run->wb_checked) {
        uint64_t failures = 0;
        for (int i = 0; i < cfg->pods; i++)
            failures += run->pod[i].final.behind_failures;
        fprintf(f, "<h2>Write-behind</h2>\n<p>Writers used <code>sc_set_behind</code>; every pod saved the queue "
                   "into the SQLite file ");
        html_text(f, cfg->write_behind_db);
        fprintf(f, " (versioned upsert, one transaction per batch). %" PRIu64 " writes saved during the run, %" PRIu64
                   " failed saves; queue %s at the end. <b>Database vs Redis, every key: %" PRIu64 " of %" PRIu64
                   " equal, <span class='%s'>%" PRIu64 " differ</span></b>",
                run->wb_saved, failures, run->wb_flushed ? "flushed" : "NOT flushed", run->wb_equal, run->wb_keys,
                run->wb_mismatch ? "fail" : "pass", run->wb_mismatch);
        if (run->wb_redis_missing)
            fprintf(f, "; %" PRIu64 " keys in the database are gone from Redis (a Redis restart loses data; the "
                       "store keeps it)", run->wb_redis_missing);
        if (run->wb_note[0]) {
            fprintf(f, " &mdash; first difference: ");
            html_text(f, run->wb_note);
        }
        fprintf(f, ".</p>\n");
    }
    fprintf(f, "</body></html>\n");
    return fclose(f) == 0 ? 0 : -1;
}
