/*
 * runlog_query.c — ddpm_runlog_query: one caller-supplied SQL statement with
 * bound parameters, its rows handed to a callback, interruptible.
 */
#include "runlog_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_progress(void *ud)
{
   (void)ud;
   return ddpm_interrupted();
}

static int bind_param(ddpm_runlog *rl, sqlite3_stmt *st, const ddpm_runlog_param *p,
                      unsigned char *bound, int count)
{
   int idx = p->index;
   if (p->name) {
      idx = 0;
      if (p->name[0] && strchr(":$@?", p->name[0])) {
         idx = sqlite3_bind_parameter_index(st, p->name);
      } else {
         char buf[MAX_NAME + 2];
         for (const char *pre = ":@$"; *pre && idx == 0; pre++) {
            snprintf(buf, sizeof buf, "%c%s", *pre, p->name);
            idx = sqlite3_bind_parameter_index(st, buf);
         }
      }
      if (idx == 0) return ddpm_seterr(DDPM_EINVAL, "query: no parameter '%s' in the SQL", p->name);
   } else if (idx < 1 || idx > count) {
      return ddpm_seterr(DDPM_EINVAL, "query: parameter ?%d is out of range (the SQL has %d)",
                         idx, count);
   }
   const ddpm_runlog_value *v = &p->value;
   int rc;
   if ((v->type == DDPM_RUNLOG_TEXT || v->type == DDPM_RUNLOG_BLOB) &&
       (v->len > INT_MAX || (!v->s && v->len)))
      return ddpm_seterr(DDPM_EINVAL, "query: parameter %d is too long or has no bytes", idx);
   switch (v->type) {
   case DDPM_RUNLOG_NULL: rc = sqlite3_bind_null(st, idx); break;
   case DDPM_RUNLOG_INT:  rc = sqlite3_bind_int64(st, idx, v->i); break;
   case DDPM_RUNLOG_REAL: rc = sqlite3_bind_double(st, idx, v->d); break;
   case DDPM_RUNLOG_TEXT: rc = sqlite3_bind_text(st, idx, v->s ? v->s : "", (int)v->len, SQLITE_TRANSIENT); break;
   case DDPM_RUNLOG_BLOB: rc = sqlite3_bind_blob(st, idx, v->s ? v->s : "", (int)v->len, SQLITE_TRANSIENT); break;
   default: return ddpm_seterr(DDPM_EINVAL, "query: parameter %d has unknown type %d", idx, v->type);
   }
   if (rc != SQLITE_OK) return ddpm_runlog_sql_error(rl, "query");
   bound[idx] = 1;
   return DDPM_OK;
}

/* Prepares exactly one statement from sql (trailing ';', blanks and comments
   are fine) and binds every parameter. */
static int prepare_query(ddpm_runlog *rl, const char *sql, const ddpm_runlog_param *params,
                         int nparams, sqlite3_stmt **out)
{
   sqlite3_stmt *st = NULL, *extra = NULL;
   const char *tail = sql;
   *out = NULL;
   if (sqlite3_prepare_v2(rl->db, sql, -1, &st, &tail) != SQLITE_OK) {
      /* a reader's runs is a TEMP view (runlog.c): say why it cannot change */
      if (rl->readonly && strstr(sqlite3_errmsg(rl->db), "cannot modify runs because it is a view"))
         return ddpm_seterr(DDPM_EINVAL, "query: the run store %s is open read-only and this "
                            "statement would write to it: \"%.60s\"", rl->path, sql);
      return ddpm_runlog_sql_error(rl, "query");
   }
   if (!st) return ddpm_seterr(DDPM_EINVAL, "query: no SQL statement in \"%.60s\"", sql);
   while (tail && *tail) {
      const char *next = NULL;
      int rc = sqlite3_prepare_v2(rl->db, tail, -1, &extra, &next);
      sqlite3_finalize(extra);
      if (rc != SQLITE_OK || extra || next == tail) {
         sqlite3_finalize(st);
         return ddpm_seterr(DDPM_EINVAL, "query: one SQL statement at a time, found more: "
                            "\"%.60s\"", tail);
      }
      tail = next;
   }
   if (rl->readonly && !sqlite3_stmt_readonly(st)) {
      sqlite3_finalize(st);
      return ddpm_seterr(DDPM_EINVAL, "query: the run store %s is open read-only and this "
                         "statement would write to it: \"%.60s\"", rl->path, sql);
   }
   int count = sqlite3_bind_parameter_count(st), rc = DDPM_OK;
   unsigned char *bound = calloc((size_t)count + 1, 1);
   if (!bound) rc = ddpm_seterr(DDPM_ENOMEM, "query: out of memory");
   for (int i = 0; i < nparams && rc == DDPM_OK; i++) rc = bind_param(rl, st, &params[i], bound, count);
   for (int i = 1; i <= count && rc == DDPM_OK; i++) {
      if (bound[i]) continue;
      const char *name = sqlite3_bind_parameter_name(st, i);
      rc = name ? ddpm_seterr(DDPM_EINVAL, "query: parameter %s has no value", name)
                : ddpm_seterr(DDPM_EINVAL, "query: parameter ?%d has no value", i);
   }
   free(bound);
   if (rc != DDPM_OK) { sqlite3_finalize(st); return rc; }
   *out = st;
   return DDPM_OK;
}

int ddpm_runlog_query(ddpm_runlog *rl, const char *sql, const ddpm_runlog_param *params,
                      int nparams, ddpm_runlog_row_fn fn, void *ud)
{
   if (!rl || !sql) return ddpm_seterr(DDPM_EINVAL, "query: NULL argument");
   if (nparams < 0 || (nparams > 0 && !params))
      return ddpm_seterr(DDPM_EINVAL, "query: bad parameter list");
   int rc = ddpm_runlog_flush(rl);
   if (rc != DDPM_OK) return rc;
   sqlite3_stmt *st;
   if ((rc = prepare_query(rl, sql, params, nparams, &st)) != DDPM_OK) return rc;
   int ncol = sqlite3_column_count(st);
   const char **names = calloc((size_t)ncol + 1, sizeof *names);
   ddpm_runlog_value *vals = calloc((size_t)ncol + 1, sizeof *vals);
   if (!names || !vals) {
      free(names); free(vals); sqlite3_finalize(st);
      return ddpm_seterr(DDPM_ENOMEM, "query: out of memory");
   }
   for (int c = 0; c < ncol; c++) names[c] = sqlite3_column_name(st, c);
   if (fn && ncol > 0 && (rc = fn(ud, ncol, names, NULL)) != 0) {
      sqlite3_finalize(st);
      free(names);
      free(vals);
      return rc;
   }
   sqlite3_progress_handler(rl->db, 10000, on_progress, NULL);
   int src = SQLITE_DONE;
   while ((src = sqlite3_step(st)) == SQLITE_ROW) {
      for (int c = 0; c < ncol; c++) {
         ddpm_runlog_value *v = &vals[c];
         memset(v, 0, sizeof *v);
         names[c] = sqlite3_column_name(st, c);
         switch (sqlite3_column_type(st, c)) {
         case SQLITE_INTEGER: v->type = DDPM_RUNLOG_INT; v->i = sqlite3_column_int64(st, c); break;
         case SQLITE_FLOAT:   v->type = DDPM_RUNLOG_REAL; v->d = sqlite3_column_double(st, c); break;
         case SQLITE_TEXT:
            v->type = DDPM_RUNLOG_TEXT;
            v->s = (const char *)sqlite3_column_text(st, c);
            v->len = (size_t)sqlite3_column_bytes(st, c);
            break;
         case SQLITE_BLOB:
            v->type = DDPM_RUNLOG_BLOB;
            v->s = sqlite3_column_blob(st, c);
            v->len = (size_t)sqlite3_column_bytes(st, c);
            break;
         default: v->type = DDPM_RUNLOG_NULL;
         }
      }
      if (fn && (rc = fn(ud, ncol, names, vals)) != 0) break;
   }
   if (rc == DDPM_OK && src != SQLITE_DONE)
      rc = src == SQLITE_INTERRUPT ? ddpm_seterr(DDPM_EINTR, "query: interrupted")
                                   : ddpm_runlog_sql_error(rl, "query");
   sqlite3_finalize(st);
   sqlite3_progress_handler(rl->db, 0, NULL, NULL);
   free(names);
   free(vals);
   if (!sqlite3_get_autocommit(rl->db)) {
      /* Flushes need autocommit mode (BEGIN IMMEDIATE); one query is one unit. */
      ddpm_runlog_rollback(rl);
      if (rc == DDPM_OK)
         rc = ddpm_seterr(DDPM_EINVAL, "query: a statement may not leave a transaction open "
                          "(rolled back)");
   }
   return rc;
}
