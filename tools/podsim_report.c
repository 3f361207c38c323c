/* The end of a podsim run in two forms: a summary table on stdout and a
 * self-contained HTML report (inline CSS and SVG, no scripts or external
 * assets, so it can be mailed or attached to a CI run as is) with throughput,
 * hit ratio and propagation delay over time, faults drawn as vertical lines.
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
    uint64_t end_checked, end_stale, entries, quiesce_ms;
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
        r->entries = p->final.entries_before_check;
        r->quiesce_ms = p->final.quiesce_ms;
        if (p->final.end_stale) {
            snprintf(r->note_buf, sizeof r->note_buf, "first stale entry %s", p->final.msg);
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

/* 1: every pod quiesced, checked and held nothing stale. */
static int verdict_ok(const ps_run *run, const row *t)
{
    if (run->interrupted || t->end_stale || t->quiesced != 1)
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

/* What one fault cost: the hit ratio over the 3 s before it, the lowest
 * one-second hit ratio in the 5 s after, how long until a second was back
 * within 2 points of before, and the stale reads sampled in those 5 s. */
static void print_fault_impact(const ps_run *run, const ps_fault *f)
{
    size_t k = (size_t)f->at_s + 1; /* the second the fault fell in */
    double before = window_hit(run, k > 3 ? k - 3 : 1, k, NULL);
    double lowest = 101;
    double back_s = -1;
    uint64_t stale = 0;
    for (size_t s = k; s < k + 5 && s <= run->nseconds; s++) {
        double h = window_hit(run, s, s + 1, &stale);
        if (h < 0)
            continue;
        if (h < lowest)
            lowest = h;
        if (back_s < 0 && before >= 0 && h >= before - 2.0)
            back_s = (double)s - f->at_s;
    }
    if (before < 0 || lowest > 100) {
        printf("  fault at %6.2f s: not enough seconds around it to measure\n", f->at_s);
        return;
    }
    printf("  fault at %6.2f s: hit ratio %.1f%% before, lowest %.1f%% after (dip %.1f points), ", f->at_s, before,
           lowest, before > lowest ? before - lowest : 0.0);
    if (back_s >= 0)
        printf("within 2 points again by %.1f s after; ", back_s);
    else
        printf("not back within 2 points in 5 s; ");
    printf("%" PRIu64 " stale reads sampled in the 5 s after\n", stale);
}

void ps_print_summary(const ps_run *run)
{
    const ps_config *cfg = run->cfg;
    double secs = run->elapsed_s;
    printf("\n%spodsim summary: %.1f s of workload%s, %d pods, Redis sequence %" PRIu64 "%s\n",
           run->ansi ? "\033[1m" : "", secs, run->interrupted ? " (interrupted)" : "", cfg->pods, run->redis_seq,
           run->ansi ? "\033[0m" : "");
    printf("%-7s %-6s %9s %7s %6s %8s %6s %8s %8s %8s %11s %15s %12s %5s %5s %5s\n", "pod", "role", "ops", "ops/s",
           "hit%", "rem.hits", "errs", "prop p50", "p99", "p999", "stale rd", "end stale/chk", "quiesced",
           "recon", "gaps", "flush");
    for (int i = 0; i < cfg->pods; i++) {
        row r;
        pod_row(run, i, &r);
        print_row(&r, secs);
    }
    row t;
    total_row(run, &t);
    print_row(&t, secs);
    printf("stale rd = sampled reads that returned an older version than Redis held when the read began;\n"
           "end stale/chk = local entries older than Redis after quiescing / entries compared / entries held.\n");
    for (size_t i = 0; i < run->nfaults; i++)
        printf("fault at %6.2f s: %s\n", run->faults[i].at_s, run->faults[i].what);
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
        printf("RESULT: FAIL: %" PRIu64 " stale entries after quiescing%s\n", t.end_stale,
               t.quiesced != 1 ? "; not every pod caught up with Redis" : "");
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
} series;

enum { CW = 900, CH = 260, ML = 64, MR = 16, MT = 30, MB = 34 };

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

/* One chart. With log_us the values are µs on a log10 axis; otherwise the
 * axis is linear from 0 (to fixed_max when > 0). */
static void chart(FILE *f, const ps_run *run, const char *title, const series *ser, int nser, int log_us,
                  double fixed_max, const char *unit)
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
        step = fixed_max / 5;
    } else {
        step = nice_step(hi > 0 ? hi : 1);
        ymax = ceil((hi > 0 ? hi : 1) / step) * step;
        if (ymax < hi * 1.05)
            ymax += step;
    }
    const double pw = CW - ML - MR, ph = CH - MT - MB;
#define X(t) (ML + (t) / xmax * pw)
#define Y(v) (MT + ph - ((log_us ? log10(v) : (v)) - ymin) / (ymax - ymin) * ph)

    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' font-family='sans-serif' style='display:block;margin:8px 0 4px;border:1px solid #eee'>\n",
            CW, CH, CW, CH);
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
        fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle' fill='#555'>%gs</text>", X(t), CH - MB + 16, t);
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#999'/>\n", ML, MT + (int)ph, CW - MR, MT + (int)ph);

    /* Faults under the data so the lines stay readable. */
    for (size_t i = 0; i < run->nfaults; i++) {
        double x = X(run->faults[i].at_s);
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%.1f' stroke='#c62828' stroke-dasharray='4 3' stroke-width='1.5'><title>", x, MT, x, MT + ph);
        html_text(f, run->faults[i].what);
        fprintf(f, "</title></line><text x='%.1f' y='%d' font-size='11' fill='#c62828'>F%zu</text>\n", x + 3, MT + 10, i + 1);
    }

    /* A point sits at the end of the second it measured; gaps break lines. */
    for (int s = 0; s < nser; s++) {
        int open = 0;
        for (size_t i = 0; i < n; i++) {
            double v = ser[s].v[i];
            int ok = v >= 0 && !(log_us && v <= 0);
            if (ok && !open) {
                fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='%.1f' points='", ser[s].color,
                        ser[s].width);
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
    /* Legend, right-aligned so a long title keeps its room. */
    double lx = CW - MR;
    for (int s = 0; s < nser; s++)
        lx -= 30 + 7.0 * (double)strlen(ser[s].name);
    for (int s = 0; s < nser; s++) {
        fprintf(f, "<line x1='%.0f' y1='14' x2='%.0f' y2='14' stroke='%s' stroke-width='%.1f'/>", lx, lx + 18,
                ser[s].color, ser[s].width < 2 ? 2 : ser[s].width);
        fprintf(f, "<text x='%.0f' y='18' font-size='12'>", lx + 22);
        html_text(f, ser[s].name);
        fprintf(f, "</text>\n");
        lx += 30 + 7.0 * (double)strlen(ser[s].name);
    }
    fprintf(f, "</svg>\n");
#undef X
#undef Y
}

static const char *pod_color(int i)
{
    static const char *c[] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
                              "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"};
    return c[i % 10];
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
    ser[ns++] = (series){"all pods", "#222", 2.2, tot};
    for (int p = 0; per_pod && p < pods; p++) {
        double *v = buf + (size_t)(p + 1) * n;
        for (size_t i = 0; i < run->nseconds; i++)
            v[i] = (double)run->seconds[i].pod_ops[p];
        ser[ns++] = (series){names[p], pod_color(p), 1.2, v};
    }
    chart(f, run, "Throughput (ops/s)", ser, ns, 0, 0, "");

    /* Local hit ratio. */
    ns = 0;
    for (size_t i = 0; i < run->nseconds; i++) {
        const ps_second *s = &run->seconds[i];
        uint64_t lk = s->local_hits + s->local_misses;
        tot[i] = lk ? 100.0 * (double)s->local_hits / (double)lk : -1;
    }
    ser[ns++] = (series){"all pods", "#222", 2.2, tot};
    for (int p = 0; per_pod && p < pods; p++) {
        double *v = buf + (size_t)(p + 1) * n;
        for (size_t i = 0; i < run->nseconds; i++)
            v[i] = run->seconds[i].pod_hit[p];
        ser[ns++] = (series){names[p], pod_color(p), 1.2, v};
    }
    chart(f, run, "Local hit ratio (%)", ser, ns, 0, 100, "%");

    /* Propagation delay. */
    double *p50 = buf, *p99 = buf + n;
    for (size_t i = 0; i < run->nseconds; i++) {
        p50[i] = run->seconds[i].p50_us;
        p99[i] = run->seconds[i].p99_us;
    }
    ser[0] = (series){"p50", "#4e79a7", 2.0, p50};
    ser[1] = (series){"p99", "#e15759", 2.0, p99};
    chart(f, run, "Propagation delay: write to applied on another pod (log scale)", ser, 2, 1, 0, "");

    if (run->cfg->write_behind_db) {
        double *depth = buf, *saved = buf + n;
        for (size_t i = 0; i < run->nseconds; i++) {
            depth[i] = (double)run->seconds[i].wb_pending;
            saved[i] = (double)run->seconds[i].wb_saved;
        }
        ser[0] = (series){"queue depth (writes not yet saved)", "#e15759", 2.0, depth};
        ser[1] = (series){"writes saved per second", "#59a14f", 2.0, saved};
        chart(f, run, "Write-behind: queue depth and save rate", ser, 2, 0, 0, "");
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
        fprintf(f, "<h2>Faults</h2>\n<ol>\n");
        for (size_t i = 0; i < run->nfaults; i++) {
            fprintf(f, "<li>F%zu at %.2f s: ", i + 1, run->faults[i].at_s);
            html_text(f, run->faults[i].what);
            fprintf(f, "</li>\n");
        }
        fprintf(f, "</ol>\n");
    }

    fprintf(f, "<h2>Summary</h2>\n<table><tr><th>pod</th><th>role</th><th>ops</th><th>ops/s</th><th>local hit %%</th>"
               "<th>remote hits</th><th>errors</th><th>events applied</th><th>prop. p50</th><th>p99</th>"
               "<th>p99.9</th><th>stale reads / verified</th><th>end: stale / checked / held</th>"
               "<th>quiesced</th><th>reconnects</th><th>gaps</th><th>flushes</th><th>replayed</th><th>note</th></tr>\n");
    for (int i = 0; i < cfg->pods; i++) {
        row r;
        pod_row(run, i, &r);
        html_row(f, &r, run->elapsed_s, 0);
    }
    html_row(f, &t, run->elapsed_s, 1);
    fprintf(f, "</table>\n<p class='meta'>Propagation delay: from the writer's clock when it wrote the value to "
               "the moment another pod applied the set event (both clocks are this machine's). "
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
