/*
 * runlog_internal.h — the run store's private structures and the helpers
 * shared by runlog.c (open/close, runs, files), runlog_schema.c (schema and
 * migration), runlog_metrics.c (buffered metric rows) and runlog_query.c
 * (ad-hoc SQL).
 */
#ifndef DDPM_RUNLOG_INTERNAL_H
#define DDPM_RUNLOG_INTERNAL_H

#include "ddpm/runlog.h"

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define MAX_NAME 255          /* bytes of a metric name or tag key */

typedef struct pending_row {
   int64_t run_id, step;
   double value, wall_time;
   int name;                  /* index into rl->names */
} pending_row;

typedef struct name_entry {
   char *name;
   int64_t id;                /* 0 = not yet known */
   int fresh;                 /* id learnt in the open transaction */
} name_entry;

struct ddpm_runlog {
   sqlite3 *db;
   char *path;
   char host[256];
   int readonly;
   pending_row *rows;
   size_t nrows, caprows;
   name_entry *names;
   int nnames, capnames;
   int64_t *known;            /* run ids seen to exist (for log_metric) */
   int nknown, capknown;
   double last_flush;         /* monotonic seconds */
   sqlite3_stmt *ins_metric, *ins_latest, *ins_name, *sel_name, *heartbeat, *nonfinite;
};

/* runlog.c */
double ddpm_runlog_wall_now(void);
double ddpm_runlog_mono_now(void);
int ddpm_runlog_file_error(int code);   /* SQLITE_FULL, IOERR, READONLY, BUSY...: the file's fault */
int ddpm_runlog_sql_error(ddpm_runlog *rl, const char *what);
int ddpm_runlog_exec_plain(ddpm_runlog *rl, const char *what, const char *sql);
void ddpm_runlog_rollback(ddpm_runlog *rl);
int ddpm_runlog_pragma_int(ddpm_runlog *rl, const char *what, const char *sql, int64_t *out);
int ddpm_runlog_check_run(ddpm_runlog *rl, const char *what, int64_t run_id);
int ddpm_runlog_check_name(const char *what, const char *field, const char *s);

/* runlog_schema.c */
int ddpm_runlog_migrate(ddpm_runlog *rl);

#endif
