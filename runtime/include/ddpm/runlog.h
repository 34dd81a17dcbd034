/*
 * ddpm/runlog.h — the run store: every training run, its script, config, metrics,
 * checkpoints and artifacts, kept in one SQLite file so history is a SQL query
 * away (`sqlite3 -box runs.db`, scripts/queries.sql).
 *
 * Schema (user_version 1; see runlog.c for the full DDL):
 *   runs(run_id, uuid, name, experiment, parent_run_id, status, start_time,
 *        end_time, heartbeat, script_path, script_text, script_sha256,
 *        config_json, config_sha256, seed, argv_json, git_commit, git_dirty,
 *        host, pid, world_size, version, env_json, error_text)
 *   run_tags(run_id, key, value)            metric_names(name_id, name)
 *   metrics(run_id, name_id, step, value, wall_time)  WITHOUT ROWID, one row
 *        per (run, name, step): logging a step again replaces it
 *   metrics_v(run_id, key, step, value, wall_time)    the readable view
 *   latest_metrics(run_id, name_id, step, value, wall_time)  highest step
 *   checkpoints(ckpt_id, run_id, step, path, sha256, bytes, has_ema, created)
 *   artifacts(artifact_id, run_id, step, kind, path, sha256, meta_json, created)
 *   sources(sha256, text), run_sources(run_id, path, sha256)
 * Times are unix seconds (REAL). status is running, finished, failed,
 * interrupted or crashed. A NaN metric is stored as NULL (+-Inf as is) and
 * the run gets the tag nonfinite_step (the first such step).
 *
 * One ddpm_runlog is one SQLite connection, for one thread. Several processes
 * may write the same file at once (WAL, busy_timeout 5 s, BEGIN IMMEDIATE);
 * the file must be on a local disk. Not here: uploading, a server, plots.
 *
 * Errors: every fallible call returns DDPM_OK or a DDPM_* code with a message
 * in ddpm_errmsg(); SQLite failures are DDPM_ESQL with SQLite's own text.
 */
#ifndef DDPM_RUNLOG_H
#define DDPM_RUNLOG_H

#include <stddef.h>
#include <stdint.h>

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DDPM_RUNLOG_SCHEMA_VERSION 1
/* PRAGMA application_id of a run store: "DDPM". */
#define DDPM_RUNLOG_APPLICATION_ID 0x4444504D
/* Metrics are flushed once this many rows are buffered, or ... */
#define DDPM_RUNLOG_FLUSH_ROWS 1000
/* ... this many seconds after the last flush, at the next log_metric. */
#define DDPM_RUNLOG_FLUSH_SECONDS 2.0
/* While flushes keep failing, at most this many rows wait in memory. */
#define DDPM_RUNLOG_MAX_PENDING (1 << 20)

typedef struct ddpm_runlog ddpm_runlog;

/* What a run is. Zero-initialise, then fill what you know; NULL strings are
   stored as NULL unless said otherwise. */
typedef struct ddpm_run_info {
   const char *name;           /* label, e.g. "cosine-Lsimple" */
   const char *experiment;     /* NULL = "default" */
   const char *script_path;
   const char *script_text;    /* exact bytes that ran; NULL = "" (REPL) */
   const char *config_json;    /* canonical JSON object; NULL = "{}" */
   int64_t     seed;
   const char *argv_json;      /* JSON array, or NULL */
   const char *git_commit;
   int         git_dirty;      /* 1 dirty, 0 clean, anything else unknown */
   int64_t     parent_run_id;  /* 0 = none */
   int         world_size;     /* 0 = 1 */
   const char *version;        /* ddpmlua version + build flags */
   const char *env_json;       /* library versions, threads, CPU; or NULL */
} ddpm_run_info;

/* Opens (creating if needed) the run store at path (":memory:" works).
   Creates or migrates the schema in one BEGIN IMMEDIATE transaction gated by
   PRAGMA user_version, so two processes starting together cannot both do it;
   refuses a file of a newer schema version, another application's database
   and a corrupt file, with a message naming the path. Sets WAL,
   synchronous=NORMAL, foreign_keys=ON, busy_timeout 5000 ms. Marks as
   'crashed' the 'running' runs of this host whose process is gone (its pid
   no longer exists, or belongs to a process started at another time than
   the env_json's proc_start). NULL + message on failure. */
ddpm_runlog *ddpm_runlog_open(const char *path);
/* Opens an existing run store for reading only: never creates, migrates,
   optimises or checkpoints it, and works on a read-only file in a
   read-only folder (there, with no -wal file beside it, the file is read as
   immutable, which needs no -shm file). In a writable folder a WAL
   database gets SQLite's usual empty -wal/-shm files beside it. Writing
   calls fail, and ddpm_runlog_query refuses statements that would write.
   Runs that a writer would mark 'crashed' (see above) read as 'crashed'
   through a TEMP view that shadows runs. NULL + message naming the path
   when the file is missing, not a file, or not a run store. */
ddpm_runlog *ddpm_runlog_open_readonly(const char *path);
/* 1 when rl was opened read-only (or SQLite opened the file read-only). */
int  ddpm_runlog_readonly(const ddpm_runlog *rl);
/* The start time of process pid (0 = this process) in clock ticks since
   boot, from /proc/PID/stat; -1 when unknown. Stored with a run so that a
   reused pid is not taken for the run's process. */
int64_t ddpm_proc_start_time(int64_t pid);
/* Flushes buffered metrics and closes. NULL is fine. The log is freed even
   when the final flush fails (the rows are then lost and the error returned). */
int  ddpm_runlog_close(ddpm_runlog *rl);
const char *ddpm_runlog_path(const ddpm_runlog *rl);

/* Inserts a 'running' run: uuid, sha256 of script and config, host, pid and
   start time are filled in here. config_json must be a JSON object and
   argv_json/env_json valid JSON; parent_run_id must exist. */
int  ddpm_runlog_begin_run(ddpm_runlog *rl, const ddpm_run_info *info, int64_t *run_id);

/* Buffers one metric value (NaN allowed, stored as NULL) with the current
   wall time; flushes when DDPM_RUNLOG_FLUSH_ROWS rows wait or
   DDPM_RUNLOG_FLUSH_SECONDS passed. The run must exist. When that flush
   fails the error is returned but the value stays buffered (rows are kept
   for the next try, except after a constraint error, which no retry can fix:
   those rows are dropped and the message says how many). */
int  ddpm_runlog_log_metric(ddpm_runlog *rl, int64_t run_id, const char *name,
                            int64_t step, double value);
/* Writes the buffered metrics in one BEGIN IMMEDIATE transaction: upserts
   on (run, name, step), advances latest_metrics, sets the runs' heartbeat. */
int  ddpm_runlog_flush(ddpm_runlog *rl);
/* Rows buffered and not yet written. */
size_t ddpm_runlog_pending(const ddpm_runlog *rl);

/* Records a file (or directory: sha256 NULL) made by the run. kind is e.g.
   "sample_grid", "progression", "samples", "fd_stats", "stdout"; step may be
   negative for "none" (stored NULL); meta_json is NULL or valid JSON. The
   path is stored absolute. Flushes metrics first. */
int  ddpm_runlog_log_artifact(ddpm_runlog *rl, int64_t run_id, int64_t step,
                              const char *kind, const char *path, const char *meta_json);
/* Records a checkpoint file with its sha256 and size; logging the same step
   again replaces the row. Flushes metrics first. */
int  ddpm_runlog_log_checkpoint(ddpm_runlog *rl, int64_t run_id, int64_t step,
                                const char *path);
/* Sets (replaces) a tag; value may be NULL. */
int  ddpm_runlog_set_tag(ddpm_runlog *rl, int64_t run_id, const char *key, const char *value);
/* Stores a source file (content-addressed by sha256) used by the run. */
int  ddpm_runlog_add_source(ddpm_runlog *rl, int64_t run_id, const char *path,
                            const char *text);
/* Flushes, then sets status ("finished", "failed" or "interrupted"), end
   time and error_text (may be NULL). The run must be 'running' (or
   'crashed', in case another process judged it dead too soon). */
int  ddpm_runlog_end_run(ddpm_runlog *rl, int64_t run_id, const char *status,
                         const char *error_text);

/* ------------------------------------------------------------ queries */

enum { DDPM_RUNLOG_NULL, DDPM_RUNLOG_INT, DDPM_RUNLOG_REAL, DDPM_RUNLOG_TEXT,
       DDPM_RUNLOG_BLOB };

/* One SQL value. s/len hold TEXT and BLOB bytes (TEXT is NUL-terminated). */
typedef struct ddpm_runlog_value {
   int type;                  /* DDPM_RUNLOG_* */
   int64_t i;
   double d;
   const char *s;
   size_t len;
} ddpm_runlog_value;

/* A parameter to bind: by name (":run", "$run", "@run", or "run", which
   tries those three) or, when name is NULL, by 1-based index. */
typedef struct ddpm_runlog_param {
   const char *name;
   int index;
   ddpm_runlog_value value;
} ddpm_runlog_param;

/* Called first with vals == NULL (the column names, so an empty result
   still has them; skipped when the statement returns no columns), then once
   per result row. names[ncol] and vals[ncol] are valid only during the call.
   Return 0 to go on; anything else stops the query, and ddpm_runlog_query
   returns that value (leave the message yourself). */
typedef int (*ddpm_runlog_row_fn)(void *ud, int ncol, const char *const *names,
                                  const ddpm_runlog_value *vals);

/* Runs one SQL statement (reads or writes) after flushing buffered metrics.
   Every parameter of the statement must be bound by params; fn may be NULL.
   A malformed statement, a parameter the SQL lacks, more than one statement,
   or a statement that leaves a transaction open are DDPM_ESQL / DDPM_EINVAL
   errors with SQLite's message. Ctrl-C (ddpm_interrupt_set) stops a long
   query with DDPM_EINTR. */
int  ddpm_runlog_query(ddpm_runlog *rl, const char *sql,
                       const ddpm_runlog_param *params, int nparams,
                       ddpm_runlog_row_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_RUNLOG_H */
