/* podsim: a simulator that runs several synccache pods as separate processes
 * against one Redis, injects faults, measures how fast writes propagate and
 * whether any pod serves stale data, and writes a self-contained HTML report.
 *
 * This header is what the three parts share: the options (podsim.c parses
 * them before forking), the record a pod sends its parent once a second and
 * at the end (podsim_pod.c writes it, podsim.c reads it), the delay
 * histogram, and the run summary the report writer draws (podsim_report.c).
 */
#ifndef PODSIM_H
#define PODSIM_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#define PS_MAX_PODS 64
#define PS_MAX_FAULTS 256

typedef struct ps_config {
    int pods;
    int readers;
    unsigned keys;
    double zipf;
    double write_ratio;
    size_t value_min, value_max;
    unsigned duration_s;
    sc_local_policy policy;
    sc_disconnect_policy disconnect;
    int tracking;                /* redis_tracking */
    size_t local_size;
    unsigned rate;             /* ops/s per pod; 0 = unlimited */
    const char *report_path;
    const char *log_path;      /* library log lines of every pod; NULL = none */
    uint64_t seed;
    int quiet;
    int prefill;               /* write every key before the workload */
    unsigned kill_sub_every_s; /* 0 = off */
    int restart_at_s;          /* -1 = off */
    int pause_at_s;            /* -1 = off */
    unsigned pause_ms;
    int outage_at_s;           /* -1 = off: Redis stopped (data saved) ... */
    unsigned outage_ms;        /* ... and started again this much later */
    double verify_ratio;       /* share of reads checked against Redis */
    unsigned quiesce_s;        /* bound on the end-of-run catch-up */
    char redis_host[256];
    int redis_port;
    int private_redis;         /* 1: podsim started the server itself */
    char ns[96];
    int metrics_port;          /* --metrics-port; 0 = off; pod i serves port + i */
    int metrics_fd[PS_MAX_PODS]; /* their listening sockets (bound before the fork), -1 = none */
    const char *write_behind_db; /* --write-behind: SQLite file every pod saves
                                    into; writers use sc_set_behind. NULL: off */
    unsigned partitions;       /* --partitions: the option partitions; 1 = none */
} ps_config;

/* Propagation delays in microseconds, log-linear buckets: exact below 16 µs,
 * then 8 buckets per power of two (about 12% wide), up to ~2^36 µs. */
#define PS_HIST_LINEAR 16
#define PS_HIST_SUB 8
#define PS_HIST_BUCKETS (PS_HIST_LINEAR + 32 * PS_HIST_SUB)

unsigned ps_hist_bucket(uint64_t us);
/* The µs value a bucket stands for (its midpoint). */
double ps_hist_value(unsigned bucket);
/* The q-quantile (0..1) of a histogram in µs; 0 when it is empty. */
double ps_hist_quantile(const uint64_t *hist, double q);

typedef enum ps_record_kind {
    PS_REC_READY = 1, /* the pod opened its cache */
    PS_REC_SECOND,    /* one second of the run */
    PS_REC_PREFILLED, /* the prefill is done */
    PS_REC_STOPPED,   /* the workload ran its duration (counters up to now) */
    PS_REC_FINAL,     /* quiesce and end check done; the pod exits */
    PS_REC_FAILED     /* the pod could not open its cache; msg says why */
} ps_record_kind;

/* Sent over a pipe in one write (smaller than PIPE_BUF, so never torn).
 * Counters named *_delta cover the last interval; the others are the
 * library's cumulative sc_stats values. */
typedef struct ps_record {
    uint32_t kind;
    uint32_t pod;
    uint32_t second;           /* PS_REC_SECOND: 1-based second of the run */
    uint32_t prefilled;        /* PS_REC_PREFILLED: keys written */
    uint64_t ops_delta, gets_delta, sets_delta, errors_delta;
    uint64_t local_hits_delta, local_misses_delta, remote_hits_delta;
    uint64_t events_applied_delta;
    uint64_t verified_delta, stale_reads_delta;
    uint64_t synced, reconnects, gaps, flushes, heartbeat_misses, replayed, last_seq;
    uint64_t local_entries;
    uint64_t behind_pending, behind_saved_delta, behind_failures; /* --write-behind */
    /* The sync state sampled every PS_SYNC_SAMPLE_MS during the interval,
     * so an outage shorter than a second shows too. */
    uint32_t sync_samples, unsynced_samples;
    /* PS_REC_FINAL only */
    uint64_t quiesce_ms;
    uint32_t quiesced;         /* 1: caught up with Redis' sequence in time */
    uint32_t end_checked;      /* local entries compared with Redis */
    uint32_t end_stale;        /* of those, older than Redis */
    uint32_t end_unreadable;   /* keys the check could not read */
    uint64_t entries_before_check;
    uint32_t behind_flushed;   /* --write-behind: sc_flush_behind said SC_OK */
    char msg[160];             /* PS_REC_FAILED / FINAL: detail or first stale key */
    uint32_t hist[PS_HIST_BUCKETS];
} ps_record;

#define PS_SYNC_SAMPLE_MS 50

/* Commands the parent writes to a pod's control pipe, one byte each. */
#define PS_CMD_PREFILL 'P' /* write every key once, report PS_REC_PREFILLED */
#define PS_CMD_GO 'G'      /* run the workload for the duration, then report
                              PS_REC_STOPPED */
#define PS_CMD_FINISH 'F'  /* quiesce, check, report PS_REC_FINAL, exit */

/* podsim_metrics.c: --metrics-port. The parent binds 127.0.0.1:port
 * (returns the socket, or -1 with a message in err); pod 1 serves its
 * sc_metrics_text on GET /metrics from a thread until ps_metrics_stop,
 * which must run before sc_close. */
int ps_metrics_listen(int port, char *err, size_t errlen);
int ps_metrics_start(int fd, sc_cache *cache);
void ps_metrics_stop(void);

/* Runs pod `index` in the calling (forked) process; never returns. */
void ps_pod_main(const ps_config *cfg, int index, int ctrl_fd, int report_fd);

/* A blocking hiredis connection with a 1 s timeout for connect and commands,
 * or NULL. Caller frees. */
redisContext *ps_redis_connect(const ps_config *cfg);
/* The namespace whose hash tag holds key: cfg->ns, or "<ns>#<p>" with
 * partitions (docs/protocol.md, "Partitions"). */
void ps_key_ns(const ps_config *cfg, const char *key, char *out, size_t cap);
/* The namespace counter on c: with partitions, the sum of the partitions'
 * (what the pods' sc_stats last_seq reaches once they applied everything).
 * 0, or -1 when Redis could not be asked. */
int ps_read_seq(redisContext *c, const ps_config *cfg, uint64_t *out);

uint64_t ps_now_mono_us(void);
uint64_t ps_now_real_us(void);

/* The default path of an HTML report called `name`: next to the podsim
 * executable (the build folder) when that is writable, else in $TMPDIR or
 * /tmp; never the current directory, which is often the source tree. */
void ps_default_report_path(const char *name, char *buf, size_t len);

/* ---- what the run produced, for the summary and the report ---- */

typedef struct ps_fault {
    double at_s;               /* seconds since the workload started */
    double dur_s;              /* how long the fault itself lasted (Redis
                                  down, paused); 0: instantaneous */
    char what[120];
} ps_fault;

/* One second of the run, all pods together plus each pod's own numbers. */
typedef struct ps_second {
    uint64_t ops, gets, local_hits, local_misses, errors, stale_reads, verified, applied;
    uint64_t pod_ops[PS_MAX_PODS];
    double pod_hit[PS_MAX_PODS]; /* -1: no gets that second */
    double p50_us, p99_us;       /* -1: no delays measured that second */
    uint64_t wb_pending, wb_saved; /* --write-behind: queue depth (highest a pod
                                      saw), writes saved that second */
    double synced_pods;          /* pods synced, averaged over the second's
                                    samples (0..pods); -1: no pod reported */
    int pods_unsynced;           /* pods unsynced at some sample of the second */
    int pods_reported;           /* pods whose record for the second arrived */
    uint32_t pod_unsynced[PS_MAX_PODS]; /* each pod's samples that found it unsynced */
} ps_second;

typedef struct ps_pod_summary {
    int role_reader;
    int alive;                 /* 0 once its pipe closed */
    int exit_status;           /* as from waitpid; -1 unknown */
    uint64_t ops, gets, sets, errors, local_hits, local_misses, remote_hits;
    uint64_t applied, verified, stale_reads;
    uint64_t reconnects, gaps, flushes, heartbeat_misses, replayed, synced, last_seq;
    uint64_t hist[PS_HIST_BUCKETS];
    int final_seen;
    ps_record final;
} ps_pod_summary;

typedef struct ps_run {
    const ps_config *cfg;
    ps_second *seconds;
    size_t nseconds, cap_seconds;
    ps_fault faults[PS_MAX_FAULTS];
    size_t nfaults;
    ps_pod_summary pod[PS_MAX_PODS];
    double elapsed_s;          /* workload seconds that actually ran */
    int interrupted;
    int ansi;                  /* stdout is a terminal: bold headings */
    double prefill_s;          /* how long the prefill took (0: none) */
    uint64_t redis_seq;        /* {ns}:seq at the end (0 unknown) */
    /* --write-behind: the database compared with Redis for every key */
    int wb_checked;
    uint64_t wb_keys, wb_equal, wb_mismatch, wb_redis_missing, wb_saved, wb_failures;
    int wb_flushed;            /* some pod's sc_flush_behind said SC_OK */
    char wb_note[200];         /* the first mismatch */
} ps_run;

/* What one fault cost, from the per-second numbers of all pods: the hit
 * ratio over the 3 s before it, the lowest one-second hit ratio in the 5 s
 * after, when a second was back within 2 points of before, the stale reads
 * sampled in those 5 s, and when every pod was synced for a whole second
 * again. */
typedef struct ps_fault_impact {
    int measured;              /* 0: not enough seconds around the fault */
    double before, lowest;     /* hit ratio, percent */
    double back_s;             /* seconds after the fault began; -1: not within 5 s */
    uint64_t stale;
    double resync_s;           /* start of the first fully synced second after
                                  a pod was seen unsynced, in seconds after
                                  the fault began; 0: no pod seen unsynced;
                                  -1: not every pod synced within 10 s */
    int lost_sync;             /* 1: some pod was seen unsynced after the fault */
    double unsynced_ms;        /* the longest any pod was seen unsynced in
                                  that stretch (samples x PS_SYNC_SAMPLE_MS) */
} ps_fault_impact;
void ps_fault_impact_of(const ps_run *run, const ps_fault *f, ps_fault_impact *out);

/* Prints the end-of-run table to stdout. */
void ps_print_summary(const ps_run *run);
/* Writes the HTML report; returns 0 or -1 (errno set). */
int ps_write_report(const ps_run *run, const char *path);

/* podsim_behind.c: --write-behind (SQLite). */
int ps_wb_available(void);
void *ps_wb_open(const char *path, char *err, size_t errlen); /* a connection, or NULL */
void ps_wb_close(void *db);
sc_status ps_wb_save(const sc_dirty *items, size_t n, void *ud); /* the pods' save_fn */
/* After every pod finished: the database against Redis, key by key. */
void ps_wb_end_check(const ps_config *cfg, ps_run *run);
/* podsim_fetch.c: `--workload fetch` (sc_fetch in front of a SQLite file, a
 * writer updating rows and tagging keys). Parses argv itself. */
int ps_fetch_main(int argc, char **argv);

#endif
