/*
 * runlog.c — the run store over SQLite (see runlog.h for the contract and
 * docs/design.md §3 for why the schema looks so).
 *
 * One connection per ddpm_runlog. Metrics are buffered in memory and written
 * in one BEGIN IMMEDIATE transaction per batch: BEGIN IMMEDIATE takes the
 * write lock up front, so a second process waits in busy_timeout instead of
 * failing on a read-to-write upgrade. Everything else is a single statement
 * in autocommit mode. Nothing here prints, exits or aborts.
 *
 * Deliberately not here: a schema for sweeps, blob storage (files stay on
 * disk, the database keeps path + sha256), network sync.
 *
 * Split by job: runlog_schema.c holds the schema and its migration,
 * runlog_metrics.c the metric buffer and flush, runlog_query.c ad-hoc SQL;
 * runlog_internal.h the structures and helpers they share.
 */
#include "runlog_internal.h"
#include "ddpm.h"
#include "ddpm/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* ------------------------------------------------------------ helpers */

double ddpm_runlog_wall_now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_REALTIME, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ddpm_runlog_mono_now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Errors of the file itself (disk full, I/O, read-only, locked, corrupt)
   name the file, so a message read far from the call says which one. */
int ddpm_runlog_file_error(int code)
{
   code &= 0xff;
   return code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_READONLY ||
          code == SQLITE_CANTOPEN || code == SQLITE_CORRUPT || code == SQLITE_NOTADB ||
          code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_PERM;
}

int ddpm_runlog_sql_error(ddpm_runlog *rl, const char *what)
{
   if (ddpm_runlog_file_error(sqlite3_errcode(rl->db)) && strcmp(what, rl->path) != 0)
      return ddpm_seterr(DDPM_ESQL, "%s: %s: %s", what, rl->path, sqlite3_errmsg(rl->db));
   return ddpm_seterr(DDPM_ESQL, "%s: %s", what, sqlite3_errmsg(rl->db));
}

/* Prepares sql and binds the variadic arguments by types: 'i' int64_t,
   'd' double, 't' const char * (NULL binds NULL). */
static int prep(ddpm_runlog *rl, const char *what, sqlite3_stmt **st, const char *sql,
                const char *types, va_list ap)
{
   if (sqlite3_prepare_v2(rl->db, sql, -1, st, NULL) != SQLITE_OK)
      return ddpm_runlog_sql_error(rl, what);
   for (int k = 0; types[k]; k++) {
      int rc;
      if (types[k] == 'i') rc = sqlite3_bind_int64(*st, k + 1, va_arg(ap, int64_t));
      else if (types[k] == 'd') rc = sqlite3_bind_double(*st, k + 1, va_arg(ap, double));
      else {
         const char *s = va_arg(ap, const char *);
         rc = s ? sqlite3_bind_text(*st, k + 1, s, -1, SQLITE_STATIC) : sqlite3_bind_null(*st, k + 1);
      }
      if (rc != SQLITE_OK) {
         rc = ddpm_runlog_sql_error(rl, what);
         sqlite3_finalize(*st);
         *st = NULL;
         return rc;
      }
   }
   return DDPM_OK;
}

/* Runs one statement to completion; *changes (may be NULL) gets the rows changed. */
static int sql_exec(ddpm_runlog *rl, const char *what, int *changes, const char *sql,
                    const char *types, ...)
{
   sqlite3_stmt *st;
   va_list ap;
   va_start(ap, types);
   int rc = prep(rl, what, &st, sql, types, ap);
   va_end(ap);
   if (rc != DDPM_OK) return rc;
   while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
   rc = rc == SQLITE_DONE ? DDPM_OK : ddpm_runlog_sql_error(rl, what);
   if (changes) *changes = sqlite3_changes(rl->db);
   sqlite3_finalize(st);
   return rc;
}

/* First column of the first row as text into buf (found = 0 when there is no
   row or the value is NULL). */
static int sql_text(ddpm_runlog *rl, const char *what, char *buf, size_t len, int *found,
                    const char *sql, const char *types, ...)
{
   sqlite3_stmt *st;
   va_list ap;
   va_start(ap, types);
   int rc = prep(rl, what, &st, sql, types, ap);
   va_end(ap);
   if (rc != DDPM_OK) return rc;
   *found = 0;
   rc = sqlite3_step(st);
   if (rc == SQLITE_ROW) {
      if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
         snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
         *found = 1;
      }
      rc = DDPM_OK;
   } else {
      rc = rc == SQLITE_DONE ? DDPM_OK : ddpm_runlog_sql_error(rl, what);
   }
   sqlite3_finalize(st);
   return rc;
}

int ddpm_runlog_exec_plain(ddpm_runlog *rl, const char *what, const char *sql)
{
   char *err = NULL;
   if (sqlite3_exec(rl->db, sql, NULL, NULL, &err) == SQLITE_OK) return DDPM_OK;
   int rc = ddpm_seterr(DDPM_ESQL, "%s: %s", what, err ? err : sqlite3_errmsg(rl->db));
   sqlite3_free(err);
   return rc;
}

void ddpm_runlog_rollback(ddpm_runlog *rl)
{
   if (!sqlite3_get_autocommit(rl->db)) sqlite3_exec(rl->db, "ROLLBACK", NULL, NULL, NULL);
}

int ddpm_runlog_pragma_int(ddpm_runlog *rl, const char *what, const char *sql, int64_t *out)
{
   char buf[32];
   int found;
   int rc = sql_text(rl, what, buf, sizeof buf, &found, sql, "");
   *out = found ? strtoll(buf, NULL, 10) : 0;
   return rc;
}

/* JSON check through SQLite's own parser: ok when text is valid JSON (and of
   type want, when want != NULL). */
static int check_json(ddpm_runlog *rl, const char *what, const char *field, const char *text,
                      const char *want)
{
   char type[16];
   int found;
   int rc = sql_text(rl, what, type, sizeof type, &found,
                     "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END", "t", text);
   if (rc != DDPM_OK) return rc;
   if (!found)
      return ddpm_seterr(DDPM_EINVAL, "%s: %s is not valid JSON: %.60s%s", what, field, text,
                         strlen(text) > 60 ? "..." : "");
   if (want && strcmp(type, want) != 0)
      return ddpm_seterr(DDPM_EINVAL, "%s: %s must be a JSON %s, got a JSON %s", what, field,
                         want, type);
   return DDPM_OK;
}

int ddpm_runlog_check_run(ddpm_runlog *rl, const char *what, int64_t run_id)
{
   char buf[16];
   int found;
   int rc = sql_text(rl, what, buf, sizeof buf, &found,
                     "SELECT status FROM runs WHERE run_id = ?1", "i", run_id);
   if (rc == DDPM_OK && !found)
      rc = ddpm_seterr(DDPM_EINVAL, "%s: no run %lld in %s", what, (long long)run_id, rl->path);
   return rc;
}

int ddpm_runlog_check_name(const char *what, const char *field, const char *s)
{
   if (!s || !*s) return ddpm_seterr(DDPM_EINVAL, "%s: %s is empty", what, field);
   if (strlen(s) > MAX_NAME)
      return ddpm_seterr(DDPM_EINVAL, "%s: %s is longer than %d bytes", what, field, MAX_NAME);
   return DDPM_OK;
}

static void make_uuid(char out[33])
{
   unsigned char b[16];
   int ok = 0, fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
   if (fd >= 0) {
      ok = read(fd, b, sizeof b) == (ssize_t)sizeof b;
      close(fd);
   }
   if (!ok) {   /* no /dev/urandom (chroot): time, pid and a counter */
      static unsigned counter;
      struct { struct timespec t; pid_t pid; unsigned n; } seed;
      unsigned char d[32];
      ddpm_sha256 c;
      memset(&seed, 0, sizeof seed);
      clock_gettime(CLOCK_REALTIME, &seed.t);
      seed.pid = getpid();
      seed.n = counter++;
      ddpm_sha256_init(&c);
      ddpm_sha256_update(&c, &seed, sizeof seed);
      ddpm_sha256_final(&c, d);
      memcpy(b, d, sizeof b);
   }
   for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ------------------------------------------------------------ open / close */

/* ------------------------------------------------------------ dead runs */

/* Reads state (one letter) and start time of /proc/PID/stat; 0 or -1. */
static int proc_stat(int64_t pid, char *state, int64_t *start)
{
   char path[64], buf[1024];
   snprintf(path, sizeof path, "/proc/%lld/stat", (long long)(pid > 0 ? pid : (int64_t)getpid()));
   int fd = open(path, O_RDONLY | O_CLOEXEC);
   if (fd < 0) return -1;
   ssize_t n = read(fd, buf, sizeof buf - 1);
   close(fd);
   if (n <= 0) return -1;
   buf[n] = 0;
   /* "pid (comm) state ppid ..." — comm may hold spaces and ')', so count
      fields from the last ')'; state is field 3, starttime field 22. */
   char *p = strrchr(buf, ')');
   if (!p || p[1] != ' ' || !p[2]) return -1;
   *state = p[2];
   for (int field = 2; field < 22; field++) {
      p = strchr(p + 1, ' ');
      if (!p) return -1;
   }
   char *end;
   long long v = strtoll(p + 1, &end, 10);
   if (end == p + 1 || v < 0) return -1;
   *start = (int64_t)v;
   return 0;
}

int64_t ddpm_proc_start_time(int64_t pid)
{
   char state;
   int64_t start;
   return proc_stat(pid, &state, &start) == 0 ? start : -1;
}

/* 1 when the process that ran a run is known to be gone: the run is of
   this host and its pid no longer exists (or is a zombie), or the pid now
   belongs to a process that started at another time (the pid was reused). 0 when it
   lives or cannot be judged (another host, no pid recorded). */
static int process_gone(const char *run_host, const char *my_host, int64_t pid, int64_t start)
{
   if (!run_host || strcmp(run_host, my_host) != 0 || pid <= 0) return 0;
   if (pid > INT_MAX) return 1;
   if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 1;
   char state;
   int64_t now;
   if (proc_stat(pid, &state, &now) != 0) return 0;          /* no /proc: trust kill() */
   if (state == 'Z' || state == 'X') return 1;                /* dead, not yet reaped */
   return start > 0 && now != start;                          /* the pid was reused */
}

/* SQL: ddpm_run_gone(host, pid, proc_start) -> 0/1 (see process_gone). */
static void sql_run_gone(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
   (void)argc;
   ddpm_runlog *rl = sqlite3_user_data(ctx);
   const char *host = (const char *)sqlite3_value_text(argv[0]);
   int64_t pid = sqlite3_value_type(argv[1]) == SQLITE_NULL ? 0 : sqlite3_value_int64(argv[1]);
   int64_t start = sqlite3_value_type(argv[2]) == SQLITE_NULL ? 0 : sqlite3_value_int64(argv[2]);
   sqlite3_result_int(ctx, process_gone(host, rl->host, pid, start));
}

#define RUN_GONE "(status = 'running' AND ddpm_run_gone(host, pid, env_json ->> '$.proc_start'))"

/* A writer records what a reader only shows: runs of this host left
   'running' by a process that is gone become 'crashed'. */
static int mark_crashed(ddpm_runlog *rl)
{
   int rc = ddpm_runlog_exec_plain(rl, rl->path, "BEGIN IMMEDIATE");
   if (rc != DDPM_OK) return rc;
   rc = ddpm_runlog_exec_plain(rl, rl->path,
          "UPDATE runs SET status = 'crashed', end_time = coalesce(heartbeat, start_time),"
          " error_text = coalesce(error_text, 'process ' || pid || ' on ' || host ||"
          " ' exited without ending the run') WHERE " RUN_GONE);
   if (rc == DDPM_OK) rc = ddpm_runlog_exec_plain(rl, rl->path, "COMMIT");
   if (rc != DDPM_OK) ddpm_runlog_rollback(rl);
   return rc;
}

/* A reader cannot write the verdict, so it sees it: a TEMP view named runs
   (the temp schema is searched before main) shows a run whose process is
   gone as 'crashed', with the end time and reason a writer would record.
   The view is evaluated at each query, so the verdict is always current. */
static int shadow_runs(ddpm_runlog *rl)
{
   sqlite3_stmt *st;
   char *sql = NULL;
   size_t len = 0;
   FILE *f = open_memstream(&sql, &len);
   if (!f) return ddpm_seterr(DDPM_ENOMEM, "out of memory");
   fputs("CREATE TEMP VIEW runs AS SELECT ", f);
   int rc = sqlite3_prepare_v2(rl->db, "SELECT name FROM pragma_table_info('runs', 'main')", -1,
                               &st, NULL);
   int n = 0;
   while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      const char *col = (const char *)sqlite3_column_text(st, 0);
      if (n++) fputs(", ", f);
      if (strcmp(col, "status") == 0)
         fputs("CASE WHEN " RUN_GONE " THEN 'crashed' ELSE status END AS status", f);
      else if (strcmp(col, "end_time") == 0)
         fputs("CASE WHEN " RUN_GONE " THEN coalesce(end_time, heartbeat, start_time)"
               " ELSE end_time END AS end_time", f);
      else if (strcmp(col, "error_text") == 0)
         fputs("CASE WHEN " RUN_GONE " THEN coalesce(error_text, 'process ' || pid || ' on ' ||"
               " host || ' exited without ending the run') ELSE error_text END AS error_text", f);
      else
         fprintf(f, "\"%s\"", col);
   }
   fputs(" FROM main.runs", f);
   fclose(f);
   if (rc != SQLITE_OK) { free(sql); return ddpm_runlog_sql_error(rl, rl->path); }
   sqlite3_finalize(st);
   rc = n > 0 ? ddpm_runlog_exec_plain(rl, rl->path, sql)
              : ddpm_seterr(DDPM_EFORMAT, "%s: the run store has no runs table", rl->path);
   free(sql);
   return rc;
}

static int prepare_all(ddpm_runlog *rl)
{
   static const char *const sql[6] = {
      "INSERT INTO metrics (run_id, name_id, step, value, wall_time) VALUES (?1, ?2, ?3, ?4, ?5)"
      " ON CONFLICT (run_id, name_id, step) DO UPDATE SET value = excluded.value,"
      " wall_time = excluded.wall_time",
      "INSERT INTO latest_metrics (run_id, name_id, step, value, wall_time)"
      " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, name_id) DO UPDATE SET"
      " step = excluded.step, value = excluded.value, wall_time = excluded.wall_time"
      " WHERE excluded.step >= latest_metrics.step",
      "INSERT INTO metric_names (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
      "SELECT name_id FROM metric_names WHERE name = ?1",
      "UPDATE runs SET heartbeat = ?2 WHERE run_id = ?1",
      "INSERT INTO run_tags (run_id, key, value) VALUES (?1, 'nonfinite_step', ?2)"
      " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"
      " WHERE CAST(excluded.value AS INTEGER) < CAST(run_tags.value AS INTEGER)",
   };
   sqlite3_stmt **out[6] = {&rl->ins_metric, &rl->ins_latest, &rl->ins_name, &rl->sel_name,
                            &rl->heartbeat, &rl->nonfinite};
   for (int i = 0; i < 6; i++)
      if (sqlite3_prepare_v2(rl->db, sql[i], -1, out[i], NULL) != SQLITE_OK)
         return ddpm_runlog_sql_error(rl, rl->path);
   return DDPM_OK;
}

static int setup(ddpm_runlog *rl)
{
   const char *what = rl->path;
   int64_t version, app;
   sqlite3_busy_timeout(rl->db, 5000);
   int rc = ddpm_runlog_exec_plain(rl, what, "PRAGMA foreign_keys = ON");
   /* The first read of the file: a corrupt or foreign file fails here. */
   if (rc == DDPM_OK) rc = ddpm_runlog_pragma_int(rl, what, "PRAGMA user_version", &version);
   if (rc == DDPM_OK) rc = ddpm_runlog_pragma_int(rl, what, "PRAGMA application_id", &app);
   if (rc != DDPM_OK) return rc;
   if (version > DDPM_RUNLOG_SCHEMA_VERSION)
      return ddpm_seterr(DDPM_EFORMAT, "%s: run store schema version %lld is newer than this "
                         "ddpmlua supports (%d); use a newer ddpmlua", what, (long long)version,
                         DDPM_RUNLOG_SCHEMA_VERSION);
   if ((app != 0 || version != 0) && app != DDPM_RUNLOG_APPLICATION_ID)
      return ddpm_seterr(DDPM_EFORMAT, "%s: not a ddpmlua run store (application_id %lld, "
                         "user_version %lld)", what, (long long)app, (long long)version);
   rc = sqlite3_create_function(rl->db, "ddpm_run_gone", 3, SQLITE_UTF8, rl, sql_run_gone,
                                NULL, NULL);
   if (rc != SQLITE_OK) return ddpm_runlog_sql_error(rl, what);
   if (!rl->readonly) rl->readonly = sqlite3_db_readonly(rl->db, "main") == 1;
   if (!rl->readonly) {
      /* journal_mode needs an exclusive lock for a moment; two processes
         opening a new file together may see SQLITE_BUSY despite the timeout. */
      double t0 = ddpm_runlog_mono_now();
      for (;;) {
         rc = sqlite3_exec(rl->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
         if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
         if (ddpm_runlog_mono_now() - t0 > 10.0) break;
         struct timespec ts = {0, 10 * 1000 * 1000};
         nanosleep(&ts, NULL);
      }
      if (rc != SQLITE_OK) return ddpm_runlog_sql_error(rl, what);
      rc = ddpm_runlog_exec_plain(rl, what, "PRAGMA synchronous = NORMAL");
      if (rc != DDPM_OK) return rc;
   }
   if (version < DDPM_RUNLOG_SCHEMA_VERSION) {
      if (rl->readonly && version == 0)
         return ddpm_seterr(DDPM_EFORMAT, "%s: not a run store (no ddpmlua schema in it)", what);
      if (rl->readonly)
         return ddpm_seterr(DDPM_EIO, "%s: read-only, and its schema (version %lld) needs "
                            "upgrading to %d by a writer", what, (long long)version,
                            DDPM_RUNLOG_SCHEMA_VERSION);
      if ((rc = ddpm_runlog_migrate(rl)) != DDPM_OK) return rc;
   }
   if ((rc = prepare_all(rl)) != DDPM_OK) return rc;
   if (rl->readonly) {
      rc = ddpm_runlog_exec_plain(rl, what, "PRAGMA temp_store = MEMORY");
      if (rc != DDPM_OK) return rc;
      return shadow_runs(rl);
   }
   return mark_crashed(rl);
}

static void free_log(ddpm_runlog *rl)
{
   sqlite3_finalize(rl->ins_metric);
   sqlite3_finalize(rl->ins_latest);
   sqlite3_finalize(rl->ins_name);
   sqlite3_finalize(rl->sel_name);
   sqlite3_finalize(rl->heartbeat);
   sqlite3_finalize(rl->nonfinite);
   if (rl->db) sqlite3_close_v2(rl->db);
   for (int i = 0; i < rl->nnames; i++) free(rl->names[i].name);
   free(rl->names);
   free(rl->rows);
   free(rl->known);
   free(rl->path);
   free(rl);
}

static ddpm_runlog *new_log(const char *path)
{
   ddpm_runlog *rl = calloc(1, sizeof *rl);
   if (rl) rl->path = strdup(path);
   if (!rl || !rl->path) {
      free(rl);
      ddpm_seterr(DDPM_ENOMEM, "runlog_open: out of memory");
      return NULL;
   }
   if (gethostname(rl->host, sizeof rl->host - 1) != 0) strcpy(rl->host, "unknown");
   rl->last_flush = ddpm_runlog_mono_now();
   return rl;
}

static ddpm_runlog *open_log(ddpm_runlog *rl, const char *uri, int flags)
{
   int rc = sqlite3_open_v2(uri, &rl->db, flags, NULL);
   if (rc != SQLITE_OK) {
      ddpm_seterr(DDPM_ESQL, "%s: cannot open run store: %s", rl->path,
                  rl->db ? sqlite3_errmsg(rl->db) : sqlite3_errstr(rc));
      free_log(rl);
      return NULL;
   }
   if (setup(rl) != DDPM_OK) {
      free_log(rl);
      return NULL;
   }
   return rl;
}

ddpm_runlog *ddpm_runlog_open(const char *path)
{
   if (!path || !*path) { ddpm_seterr(DDPM_EINVAL, "runlog_open: no path given"); return NULL; }
   ddpm_runlog *rl = new_log(path);
   return rl ? open_log(rl, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) : NULL;
}

/* The file as an SQLite URI: "file:" + the path with '%', '?' and '#'
   escaped; immutable=1 when no write-ahead log is beside it. */
static char *readonly_uri(const char *path, int immutable)
{
   size_t n = strlen(path);
   char *uri = malloc(3 * n + 32);
   if (!uri) return NULL;
   char *o = uri + sprintf(uri, "file:");
   if (path[0] == '/' && path[1] == '/') o += sprintf(o, "//");   /* keep it a path, not a host */
   for (const char *p = path; *p; p++) {
      if (*p == '%' || *p == '?' || *p == '#') o += sprintf(o, "%%%02X", (unsigned char)*p);
      else *o++ = *p;
   }
   sprintf(o, immutable ? "?mode=ro&immutable=1" : "?mode=ro");
   return uri;
}

ddpm_runlog *ddpm_runlog_open_readonly(const char *path)
{
   if (!path || !*path) { ddpm_seterr(DDPM_EINVAL, "runlog_open: no path given"); return NULL; }
   struct stat sb;
   if (stat(path, &sb) != 0) {
      ddpm_seterr(errno == ENOENT ? DDPM_EINVAL : DDPM_EIO, "%s: no run store there (%s)", path,
                  strerror(errno));
      return NULL;
   }
   if (!S_ISREG(sb.st_mode)) {
      ddpm_seterr(DDPM_EINVAL, "%s: not a file", path);
      return NULL;
   }
   /* A reader needs the -shm file of a WAL database, which it creates when
      missing. In a folder it cannot write, with no -wal file beside the
      database, no connection is open on it (the last writer to close
      removes the -wal) and nothing is missing from the main file: read it
      as immutable, which needs no -shm. Elsewhere read as SQLite's readers
      do, with locks, so that a writer at work is seen consistently. */
   size_t n = strlen(path);
   char *wal = malloc(n + 5), *dir = strdup(path);
   if (!wal || !dir) {
      free(wal); free(dir);
      ddpm_seterr(DDPM_ENOMEM, "runlog_open: out of memory");
      return NULL;
   }
   memcpy(wal, path, n);
   memcpy(wal + n, "-wal", 5);
   char *slash = strrchr(dir, '/');
   if (slash) slash[slash == dir ? 1 : 0] = 0;
   int immutable = stat(wal, &sb) != 0 && access(slash ? dir : ".", W_OK) != 0;
   free(wal);
   free(dir);
   char *uri = readonly_uri(path, immutable);
   ddpm_runlog *rl = uri ? new_log(path) : NULL;
   if (!uri) ddpm_seterr(DDPM_ENOMEM, "runlog_open: out of memory");
   if (rl) {
      rl->readonly = 1;
      rl = open_log(rl, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
   }
   free(uri);
   return rl;
}

int ddpm_runlog_readonly(const ddpm_runlog *rl) { return rl ? rl->readonly : 0; }

int ddpm_runlog_close(ddpm_runlog *rl)
{
   if (!rl) return DDPM_OK;
   int rc = ddpm_runlog_flush(rl);
   if (!rl->readonly) sqlite3_exec(rl->db, "PRAGMA optimize", NULL, NULL, NULL);
   free_log(rl);
   return rc;
}

const char *ddpm_runlog_path(const ddpm_runlog *rl) { return rl ? rl->path : NULL; }

size_t ddpm_runlog_pending(const ddpm_runlog *rl) { return rl ? rl->nrows : 0; }

/* ------------------------------------------------------------ runs */

int ddpm_runlog_begin_run(ddpm_runlog *rl, const ddpm_run_info *info, int64_t *run_id)
{
   const char *what = "begin_run";
   if (!rl || !info || !run_id) return ddpm_seterr(DDPM_EINVAL, "%s: NULL argument", what);
   *run_id = 0;
   const char *script = info->script_text ? info->script_text : "";
   const char *config = info->config_json ? info->config_json : "{}";
   const char *experiment = info->experiment ? info->experiment : "default";
   int rc = check_json(rl, what, "config_json", config, "object");
   if (rc == DDPM_OK && info->argv_json) rc = check_json(rl, what, "argv_json", info->argv_json, NULL);
   if (rc == DDPM_OK && info->env_json) rc = check_json(rl, what, "env_json", info->env_json, NULL);
   if (rc == DDPM_OK && info->parent_run_id != 0)
      rc = ddpm_runlog_check_run(rl, what, info->parent_run_id);
   if (rc != DDPM_OK) return rc;
   if (info->world_size < 0)
      return ddpm_seterr(DDPM_EINVAL, "%s: world_size %d is negative", what, info->world_size);

   char uuid[33], script_sha[65], config_sha[65];
   make_uuid(uuid);
   ddpm_sha256_hex(script, strlen(script), script_sha);
   ddpm_sha256_hex(config, strlen(config), config_sha);
   double now = ddpm_runlog_wall_now();
   sqlite3_stmt *st;
   if (sqlite3_prepare_v2(rl->db,
          "INSERT INTO runs (uuid, name, experiment, parent_run_id, status, start_time, heartbeat,"
          " script_path, script_text, script_sha256, config_json, config_sha256, seed, argv_json,"
          " git_commit, git_dirty, host, pid, world_size, version, env_json) VALUES"
          " (?1, ?2, ?3, ?4, 'running', ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
          " ?16, ?17, ?18, CASE WHEN ?20 < 0 THEN ?19 WHEN ?19 IS NULL"
          " THEN json_object('proc_start', ?20) WHEN json_type(?19) = 'object'"
          " THEN json_set(?19, '$.proc_start', ?20) ELSE ?19 END)", -1, &st, NULL) != SQLITE_OK)
      return ddpm_runlog_sql_error(rl, what);
   sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
   if (info->name) sqlite3_bind_text(st, 2, info->name, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 3, experiment, -1, SQLITE_STATIC);
   if (info->parent_run_id) sqlite3_bind_int64(st, 4, info->parent_run_id);
   sqlite3_bind_double(st, 5, now);
   if (info->script_path) sqlite3_bind_text(st, 6, info->script_path, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 7, script, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 8, script_sha, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 9, config, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 10, config_sha, -1, SQLITE_STATIC);
   sqlite3_bind_int64(st, 11, info->seed);
   if (info->argv_json) sqlite3_bind_text(st, 12, info->argv_json, -1, SQLITE_STATIC);
   if (info->git_commit) sqlite3_bind_text(st, 13, info->git_commit, -1, SQLITE_STATIC);
   if (info->git_dirty == 0 || info->git_dirty == 1) sqlite3_bind_int(st, 14, info->git_dirty);
   sqlite3_bind_text(st, 15, rl->host, -1, SQLITE_STATIC);
   sqlite3_bind_int64(st, 16, (int64_t)getpid());
   sqlite3_bind_int(st, 17, info->world_size > 0 ? info->world_size : 1);
   if (info->version) sqlite3_bind_text(st, 18, info->version, -1, SQLITE_STATIC);
   if (info->env_json) sqlite3_bind_text(st, 19, info->env_json, -1, SQLITE_STATIC);
   /* with the pid, the process start time tells a reused pid apart */
   sqlite3_bind_int64(st, 20, ddpm_proc_start_time(0));
   rc = sqlite3_step(st) == SQLITE_DONE ? DDPM_OK : ddpm_runlog_sql_error(rl, what);
   sqlite3_finalize(st);
   if (rc == DDPM_OK) *run_id = sqlite3_last_insert_rowid(rl->db);
   return rc;
}

int ddpm_runlog_end_run(ddpm_runlog *rl, int64_t run_id, const char *status, const char *error_text)
{
   const char *what = "end_run";
   if (!rl || !status) return ddpm_seterr(DDPM_EINVAL, "%s: NULL argument", what);
   if (strcmp(status, "finished") && strcmp(status, "failed") && strcmp(status, "interrupted"))
      return ddpm_seterr(DDPM_EINVAL, "%s: status '%s' is not one of finished, failed, "
                         "interrupted", what, status);
   int rc = ddpm_runlog_check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   /* End the run even when its last metrics cannot be written; report both. */
   int frc = ddpm_runlog_flush(rl);
   int changed = 0;
   rc = sql_exec(rl, what, &changed,
                 "UPDATE runs SET status = ?2, end_time = ?3, heartbeat = ?3, error_text = ?4"
                 " WHERE run_id = ?1 AND status IN ('running', 'crashed')",
                 "itdt", run_id, status, ddpm_runlog_wall_now(), error_text);
   if (rc != DDPM_OK) return rc;
   if (changed == 0) {
      char old[16];
      int found;
      rc = sql_text(rl, what, old, sizeof old, &found,
                    "SELECT status FROM runs WHERE run_id = ?1", "i", run_id);
      if (rc != DDPM_OK) return rc;
      return ddpm_seterr(DDPM_EINVAL, "%s: run %lld has already ended (%s)", what,
                         (long long)run_id, found ? old : "deleted");
   }
   return frc;
}

int ddpm_runlog_set_tag(ddpm_runlog *rl, int64_t run_id, const char *key, const char *value)
{
   const char *what = "set_tag";
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "%s: NULL log", what);
   int rc = ddpm_runlog_check_name(what, "tag key", key);
   if (rc == DDPM_OK) rc = ddpm_runlog_check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   return sql_exec(rl, what, NULL,
                   "INSERT INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                   "itt", run_id, key, value);
}

int ddpm_runlog_add_source(ddpm_runlog *rl, int64_t run_id, const char *path, const char *text)
{
   const char *what = "add_source";
   if (!rl || !text) return ddpm_seterr(DDPM_EINVAL, "%s: NULL argument", what);
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: path is empty", what);
   int rc = ddpm_runlog_check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   char sha[65];
   ddpm_sha256_hex(text, strlen(text), sha);
   if ((rc = ddpm_runlog_exec_plain(rl, what, "BEGIN IMMEDIATE")) != DDPM_OK) return rc;
   rc = sql_exec(rl, what, NULL, "INSERT INTO sources (sha256, text) VALUES (?1, ?2)"
                 " ON CONFLICT (sha256) DO NOTHING", "tt", sha, text);
   if (rc == DDPM_OK)
      rc = sql_exec(rl, what, NULL, "INSERT INTO run_sources (run_id, path, sha256)"
                    " VALUES (?1, ?2, ?3) ON CONFLICT (run_id, path) DO UPDATE"
                    " SET sha256 = excluded.sha256", "itt", run_id, path, sha);
   if (rc == DDPM_OK) rc = ddpm_runlog_exec_plain(rl, what, "COMMIT");
   if (rc != DDPM_OK) ddpm_runlog_rollback(rl);
   return rc;
}

/* ------------------------------------------------------------ files */

/* Absolute form of path into out (the path itself when it cannot be resolved). */
static void absolute(const char *path, char *out, size_t len)
{
   char buf[PATH_MAX];
   snprintf(out, len, "%s", realpath(path, buf) ? buf : path);
}

int ddpm_runlog_log_artifact(ddpm_runlog *rl, int64_t run_id, int64_t step, const char *kind,
                             const char *path, const char *meta_json)
{
   const char *what = "log_artifact";
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "%s: NULL log", what);
   int rc = ddpm_runlog_check_name(what, "kind", kind);
   if (rc != DDPM_OK) return rc;
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: path is empty", what);
   if ((rc = ddpm_runlog_check_run(rl, what, run_id)) != DDPM_OK) return rc;
   if (meta_json && (rc = check_json(rl, what, "meta_json", meta_json, NULL)) != DDPM_OK) return rc;
   struct stat sb;
   if (stat(path, &sb) != 0)
      return ddpm_seterr(DDPM_EIO, "%s: cannot stat %s: %s", what, path, strerror(errno));
   char sha[65], abs[PATH_MAX];
   int have_sha = 0;
   if (S_ISREG(sb.st_mode)) {
      if ((rc = ddpm_sha256_file(path, sha, NULL)) != DDPM_OK) return rc;
      have_sha = 1;
   } else if (!S_ISDIR(sb.st_mode)) {
      return ddpm_seterr(DDPM_EIO, "%s: %s is neither a file nor a directory", what, path);
   }
   absolute(path, abs, sizeof abs);
   if ((rc = ddpm_runlog_flush(rl)) != DDPM_OK) return rc;
   sqlite3_stmt *st;
   if (sqlite3_prepare_v2(rl->db, "INSERT INTO artifacts (run_id, step, kind, path, sha256,"
                          " meta_json, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                          -1, &st, NULL) != SQLITE_OK)
      return ddpm_runlog_sql_error(rl, what);
   sqlite3_bind_int64(st, 1, run_id);
   if (step >= 0) sqlite3_bind_int64(st, 2, step);
   sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 4, abs, -1, SQLITE_STATIC);
   if (have_sha) sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
   if (meta_json) sqlite3_bind_text(st, 6, meta_json, -1, SQLITE_STATIC);
   sqlite3_bind_double(st, 7, ddpm_runlog_wall_now());
   rc = sqlite3_step(st) == SQLITE_DONE ? DDPM_OK : ddpm_runlog_sql_error(rl, what);
   sqlite3_finalize(st);
   return rc;
}

int ddpm_runlog_log_checkpoint(ddpm_runlog *rl, int64_t run_id, int64_t step, const char *path)
{
   const char *what = "log_checkpoint";
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "%s: NULL log", what);
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: path is empty", what);
   int rc = ddpm_runlog_check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   char sha[65], abs[PATH_MAX];
   int64_t bytes;
   if ((rc = ddpm_sha256_file(path, sha, &bytes)) != DDPM_OK) return rc;
   absolute(path, abs, sizeof abs);
   if ((rc = ddpm_runlog_flush(rl)) != DDPM_OK) return rc;
   return sql_exec(rl, what, NULL,
                   "INSERT INTO checkpoints (run_id, step, path, sha256, bytes, created)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, step) DO UPDATE SET"
                   " path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes,"
                   " created = excluded.created",
                   "iittid", run_id, step, abs, sha, bytes, ddpm_runlog_wall_now());
}
