/*
 * runlog.c — the run store over SQLite (see runlog.h for the contract and
 * /work/shared/notes/ecosystem.md §1.4–1.5 for why the schema looks so).
 *
 * One connection per ddpm_runlog. Metrics are buffered in memory and written
 * in one BEGIN IMMEDIATE transaction per batch: BEGIN IMMEDIATE takes the
 * write lock up front, so a second process waits in busy_timeout instead of
 * failing on a read-to-write upgrade. Everything else is a single statement
 * in autocommit mode. Nothing here prints, exits or aborts.
 *
 * Deliberately not here: a schema for sweeps, blob storage (files stay on
 * disk, the database keeps path + sha256), network sync.
 */
#include "runlog.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define STALE_SECONDS 120.0   /* heartbeat age before a dead pid's run is 'crashed' */
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

/* ------------------------------------------------------------ schema */

/* migrations[v] takes a database from user_version v to v + 1. */
static const char *const migrations[DDPM_RUNLOG_SCHEMA_VERSION] = {
   "CREATE TABLE runs ("
   "  run_id        INTEGER PRIMARY KEY,"
   "  uuid          TEXT NOT NULL UNIQUE,"
   "  name          TEXT,"
   "  experiment    TEXT NOT NULL DEFAULT 'default',"
   "  parent_run_id INTEGER REFERENCES runs(run_id) ON DELETE SET NULL,"
   "  status        TEXT NOT NULL DEFAULT 'running'"
   "                CHECK (status IN ('running','finished','failed','interrupted','crashed')),"
   "  start_time    REAL NOT NULL,"
   "  end_time      REAL,"
   "  heartbeat     REAL,"
   "  script_path   TEXT,"
   "  script_text   TEXT NOT NULL,"
   "  script_sha256 TEXT NOT NULL,"
   "  config_json   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config_json)),"
   "  config_sha256 TEXT,"
   "  seed          INTEGER NOT NULL,"
   "  argv_json     TEXT CHECK (argv_json IS NULL OR json_valid(argv_json)),"
   "  git_commit    TEXT,"
   "  git_dirty     INTEGER,"
   "  host          TEXT,"
   "  pid           INTEGER,"
   "  world_size    INTEGER NOT NULL DEFAULT 1,"
   "  version       TEXT,"
   "  env_json      TEXT CHECK (env_json IS NULL OR json_valid(env_json)),"
   "  error_text    TEXT);"
   "CREATE INDEX runs_experiment ON runs(experiment, start_time);"
   "CREATE INDEX runs_script ON runs(script_sha256);"
   "CREATE INDEX runs_config ON runs(config_sha256);"
   "CREATE TABLE run_tags ("
   "  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  key TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, key)) WITHOUT ROWID;"
   "CREATE TABLE sources (sha256 TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;"
   "CREATE TABLE run_sources ("
   "  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  path TEXT NOT NULL, sha256 TEXT NOT NULL REFERENCES sources(sha256),"
   "  PRIMARY KEY (run_id, path)) WITHOUT ROWID;"
   "CREATE TABLE metric_names (name_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
   "CREATE TABLE metrics ("
   "  run_id    INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  name_id   INTEGER NOT NULL REFERENCES metric_names(name_id),"
   "  step      INTEGER NOT NULL,"
   "  value     REAL,"
   "  wall_time REAL NOT NULL,"
   "  PRIMARY KEY (run_id, name_id, step)) WITHOUT ROWID;"
   "CREATE VIEW metrics_v AS SELECT m.run_id, n.name AS key, m.step, m.value, m.wall_time"
   "  FROM metrics m JOIN metric_names n USING (name_id);"
   "CREATE TABLE latest_metrics ("
   "  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  name_id INTEGER NOT NULL REFERENCES metric_names(name_id),"
   "  step INTEGER NOT NULL, value REAL, wall_time REAL NOT NULL,"
   "  PRIMARY KEY (run_id, name_id)) WITHOUT ROWID;"
   "CREATE TABLE checkpoints ("
   "  ckpt_id INTEGER PRIMARY KEY,"
   "  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  step INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,"
   "  bytes INTEGER NOT NULL, has_ema INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL,"
   "  UNIQUE (run_id, step));"
   "CREATE TABLE artifacts ("
   "  artifact_id INTEGER PRIMARY KEY,"
   "  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,"
   "  step INTEGER, kind TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT,"
   "  meta_json TEXT CHECK (meta_json IS NULL OR json_valid(meta_json)),"
   "  created REAL NOT NULL);"
   "CREATE INDEX artifacts_run ON artifacts(run_id, kind, step);",
};

/* ------------------------------------------------------------ helpers */

static double wall_now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_REALTIME, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mono_now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int sql_error(ddpm_runlog *rl, const char *what)
{
   return ddpm_seterr(DDPM_ESQL, "%s: %s", what, sqlite3_errmsg(rl->db));
}

/* Prepares sql and binds the variadic arguments by types: 'i' int64_t,
   'd' double, 't' const char * (NULL binds NULL). */
static int prep(ddpm_runlog *rl, const char *what, sqlite3_stmt **st, const char *sql,
                const char *types, va_list ap)
{
   if (sqlite3_prepare_v2(rl->db, sql, -1, st, NULL) != SQLITE_OK) return sql_error(rl, what);
   for (int k = 0; types[k]; k++) {
      int rc;
      if (types[k] == 'i') rc = sqlite3_bind_int64(*st, k + 1, va_arg(ap, int64_t));
      else if (types[k] == 'd') rc = sqlite3_bind_double(*st, k + 1, va_arg(ap, double));
      else {
         const char *s = va_arg(ap, const char *);
         rc = s ? sqlite3_bind_text(*st, k + 1, s, -1, SQLITE_STATIC) : sqlite3_bind_null(*st, k + 1);
      }
      if (rc != SQLITE_OK) {
         rc = sql_error(rl, what);
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
   rc = rc == SQLITE_DONE ? DDPM_OK : sql_error(rl, what);
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
      rc = rc == SQLITE_DONE ? DDPM_OK : sql_error(rl, what);
   }
   sqlite3_finalize(st);
   return rc;
}

static int exec_plain(ddpm_runlog *rl, const char *what, const char *sql)
{
   char *err = NULL;
   if (sqlite3_exec(rl->db, sql, NULL, NULL, &err) == SQLITE_OK) return DDPM_OK;
   int rc = ddpm_seterr(DDPM_ESQL, "%s: %s", what, err ? err : sqlite3_errmsg(rl->db));
   sqlite3_free(err);
   return rc;
}

static void rollback(ddpm_runlog *rl)
{
   if (!sqlite3_get_autocommit(rl->db)) sqlite3_exec(rl->db, "ROLLBACK", NULL, NULL, NULL);
}

static int pragma_int(ddpm_runlog *rl, const char *what, const char *sql, int64_t *out)
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

static int check_run(ddpm_runlog *rl, const char *what, int64_t run_id)
{
   char buf[16];
   int found;
   int rc = sql_text(rl, what, buf, sizeof buf, &found,
                     "SELECT status FROM runs WHERE run_id = ?1", "i", run_id);
   if (rc == DDPM_OK && !found)
      rc = ddpm_seterr(DDPM_EINVAL, "%s: no run %lld in %s", what, (long long)run_id, rl->path);
   return rc;
}

static int check_name(const char *what, const char *field, const char *s)
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

static int migrate(ddpm_runlog *rl)
{
   const char *what = rl->path;
   int64_t version, app, ntables;
   int rc = exec_plain(rl, what, "BEGIN IMMEDIATE");
   if (rc != DDPM_OK) return rc;
   /* Read again under the write lock: another process may have migrated. */
   if ((rc = pragma_int(rl, what, "PRAGMA user_version", &version)) != DDPM_OK ||
       (rc = pragma_int(rl, what, "PRAGMA application_id", &app)) != DDPM_OK ||
       (rc = pragma_int(rl, what, "SELECT count(*) FROM sqlite_schema", &ntables)) != DDPM_OK)
      goto fail;
   if (version > DDPM_RUNLOG_SCHEMA_VERSION) {
      rc = ddpm_seterr(DDPM_EFORMAT, "%s: run store schema version %lld is newer than this "
                       "ddpmlua supports (%d); use a newer ddpmlua", what, (long long)version,
                       DDPM_RUNLOG_SCHEMA_VERSION);
      goto fail;
   }
   if (version == 0 && ntables > 0) {
      rc = ddpm_seterr(DDPM_EFORMAT, "%s: not a ddpmlua run store (it holds %lld schema "
                       "objects and no schema version)", what, (long long)ntables);
      goto fail;
   }
   for (; version < DDPM_RUNLOG_SCHEMA_VERSION; version++)
      if ((rc = exec_plain(rl, what, migrations[version])) != DDPM_OK) goto fail;
   char sql[128];
   snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
            DDPM_RUNLOG_SCHEMA_VERSION, DDPM_RUNLOG_APPLICATION_ID);
   if ((rc = exec_plain(rl, what, sql)) != DDPM_OK) goto fail;
   if ((rc = exec_plain(rl, what, "COMMIT")) != DDPM_OK) goto fail;
   return DDPM_OK;
fail:
   rollback(rl);
   return rc;
}

/* Runs of this host left 'running' by a process that no longer exists. */
static int mark_crashed(ddpm_runlog *rl)
{
   sqlite3_stmt *st;
   int64_t *dead = NULL;
   int ndead = 0, cap = 0, rc;
   if (sqlite3_prepare_v2(rl->db,
          "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?1"
          " AND pid > 0 AND coalesce(heartbeat, start_time) < ?2", -1, &st, NULL) != SQLITE_OK)
      return sql_error(rl, rl->path);
   sqlite3_bind_text(st, 1, rl->host, -1, SQLITE_STATIC);
   sqlite3_bind_double(st, 2, wall_now() - STALE_SECONDS);
   while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      int64_t pid = sqlite3_column_int64(st, 1);
      if (pid > INT_MAX || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
         if (ndead == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *p = realloc(dead, (size_t)cap * sizeof *p);
            if (!p) { free(dead); sqlite3_finalize(st); return ddpm_seterr(DDPM_ENOMEM, "out of memory"); }
            dead = p;
         }
         dead[ndead++] = sqlite3_column_int64(st, 0);
      }
   }
   rc = rc == SQLITE_DONE ? DDPM_OK : sql_error(rl, rl->path);
   sqlite3_finalize(st);
   if (rc == DDPM_OK && ndead > 0 && (rc = exec_plain(rl, rl->path, "BEGIN IMMEDIATE")) == DDPM_OK) {
      for (int i = 0; i < ndead && rc == DDPM_OK; i++)
         rc = sql_exec(rl, rl->path, NULL,
                       "UPDATE runs SET status = 'crashed', end_time = coalesce(heartbeat, start_time),"
                       " error_text = coalesce(error_text, 'process ' || pid || ' on ' || host ||"
                       " ' exited without ending the run')"
                       " WHERE run_id = ?1 AND status = 'running'", "i", dead[i]);
      if (rc == DDPM_OK) rc = exec_plain(rl, rl->path, "COMMIT");
      if (rc != DDPM_OK) rollback(rl);
   }
   free(dead);
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
         return sql_error(rl, rl->path);
   return DDPM_OK;
}

static int setup(ddpm_runlog *rl)
{
   const char *what = rl->path;
   int64_t version, app;
   sqlite3_busy_timeout(rl->db, 5000);
   int rc = exec_plain(rl, what, "PRAGMA foreign_keys = ON");
   /* The first read of the file: a corrupt or foreign file fails here. */
   if (rc == DDPM_OK) rc = pragma_int(rl, what, "PRAGMA user_version", &version);
   if (rc == DDPM_OK) rc = pragma_int(rl, what, "PRAGMA application_id", &app);
   if (rc != DDPM_OK) return rc;
   if (version > DDPM_RUNLOG_SCHEMA_VERSION)
      return ddpm_seterr(DDPM_EFORMAT, "%s: run store schema version %lld is newer than this "
                         "ddpmlua supports (%d); use a newer ddpmlua", what, (long long)version,
                         DDPM_RUNLOG_SCHEMA_VERSION);
   if ((app != 0 || version != 0) && app != DDPM_RUNLOG_APPLICATION_ID)
      return ddpm_seterr(DDPM_EFORMAT, "%s: not a ddpmlua run store (application_id %lld, "
                         "user_version %lld)", what, (long long)app, (long long)version);
   rl->readonly = sqlite3_db_readonly(rl->db, "main") == 1;
   if (!rl->readonly) {
      /* journal_mode needs an exclusive lock for a moment; two processes
         opening a new file together may see SQLITE_BUSY despite the timeout. */
      double t0 = mono_now();
      for (;;) {
         rc = sqlite3_exec(rl->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
         if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
         if (mono_now() - t0 > 10.0) break;
         struct timespec ts = {0, 10 * 1000 * 1000};
         nanosleep(&ts, NULL);
      }
      if (rc != SQLITE_OK) return sql_error(rl, what);
      if ((rc = exec_plain(rl, what, "PRAGMA synchronous = NORMAL")) != DDPM_OK) return rc;
   }
   if (version < DDPM_RUNLOG_SCHEMA_VERSION) {
      if (rl->readonly)
         return ddpm_seterr(DDPM_EIO, "%s: read-only, and its schema (version %lld) needs "
                            "creating or upgrading to %d", what, (long long)version,
                            DDPM_RUNLOG_SCHEMA_VERSION);
      if ((rc = migrate(rl)) != DDPM_OK) return rc;
   }
   if ((rc = prepare_all(rl)) != DDPM_OK) return rc;
   return rl->readonly ? DDPM_OK : mark_crashed(rl);
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

ddpm_runlog *ddpm_runlog_open(const char *path)
{
   if (!path || !*path) { ddpm_seterr(DDPM_EINVAL, "runlog_open: no path given"); return NULL; }
   ddpm_runlog *rl = calloc(1, sizeof *rl);
   if (rl) rl->path = strdup(path);
   if (!rl || !rl->path) {
      free(rl);
      ddpm_seterr(DDPM_ENOMEM, "runlog_open: out of memory");
      return NULL;
   }
   if (gethostname(rl->host, sizeof rl->host - 1) != 0) strcpy(rl->host, "unknown");
   rl->last_flush = mono_now();
   int rc = sqlite3_open_v2(path, &rl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
   if (rc != SQLITE_OK) {
      ddpm_seterr(DDPM_ESQL, "%s: cannot open run store: %s", path,
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
   if (rc == DDPM_OK && info->parent_run_id != 0) rc = check_run(rl, what, info->parent_run_id);
   if (rc != DDPM_OK) return rc;
   if (info->world_size < 0)
      return ddpm_seterr(DDPM_EINVAL, "%s: world_size %d is negative", what, info->world_size);

   char uuid[33], script_sha[65], config_sha[65];
   make_uuid(uuid);
   ddpm_sha256_hex(script, strlen(script), script_sha);
   ddpm_sha256_hex(config, strlen(config), config_sha);
   double now = wall_now();
   sqlite3_stmt *st;
   if (sqlite3_prepare_v2(rl->db,
          "INSERT INTO runs (uuid, name, experiment, parent_run_id, status, start_time, heartbeat,"
          " script_path, script_text, script_sha256, config_json, config_sha256, seed, argv_json,"
          " git_commit, git_dirty, host, pid, world_size, version, env_json) VALUES"
          " (?1, ?2, ?3, ?4, 'running', ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
          " ?16, ?17, ?18, ?19)", -1, &st, NULL) != SQLITE_OK)
      return sql_error(rl, what);
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
   rc = sqlite3_step(st) == SQLITE_DONE ? DDPM_OK : sql_error(rl, what);
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
   int rc = check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   /* End the run even when its last metrics cannot be written; report both. */
   int frc = ddpm_runlog_flush(rl);
   int changed = 0;
   rc = sql_exec(rl, what, &changed,
                 "UPDATE runs SET status = ?2, end_time = ?3, heartbeat = ?3, error_text = ?4"
                 " WHERE run_id = ?1 AND status IN ('running', 'crashed')",
                 "itdt", run_id, status, wall_now(), error_text);
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
   int rc = check_name(what, "tag key", key);
   if (rc == DDPM_OK) rc = check_run(rl, what, run_id);
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
   int rc = check_run(rl, what, run_id);
   if (rc != DDPM_OK) return rc;
   char sha[65];
   ddpm_sha256_hex(text, strlen(text), sha);
   if ((rc = exec_plain(rl, what, "BEGIN IMMEDIATE")) != DDPM_OK) return rc;
   rc = sql_exec(rl, what, NULL, "INSERT INTO sources (sha256, text) VALUES (?1, ?2)"
                 " ON CONFLICT (sha256) DO NOTHING", "tt", sha, text);
   if (rc == DDPM_OK)
      rc = sql_exec(rl, what, NULL, "INSERT INTO run_sources (run_id, path, sha256)"
                    " VALUES (?1, ?2, ?3) ON CONFLICT (run_id, path) DO UPDATE"
                    " SET sha256 = excluded.sha256", "itt", run_id, path, sha);
   if (rc == DDPM_OK) rc = exec_plain(rl, what, "COMMIT");
   if (rc != DDPM_OK) rollback(rl);
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
   int rc = check_name(what, "kind", kind);
   if (rc != DDPM_OK) return rc;
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: path is empty", what);
   if ((rc = check_run(rl, what, run_id)) != DDPM_OK) return rc;
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
      return sql_error(rl, what);
   sqlite3_bind_int64(st, 1, run_id);
   if (step >= 0) sqlite3_bind_int64(st, 2, step);
   sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
   sqlite3_bind_text(st, 4, abs, -1, SQLITE_STATIC);
   if (have_sha) sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
   if (meta_json) sqlite3_bind_text(st, 6, meta_json, -1, SQLITE_STATIC);
   sqlite3_bind_double(st, 7, wall_now());
   rc = sqlite3_step(st) == SQLITE_DONE ? DDPM_OK : sql_error(rl, what);
   sqlite3_finalize(st);
   return rc;
}

int ddpm_runlog_log_checkpoint(ddpm_runlog *rl, int64_t run_id, int64_t step, const char *path)
{
   const char *what = "log_checkpoint";
   if (!rl) return ddpm_seterr(DDPM_EINVAL, "%s: NULL log", what);
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "%s: path is empty", what);
   int rc = check_run(rl, what, run_id);
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
                   "iittid", run_id, step, abs, sha, bytes, wall_now());
}

/* ------------------------------------------------------------ metrics */

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
   int rc = check_run(rl, "log_metric", run_id);
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
   int rc = check_name(what, "metric name", name);
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
   rl->rows[rl->nrows++] = (pending_row){run_id, step, value, wall_now(), k};
   if (rl->nrows >= DDPM_RUNLOG_FLUSH_ROWS || mono_now() - rl->last_flush >= DDPM_RUNLOG_FLUSH_SECONDS)
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
   rl->last_flush = mono_now();
   if (rl->nrows == 0) return DDPM_OK;
   int rc = sqlite3_exec(rl->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
   double now = wall_now();
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
   rollback(rl);
   /* Names interned in the rolled-back transaction are gone again. */
   for (int i = 0; i < rl->nnames; i++)
      if (rl->names[i].fresh) rl->names[i].id = 0, rl->names[i].fresh = 0;
   size_t n = rl->nrows;
   if (code == SQLITE_CONSTRAINT) {
      /* A run deleted meanwhile, say: no retry can succeed. */
      rl->nrows = 0;
      rl->nknown = 0;
      return ddpm_seterr(DDPM_ESQL, "flush: %s (%zu metric rows dropped)", msg, n);
   }
   return ddpm_seterr(DDPM_ESQL, "flush: %s (%zu metric rows kept for the next flush)", msg, n);
}

/* ------------------------------------------------------------ queries */

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
   if (rc != SQLITE_OK) return sql_error(rl, "query");
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
   if (sqlite3_prepare_v2(rl->db, sql, -1, &st, &tail) != SQLITE_OK) return sql_error(rl, "query");
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
                                   : sql_error(rl, "query");
   sqlite3_finalize(st);
   sqlite3_progress_handler(rl->db, 0, NULL, NULL);
   free(names);
   free(vals);
   if (!sqlite3_get_autocommit(rl->db)) {
      /* Flushes need autocommit mode (BEGIN IMMEDIATE); one query is one unit. */
      rollback(rl);
      if (rc == DDPM_OK)
         rc = ddpm_seterr(DDPM_EINVAL, "query: a statement may not leave a transaction open "
                          "(rolled back)");
   }
   return rc;
}
