/*
 * runlog_metrics.c — the run store's metric rows: buffered in memory and
 * written in one BEGIN IMMEDIATE transaction per batch (see runlog.c for
 * why), with the metric-name ids and latest_metrics kept alongside.
 */
#include "runlog_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_index(ddpm_runlog *rl, const char *name)
{
   for (int i = rl->nnames - 1; i >= 0; i--)
      if (strcmp(rl->names[i].name, name) == 0) return i;
   if (rl->nnames == rl->capnames) {
      int cap = rl->capnames ? 2 * rl->capnames : 16;
      name_entry *p = realloc(rl->names, (size_t)cap * sizeof *p);
      if (!p) return -1;
      rl->names = p;
      rl->capnames = cap;
   }
   char *copy = strdup(name);
   if (!copy) return -1;
   rl->names[rl->nnames] = (name_entry){copy, 0, 0};
   return rl->nnames++;
}

/* Run ids known to exist, so log_metric asks the database once per run. */
static int known_run(ddpm_runlog *rl, int64_t run_id)
{
   for (int i = 0; i < rl->nknown; i++) if (rl->known[i] == run_id) return DDPM_OK;
   int rc = ddpm_runlog_check_run(rl, "log_metric", run_id);
   if (rc != DDPM_OK) return rc;
   if (rl->nknown == rl->capknown) {
      int cap = rl->capknown ? 2 * rl->capknown : 8;
      int64_t *p = realloc(rl->known, (size_t)cap * sizeof *p);
      if (!p) return ddpm_seterr(DDPM_ENOMEM, "log_metric: out of memory");
      rl->known = p;
      rl->capknown = cap;
   }
   rl->known[rl->nknown++] = run_id;
   return DDPM_OK;
}

int ddpm_runlog_log_metric(ddpm_runlog *rl, int64_t run_id, const char *name, int64_t step,
                           double value)
{
   const char *what = "log_metric";
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "%s: NULL log", what);
   int rc = ddpm_runlog_check_name(what, "metric name", name);
   if (rc == DDPM_OK) rc = known_run(rl, run_id);
   if (rc != DDPM_OK) return rc;
   if (rl->nrows >= DDPM_RUNLOG_MAX_PENDING && (rc = ddpm_runlog_flush(rl)) != DDPM_OK) return rc;
   int k = name_index(rl, name);
   if (k < 0) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", what);
   if (rl->nrows == rl->caprows) {
      size_t cap = rl->caprows ? 2 * rl->caprows : 2 * DDPM_RUNLOG_FLUSH_ROWS;
      pending_row *p = realloc(rl->rows, cap * sizeof *p);
      if (!p) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", what);
      rl->rows = p;
      rl->caprows = cap;
   }
   rl->rows[rl->nrows++] = (pending_row){run_id, step, value, ddpm_runlog_wall_now(), k};
   if (rl->nrows >= DDPM_RUNLOG_FLUSH_ROWS ||
       ddpm_runlog_mono_now() - rl->last_flush >= DDPM_RUNLOG_FLUSH_SECONDS)
      return ddpm_runlog_flush(rl);
   return DDPM_OK;
}

/* Steps a cached statement once and resets it; SQLITE_DONE or SQLITE_ROW. */
static int step_reset(sqlite3_stmt *st)
{
   int rc = sqlite3_step(st);
   sqlite3_reset(st);
   return rc;
}

static int metric_id(ddpm_runlog *rl, name_entry *n)
{
   if (n->id) return SQLITE_DONE;
   sqlite3_bind_text(rl->ins_name, 1, n->name, -1, SQLITE_STATIC);
   int rc = step_reset(rl->ins_name);
   if (rc != SQLITE_DONE) return rc;
   sqlite3_bind_text(rl->sel_name, 1, n->name, -1, SQLITE_STATIC);
   rc = sqlite3_step(rl->sel_name);
   if (rc == SQLITE_ROW) {
      n->id = sqlite3_column_int64(rl->sel_name, 0);
      n->fresh = 1;
      rc = SQLITE_DONE;
   }
   sqlite3_reset(rl->sel_name);
   return rc;
}

static int write_row(ddpm_runlog *rl, const pending_row *r)
{
   name_entry *n = &rl->names[r->name];
   int rc = metric_id(rl, n);
   if (rc != SQLITE_DONE) return rc;
   sqlite3_stmt *two[2] = {rl->ins_metric, rl->ins_latest};
   for (int k = 0; k < 2; k++) {
      sqlite3_stmt *st = two[k];
      sqlite3_bind_int64(st, 1, r->run_id);
      sqlite3_bind_int64(st, 2, n->id);
      sqlite3_bind_int64(st, 3, r->step);
      if (isnan(r->value)) sqlite3_bind_null(st, 4);
      else sqlite3_bind_double(st, 4, r->value);
      sqlite3_bind_double(st, 5, r->wall_time);
      if ((rc = step_reset(st)) != SQLITE_DONE) return rc;
   }
   if (!isfinite(r->value)) {
      sqlite3_bind_int64(rl->nonfinite, 1, r->run_id);
      sqlite3_bind_int64(rl->nonfinite, 2, r->step);
      rc = step_reset(rl->nonfinite);
   }
   return rc;
}

int ddpm_runlog_flush(ddpm_runlog *rl)
{
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "flush: NULL log");
   rl->last_flush = ddpm_runlog_mono_now();
   if (rl->nrows == 0) return DDPM_OK;
   int rc = sqlite3_exec(rl->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
   double now = ddpm_runlog_wall_now();
   for (size_t i = 0; i < rl->nrows && rc == SQLITE_OK; i++) {
      const pending_row *r = &rl->rows[i];
      rc = write_row(rl, r);
      if (rc == SQLITE_DONE && (i == 0 || rl->rows[i - 1].run_id != r->run_id)) {
         sqlite3_bind_int64(rl->heartbeat, 1, r->run_id);
         sqlite3_bind_double(rl->heartbeat, 2, now);
         rc = step_reset(rl->heartbeat);
      }
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
   }
   if (rc == SQLITE_OK) rc = sqlite3_exec(rl->db, "COMMIT", NULL, NULL, NULL);
   if (rc == SQLITE_OK) {
      for (int i = 0; i < rl->nnames; i++) rl->names[i].fresh = 0;
      rl->nrows = 0;
      return DDPM_OK;
   }
   char msg[512];
   snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(rl->db));
   int code = sqlite3_errcode(rl->db) & 0xff;
   ddpm_runlog_rollback(rl);
   /* Names interned in the rolled-back transaction are gone again. */
   for (int i = 0; i < rl->nnames; i++)
      if (rl->names[i].fresh) rl->names[i].id = 0, rl->names[i].fresh = 0;
   size_t n = rl->nrows;
   const char *file = ddpm_runlog_file_error(code) ? rl->path : NULL;
   if (code == SQLITE_CONSTRAINT) {
      /* A run deleted meanwhile, say: no retry can succeed. */
      rl->nrows = 0;
      rl->nknown = 0;
      return ddpm_seterr(DDPM_ESQL, "flush: %s (%zu metric rows dropped)", msg, n);
   }
   return ddpm_seterr(DDPM_ESQL, "flush: %s%s%s (%zu metric rows kept for the next flush)",
                      file ? file : "", file ? ": " : "", msg, n);
}
