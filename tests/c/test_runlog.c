/*
 * test_runlog.c — the run store (runtime/runlog.c) and SHA-256 (sha256.c):
 * schema creation, runs, 5000 metrics read back exactly, NaN and upserts,
 * latest_metrics, files with known digests, statuses, reopening, refused and
 * corrupt files, malformed queries, lock contention, two processes writing
 * one file at once, and crash detection. Everything lives in a temp dir.
 */
#include "ddpm.h"
#include "ddpm/runlog.h"
#include "ddpm/sha256.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static char dir[PATH_MAX - 64];

static const char *tmp(const char *name)
{
   static char buf[4][PATH_MAX];
   static int k;
   k = (k + 1) % 4;
   snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
   return buf[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
   FILE *f = fopen(path, "wb");
   if (f) { fwrite(data, 1, n, f); fclose(f); }
}

/* ------------------------------------------------------------ query helpers */

/* First column of the first row, as a double (NAN when NULL / no row). */
typedef struct first { int rows; double num; char text[256]; int is_null; } first;

static int first_cb(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *v)
{
   first *f = ud;
   (void)names;
   if (!v || f->rows++ > 0 || ncol < 1) return 0;
   f->is_null = v[0].type == DDPM_RUNLOG_NULL;
   f->num = v[0].type == DDPM_RUNLOG_INT ? (double)v[0].i : v[0].type == DDPM_RUNLOG_REAL ? v[0].d : NAN;
   if (v[0].type == DDPM_RUNLOG_TEXT) snprintf(f->text, sizeof f->text, "%s", v[0].s);
   else f->text[0] = '\0';
   return 0;
}

static first q1(ddpm_runlog *rl, const char *sql, int64_t run)
{
   first f;
   memset(&f, 0, sizeof f);
   f.num = NAN;
   ddpm_runlog_param p = {":run", 0, {DDPM_RUNLOG_INT, run, 0, NULL, 0}};
   int rc = ddpm_runlog_query(rl, sql, &p, strstr(sql, ":run") ? 1 : 0, first_cb, &f);
   if (rc != DDPM_OK) printf("# query failed: %s\n", ddpm_errmsg());
   return f;
}

/* ------------------------------------------------------------ sha256 */

static void test_sha256(void)
{
   char hex[65];
   ddpm_sha256_hex("abc", 3, hex);
   CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
         "sha256(\"abc\") is the FIPS 180-4 vector (%s)", hex);
   ddpm_sha256_hex("", 0, hex);
   CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
         "sha256(\"\")");
   const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
   ddpm_sha256_hex(two, strlen(two), hex);
   CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
         "sha256 of the 448-bit FIPS message (two blocks of padding)");
   /* One million 'a' fed in odd-sized pieces. */
   char chunk[997];
   memset(chunk, 'a', sizeof chunk);
   ddpm_sha256 c;
   unsigned char d[32];
   ddpm_sha256_init(&c);
   for (size_t left = 1000000; left;) {
      size_t n = left < sizeof chunk ? left : sizeof chunk;
      ddpm_sha256_update(&c, chunk, n);
      left -= n;
   }
   ddpm_sha256_final(&c, d);
   CHECK(d[0] == 0xcd && d[1] == 0xc7 && d[30] == 0x2c && d[31] == 0xd0,
         "sha256 of a million 'a' (cdc76e5c...7112cd0), streamed");
   int64_t bytes = -1;
   CHECK(ddpm_sha256_file(tmp("missing"), hex, &bytes) == DDPM_EIO &&
         strstr(ddpm_errmsg(), "missing"), "sha256 of a missing file: EIO naming it (%s)",
         ddpm_errmsg());
}

/* ------------------------------------------------------------ main run */

static const char *SCRIPT = "local ddpm = require 'ddpm'\nprint('train')\n";
static const char *CONFIG = "{\"T\":1000,\"lr\":0.0002,\"schedule\":\"linear\"}";

#define NSTEP 2500   /* x 2 names = 5000 metric rows */

static double loss_at(int s) { return s == 100 ? NAN : 1.0 / (1.0 + s) + s * 1e-9; }
static double lr_at(int s) { return s == 7 ? INFINITY : 2e-4 * (1.0 - s / 5000.0); }

typedef struct curve { int rows, bad; int64_t last_step; } curve;

static int curve_cb(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *v)
{
   curve *c = ud;
   if (!v) return 0;
   if (ncol != 3 || strcmp(names[0], "key") || strcmp(names[1], "step") || strcmp(names[2], "value"))
      { c->bad++; return 0; }
   int64_t step = v[1].i;
   int is_loss = strcmp(v[0].s, "loss") == 0;
   double want = is_loss ? loss_at((int)step) : lr_at((int)step);
   if (is_loss && step == 5) want = 42.5;                 /* the upserted value */
   if (isnan(want)) { if (v[2].type != DDPM_RUNLOG_NULL) c->bad++; }
   else if (v[2].type != DDPM_RUNLOG_REAL || v[2].d != want) c->bad++;
   c->rows++;
   c->last_step = step;
   return 0;
}

static int64_t test_main_run(ddpm_runlog *rl)
{
   ddpm_run_info info = {0};
   info.name = "baseline";
   info.experiment = "cifar10";
   info.script_path = "experiments/cifar10.lua";
   info.script_text = SCRIPT;
   info.config_json = CONFIG;
   info.seed = 1234;
   info.argv_json = "[\"ddpmlua\",\"experiments/cifar10.lua\"]";
   info.git_commit = "9881633";
   info.git_dirty = 1;
   info.version = "ddpmlua 0.1 test";
   int64_t run = 0;
   CHECK(ddpm_runlog_begin_run(rl, &info, &run) == DDPM_OK && run > 0, "begin_run -> run %lld", (long long)run);

   char want[65];
   ddpm_sha256_hex(SCRIPT, strlen(SCRIPT), want);
   first f = q1(rl, "SELECT script_sha256 FROM runs WHERE run_id = :run", run);
   CHECK(strcmp(f.text, want) == 0, "script_sha256 stored (%s)", f.text);
   f = q1(rl, "SELECT config_json ->> '$.schedule' FROM runs WHERE run_id = :run", run);
   CHECK(strcmp(f.text, "linear") == 0, "config_json stored and queryable as JSON");
   f = q1(rl, "SELECT status = 'running' AND seed = 1234 AND length(uuid) = 32 AND git_dirty = 1"
              " AND host IS NOT NULL AND heartbeat >= start_time AND script_text = '"
              "local ddpm = require ''ddpm''\nprint(''train'')\n' FROM runs WHERE run_id = :run", run);
   CHECK(f.num == 1, "status running, seed, uuid, host, heartbeat, script text");
   char pidq[128];
   snprintf(pidq, sizeof pidq, "SELECT pid = %d FROM runs WHERE run_id = :run", (int)getpid());
   CHECK(q1(rl, pidq, run).num == 1, "pid filled in");

   /* Bad run infos. */
   ddpm_run_info bad = info;
   int64_t id = 7;
   bad.config_json = "{\"lr\": 0.1,";
   CHECK(ddpm_runlog_begin_run(rl, &bad, &id) == DDPM_EINVAL && strstr(ddpm_errmsg(), "config_json")
         && id == 0, "invalid config_json refused (%s)", ddpm_errmsg());
   bad.config_json = "[1,2]";
   CHECK(ddpm_runlog_begin_run(rl, &bad, &id) == DDPM_EINVAL && strstr(ddpm_errmsg(), "object"),
         "config_json must be an object (%s)", ddpm_errmsg());
   bad = info;
   bad.parent_run_id = 999;
   CHECK(ddpm_runlog_begin_run(rl, &bad, &id) == DDPM_EINVAL && strstr(ddpm_errmsg(), "no run 999"),
         "unknown parent_run_id refused (%s)", ddpm_errmsg());
   bad = info;
   bad.argv_json = "not json";
   CHECK(ddpm_runlog_begin_run(rl, &bad, &id) == DDPM_EINVAL, "invalid argv_json refused");
   CHECK(ddpm_runlog_begin_run(rl, NULL, &id) == DDPM_EINVAL, "NULL info refused");

   /* 5000 metrics. */
   int rc = DDPM_OK;
   for (int s = 0; s < NSTEP && rc == DDPM_OK; s++) {
      rc = ddpm_runlog_log_metric(rl, run, "loss", s, loss_at(s));
      if (rc == DDPM_OK) rc = ddpm_runlog_log_metric(rl, run, "lr", s, lr_at(s));
   }
   CHECK(rc == DDPM_OK, "5000 log_metric calls (%s)", rc ? ddpm_errmsg() : "ok");
   CHECK(ddpm_runlog_pending(rl) < DDPM_RUNLOG_FLUSH_ROWS, "auto-flushed every %d rows (%zu pending)",
         DDPM_RUNLOG_FLUSH_ROWS, ddpm_runlog_pending(rl));
   CHECK(ddpm_runlog_log_metric(rl, run, "loss", 5, 42.5) == DDPM_OK, "re-log step 5");
   CHECK(ddpm_runlog_flush(rl) == DDPM_OK && ddpm_runlog_pending(rl) == 0, "flush empties the buffer");
   CHECK(ddpm_runlog_log_metric(rl, run, "", 1, 1.0) == DDPM_EINVAL, "empty metric name refused");
   CHECK(ddpm_runlog_log_metric(rl, 999, "loss", 1, 1.0) == DDPM_EINVAL &&
         strstr(ddpm_errmsg(), "no run 999"), "metric of an unknown run refused (%s)", ddpm_errmsg());

   curve c = {0, 0, -1};
   ddpm_runlog_param p = {"run", 0, {DDPM_RUNLOG_INT, run, 0, NULL, 0}};
   rc = ddpm_runlog_query(rl, "SELECT key, step, value FROM metrics_v WHERE run_id = :run"
                          " ORDER BY key, step", &p, 1, curve_cb, &c);
   CHECK(rc == DDPM_OK && c.rows == 2 * NSTEP && c.bad == 0,
         "metrics_v gives back all %d rows exactly, NaN as NULL, step 5 upserted (%d rows, %d bad)",
         2 * NSTEP, c.rows, c.bad);
   CHECK(q1(rl, "SELECT count(*) FROM metrics WHERE run_id = :run AND value IS NULL", run).num == 1,
         "exactly one NULL (the NaN)");
   CHECK(q1(rl, "SELECT value FROM metrics_v WHERE run_id = :run AND key = 'lr' AND step = 7", run).num
         == INFINITY, "+Inf stored as Inf");
   f = q1(rl, "SELECT value FROM run_tags WHERE run_id = :run AND key = 'nonfinite_step'", run);
   CHECK(strcmp(f.text, "7") == 0, "nonfinite_step tag = 7, the first non-finite step (%s)", f.text);

   /* latest_metrics: the highest step, not the last logged. */
   f = q1(rl, "SELECT step || ':' || value FROM latest_metrics JOIN metric_names USING (name_id)"
              " WHERE run_id = :run AND name = 'loss'", run);
   char lw[64];
   snprintf(lw, sizeof lw, "%d:", NSTEP - 1);
   CHECK(strncmp(f.text, lw, strlen(lw)) == 0, "latest_metrics holds step %d after an older upsert (%s)",
         NSTEP - 1, f.text);
   CHECK(q1(rl, "SELECT count(*) FROM latest_metrics WHERE run_id = :run", run).num == 2,
         "one latest row per metric name");
   ddpm_runlog_log_metric(rl, run, "loss", NSTEP + 10, 0.001);
   ddpm_runlog_flush(rl);
   CHECK(q1(rl, "SELECT step FROM latest_metrics JOIN metric_names USING (name_id) WHERE run_id = :run"
               " AND name = 'loss'", run).num == NSTEP + 10, "latest_metrics advances");
   CHECK(q1(rl, "SELECT heartbeat > start_time FROM runs WHERE run_id = :run", run).num == 1,
         "flush advanced the heartbeat");

   /* Files with known digests. */
   write_file(tmp("abc.ckpt"), "abc", 3);
   CHECK(ddpm_runlog_log_checkpoint(rl, run, 1000, tmp("abc.ckpt")) == DDPM_OK, "log_checkpoint");
   f = q1(rl, "SELECT sha256 || ' ' || bytes FROM checkpoints WHERE run_id = :run AND step = 1000", run);
   CHECK(strcmp(f.text, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3") == 0,
         "checkpoint sha256 and bytes of a known file (%s)", f.text);
   unsigned char *big = malloc(100000);
   for (int i = 0; i < 100000; i++) big[i] = (unsigned char)((i * 31 + 7) % 251);
   write_file(tmp("grid.png"), big, 100000);
   write_file(tmp("ckpt2000"), big, 100000);
   free(big);
   CHECK(ddpm_runlog_log_checkpoint(rl, run, 2000, tmp("ckpt2000")) == DDPM_OK &&
         ddpm_runlog_log_checkpoint(rl, run, 2000, tmp("ckpt2000")) == DDPM_OK,
         "logging a checkpoint step twice");
   CHECK(q1(rl, "SELECT count(*) FROM checkpoints WHERE run_id = :run", run).num == 2,
         "... replaces its row");
   f = q1(rl, "SELECT path FROM checkpoints WHERE run_id = :run ORDER BY step DESC LIMIT 1", run);
   CHECK(f.text[0] == '/' && strstr(f.text, "ckpt2000"), "latest checkpoint, stored absolute (%s)", f.text);
   CHECK(ddpm_runlog_log_checkpoint(rl, run, 3000, tmp("nope")) == DDPM_EIO &&
         strstr(ddpm_errmsg(), "nope"), "missing checkpoint file: EIO (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_log_artifact(rl, run, 2000, "sample_grid", tmp("grid.png"),
                                  "{\"nrow\":8,\"ema\":true}") == DDPM_OK, "log_artifact");
   f = q1(rl, "SELECT sha256 FROM artifacts WHERE run_id = :run AND kind = 'sample_grid'", run);
   CHECK(strcmp(f.text, "08d042cceab8034d08c870e707f331cac9f42321044406bcccd156c7258229ab") == 0,
         "artifact sha256 matches the file's (%s)", f.text);
   CHECK(q1(rl, "SELECT meta_json ->> '$.nrow' FROM artifacts WHERE run_id = :run", run).num == 8,
         "artifact meta_json queryable");
   CHECK(ddpm_runlog_log_artifact(rl, run, -1, "samples", dir, NULL) == DDPM_OK &&
         q1(rl, "SELECT sha256 IS NULL AND step IS NULL FROM artifacts WHERE kind = 'samples'", run).num == 1,
         "a directory artifact without step: sha256 and step NULL");
   CHECK(ddpm_runlog_log_artifact(rl, run, 1, "x", tmp("grid.png"), "{oops") == DDPM_EINVAL &&
         strstr(ddpm_errmsg(), "meta_json"), "invalid meta_json refused (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_log_artifact(rl, run, 1, "x", tmp("none.png"), NULL) == DDPM_EIO,
         "missing artifact file: EIO");
   CHECK(ddpm_runlog_log_artifact(rl, 999, 1, "x", tmp("grid.png"), NULL) == DDPM_EINVAL,
         "artifact of an unknown run refused");

   /* Tags and sources. */
   CHECK(ddpm_runlog_set_tag(rl, run, "note", "first") == DDPM_OK &&
         ddpm_runlog_set_tag(rl, run, "note", "second") == DDPM_OK &&
         strcmp(q1(rl, "SELECT value FROM run_tags WHERE run_id = :run AND key = 'note'", run).text,
                "second") == 0, "set_tag replaces");
   CHECK(ddpm_runlog_set_tag(rl, run, "", "x") == DDPM_EINVAL, "empty tag key refused");
   CHECK(ddpm_runlog_add_source(rl, run, "lib/ddpm/init.lua", "return {}") == DDPM_OK &&
         ddpm_runlog_add_source(rl, run, "lib/ddpm/nn.lua", "return {}") == DDPM_OK &&
         q1(rl, "SELECT count(*) FROM sources", run).num == 1 &&
         q1(rl, "SELECT count(*) FROM run_sources WHERE run_id = :run", run).num == 2,
         "sources are content-addressed");
   return run;
}

static void test_statuses(ddpm_runlog *rl, int64_t run)
{
   ddpm_run_info info = {0};
   info.script_text = SCRIPT;
   int64_t r2, r3;
   info.parent_run_id = run;
   CHECK(ddpm_runlog_begin_run(rl, &info, &r2) == DDPM_OK, "a resumed run with a parent");
   info.parent_run_id = 0;
   ddpm_runlog_begin_run(rl, &info, &r3);
   CHECK(ddpm_runlog_end_run(rl, run, "done", NULL) == DDPM_EINVAL && strstr(ddpm_errmsg(), "done"),
         "unknown status refused (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_end_run(rl, run, "finished", NULL) == DDPM_OK, "end_run finished");
   CHECK(ddpm_runlog_end_run(rl, r2, "failed", "stack traceback:\n\t[C]: in ?") == DDPM_OK,
         "end_run failed with a traceback");
   CHECK(ddpm_runlog_end_run(rl, r3, "interrupted", NULL) == DDPM_OK, "end_run interrupted");
   CHECK(ddpm_runlog_end_run(rl, run, "failed", NULL) == DDPM_EINVAL &&
         strstr(ddpm_errmsg(), "already ended (finished)"), "ending twice refused (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_end_run(rl, 999, "failed", NULL) == DDPM_EINVAL, "ending an unknown run refused");
   first f = q1(rl, "SELECT group_concat(status, ',') FROM (SELECT status FROM runs ORDER BY run_id)", 0);
   CHECK(strcmp(f.text, "finished,failed,interrupted") == 0, "statuses stored (%s)", f.text);
   CHECK(q1(rl, "SELECT count(*) FROM runs WHERE end_time >= start_time AND error_text LIKE 'stack%'",
            0).num == 1, "end_time and error_text");
   CHECK(ddpm_runlog_log_metric(rl, run, "fid", 0, 3.17) == DDPM_OK && ddpm_runlog_flush(rl) == DDPM_OK,
         "a finished run can still get metrics (evaluation)");
}

/* ------------------------------------------------------------ queries */

typedef struct stopper { int rows; } stopper;

typedef struct header { int headers, rows, ncol; char first[32]; } header;

static int header_cb(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *v)
{
   header *h = ud;
   if (v) { h->rows++; return 0; }
   h->headers++;
   h->ncol = ncol;
   snprintf(h->first, sizeof h->first, "%s", names[0]);
   return 0;
}

static int stop_cb(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *v)
{
   (void)ncol; (void)names;
   if (!v) return 0;
   return ++((stopper *)ud)->rows == 3 ? 77 : 0;
}

static void test_queries(ddpm_runlog *rl)
{
   int rc = ddpm_runlog_query(rl, "SELEC run_id FROM runs", NULL, 0, NULL, NULL);
   CHECK(rc == DDPM_ESQL && strstr(ddpm_errmsg(), "syntax error"),
         "malformed SQL: DDPM_ESQL with SQLite's message (%s)", ddpm_errmsg());
   rc = ddpm_runlog_query(rl, "SELECT nosuchcol FROM runs", NULL, 0, NULL, NULL);
   CHECK(rc == DDPM_ESQL && strstr(ddpm_errmsg(), "no such column"), "unknown column (%s)", ddpm_errmsg());
   rc = ddpm_runlog_query(rl, "SELECT 1; SELECT 2", NULL, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), "one SQL statement"), "two statements refused (%s)",
         ddpm_errmsg());
   CHECK(ddpm_runlog_query(rl, "SELECT 1; -- comment\n ;", NULL, 0, NULL, NULL) == DDPM_OK,
         "trailing ; and comments are fine");
   CHECK(ddpm_runlog_query(rl, "  -- nothing", NULL, 0, NULL, NULL) == DDPM_EINVAL, "no statement refused");
   rc = ddpm_runlog_query(rl, "SELECT * FROM runs WHERE run_id = :run", NULL, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), ":run"), "unbound parameter refused (%s)", ddpm_errmsg());
   ddpm_runlog_param p = {"nope", 0, {DDPM_RUNLOG_INT, 1, 0, NULL, 0}};
   rc = ddpm_runlog_query(rl, "SELECT 1", &p, 1, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), "nope"), "unknown named parameter refused (%s)",
         ddpm_errmsg());
   ddpm_runlog_param pos[2] = {{NULL, 1, {DDPM_RUNLOG_TEXT, 0, 0, "ab", 2}},
                               {NULL, 2, {DDPM_RUNLOG_REAL, 0, 2.5, NULL, 0}}};
   first f;
   memset(&f, 0, sizeof f);
   rc = ddpm_runlog_query(rl, "SELECT ?1 || '/' || ?2", pos, 2, first_cb, &f);
   CHECK(rc == DDPM_OK && strcmp(f.text, "ab/2.5") == 0, "positional parameters (%s)", f.text);
   pos[0].index = 3;
   CHECK(ddpm_runlog_query(rl, "SELECT ?1, ?2", pos, 2, NULL, NULL) == DDPM_EINVAL,
         "parameter index out of range refused");
   stopper s = {0};
   rc = ddpm_runlog_query(rl, "SELECT step FROM metrics", NULL, 0, stop_cb, &s);
   CHECK(rc == 77 && s.rows == 3, "a callback's nonzero return stops the query and is returned");
   header h = {0};
   rc = ddpm_runlog_query(rl, "SELECT run_id AS a, name AS b FROM runs WHERE 0", NULL, 0, header_cb, &h);
   CHECK(rc == DDPM_OK && h.headers == 1 && h.rows == 0 && h.ncol == 2 && strcmp(h.first, "a") == 0,
         "an empty result still reports its column names");
   rc = ddpm_runlog_query(rl, "BEGIN", NULL, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), "transaction"), "a query may not leave a "
         "transaction open (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_log_metric(rl, 1, "after_begin", 0, 1) == DDPM_OK && ddpm_runlog_flush(rl) == DDPM_OK,
         "... and flushes work afterwards");
   ddpm_interrupt_set();
   rc = ddpm_runlog_query(rl, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                          " WHERE x < 100000000) SELECT count(*) FROM c", NULL, 0, NULL, NULL);
   ddpm_interrupt_clear();
   CHECK(rc == DDPM_EINTR, "Ctrl-C stops a long query (%s)", ddpm_errmsg());
   CHECK(ddpm_runlog_query(rl, "DELETE FROM run_tags WHERE key = 'zzz'", NULL, 0, NULL, NULL) == DDPM_OK,
         "a write statement runs");
}

/* ------------------------------------------------------------ failures */

static void test_schema(const char *path)
{
   sqlite3 *db;
   sqlite3_open(path, &db);
   first f = {0};
   const char *want[] = {"runs", "run_tags", "sources", "run_sources", "metric_names", "metrics",
                         "metrics_v", "latest_metrics", "checkpoints", "artifacts"};
   int all = 1;
   for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
      char sql[128];
      sqlite3_stmt *st;
      snprintf(sql, sizeof sql, "SELECT 1 FROM sqlite_schema WHERE name = '%s'", want[i]);
      sqlite3_prepare_v2(db, sql, -1, &st, NULL);
      if (sqlite3_step(st) != SQLITE_ROW) { all = 0; printf("# missing %s\n", want[i]); }
      sqlite3_finalize(st);
   }
   CHECK(all, "schema: every table and the metrics_v view exist");
   sqlite3_stmt *st;
   sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version) || ' ' ||"
                      " (SELECT journal_mode FROM pragma_journal_mode) || ' ' ||"
                      " (SELECT application_id FROM pragma_application_id)", -1, &st, NULL);
   if (sqlite3_step(st) == SQLITE_ROW) snprintf(f.text, sizeof f.text, "%s", sqlite3_column_text(st, 0));
   sqlite3_finalize(st);
   char w[64];
   snprintf(w, sizeof w, "%d wal %d", DDPM_RUNLOG_SCHEMA_VERSION, DDPM_RUNLOG_APPLICATION_ID);
   CHECK(strcmp(f.text, w) == 0, "user_version, WAL and application_id set (%s)", f.text);
   sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT value FROM metrics WHERE run_id = 1 AND"
                      " name_id = 1 ORDER BY step", -1, &st, NULL);
   f.text[0] = '\0';
   if (sqlite3_step(st) == SQLITE_ROW) snprintf(f.text, sizeof f.text, "%s", sqlite3_column_text(st, 3));
   sqlite3_finalize(st);
   CHECK(strstr(f.text, "PRIMARY KEY") != NULL, "a loss curve is a primary-key range scan (%s)", f.text);
   sqlite3_close(db);
}

static void test_refusals(void)
{
   sqlite3 *db;
   sqlite3_open(tmp("newer.db"), &db);
   sqlite3_exec(db, "CREATE TABLE x(a); PRAGMA user_version = 99;", NULL, NULL, NULL);
   sqlite3_close(db);
   ddpm_runlog *rl = ddpm_runlog_open(tmp("newer.db"));
   CHECK(!rl && strstr(ddpm_errmsg(), "newer") && strstr(ddpm_errmsg(), "99"),
         "a newer schema version is refused (%s)", ddpm_errmsg());
   ddpm_runlog_close(rl);

   sqlite3_open(tmp("other.db"), &db);
   sqlite3_exec(db, "CREATE TABLE runs(a);", NULL, NULL, NULL);
   sqlite3_close(db);
   rl = ddpm_runlog_open(tmp("other.db"));
   CHECK(!rl && strstr(ddpm_errmsg(), "not a ddpmlua run store"),
         "another application's database is refused (%s)", ddpm_errmsg());

   unsigned char junk[8192];
   unsigned s = 12345;
   for (size_t i = 0; i < sizeof junk; i++) { s = s * 1103515245u + 12345u; junk[i] = (unsigned char)(s >> 16); }
   write_file(tmp("random.db"), junk, sizeof junk);
   rl = ddpm_runlog_open(tmp("random.db"));
   CHECK(!rl && strstr(ddpm_errmsg(), "random.db") && strstr(ddpm_errmsg(), "not a database"),
         "a file of random bytes: clear error (%s)", ddpm_errmsg());

   /* A real store whose pages after the header are overwritten. */
   rl = ddpm_runlog_open(tmp("corrupt.db"));
   ddpm_run_info info = {0};
   int64_t run;
   ddpm_runlog_begin_run(rl, &info, &run);
   for (int i = 0; i < 3000; i++) ddpm_runlog_log_metric(rl, run, "loss", i, i);
   ddpm_runlog_close(rl);
   int fd = open(tmp("corrupt.db"), O_WRONLY);
   struct stat sb;
   fstat(fd, &sb);
   for (off_t off = 100; off + 512 <= sb.st_size; off += 1024) {
      if (pwrite(fd, junk, 512, off) != 512) break;
   }
   close(fd);
   rl = ddpm_runlog_open(tmp("corrupt.db"));
   int rc = rl ? ddpm_runlog_query(rl, "SELECT sum(value) FROM metrics_v", NULL, 0, NULL, NULL)
               : DDPM_ESQL;
   CHECK(rc != DDPM_OK && (strstr(ddpm_errmsg(), "malformed") || strstr(ddpm_errmsg(), "not a database")),
         "a corrupted store: error, no crash (%s)", ddpm_errmsg());
   ddpm_runlog_close(rl);

   CHECK(!ddpm_runlog_open(tmp("no/such/dir/x.db")) && strstr(ddpm_errmsg(), "unable to open"),
         "a path in a missing directory (%s)", ddpm_errmsg());
   CHECK(!ddpm_runlog_open(NULL) && !ddpm_runlog_open(""), "NULL / empty path refused");
   CHECK(ddpm_runlog_close(NULL) == DDPM_OK && ddpm_runlog_flush(NULL) == DDPM_EINVAL,
         "close(NULL) is fine, flush(NULL) an error");
}

static void test_contention(ddpm_runlog *rl, const char *path)
{
   sqlite3 *other;
   sqlite3_open(path, &other);
   /* A reader in a long read transaction does not block the writer (WAL). */
   sqlite3_exec(other, "BEGIN; SELECT count(*) FROM metrics;", NULL, NULL, NULL);
   ddpm_runlog_log_metric(rl, 1, "contention", 0, 1.0);
   CHECK(ddpm_runlog_flush(rl) == DDPM_OK, "flush while another connection holds a read transaction");
   sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);

   /* A writer holding the lock past busy_timeout: the rows wait. */
   sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
   ddpm_runlog_log_metric(rl, 1, "contention", 1, 2.0);
   ddpm_runlog_log_metric(rl, 1, "contention", 2, 3.0);
   int rc = ddpm_runlog_flush(rl);
   CHECK(rc == DDPM_ESQL && strstr(ddpm_errmsg(), "locked") && ddpm_runlog_pending(rl) == 2,
         "flush blocked > 5 s: error, rows kept (%s)", ddpm_errmsg());
   sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
   CHECK(ddpm_runlog_flush(rl) == DDPM_OK && ddpm_runlog_pending(rl) == 0 &&
         q1(rl, "SELECT count(*) FROM metrics_v WHERE key = 'contention'", 0).num == 3,
         "... and written by the next flush");

   /* A run deleted behind our back: the batch can never succeed. */
   ddpm_run_info info = {0};
   int64_t run;
   ddpm_runlog_begin_run(rl, &info, &run);
   ddpm_runlog_log_metric(rl, run, "loss", 0, 1.0);
   char sql[96];
   snprintf(sql, sizeof sql, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE run_id = %lld", (long long)run);
   sqlite3_exec(other, sql, NULL, NULL, NULL);
   rc = ddpm_runlog_flush(rl);
   CHECK(rc == DDPM_ESQL && strstr(ddpm_errmsg(), "FOREIGN KEY") && strstr(ddpm_errmsg(), "dropped") &&
         ddpm_runlog_pending(rl) == 0, "flush into a deleted run: constraint error, rows dropped (%s)",
         ddpm_errmsg());
   CHECK(ddpm_runlog_log_metric(rl, 1, "loss", 99999, 1.0) == DDPM_OK && ddpm_runlog_flush(rl) == DDPM_OK,
         "the log still works afterwards");
   sqlite3_close(other);
}

/* ------------------------------------------------------------ processes */

#define CHILD_STEPS 3000   /* x 2 names per child */

static int child(const char *path, int gate, int k)
{
   char c;
   if (read(gate, &c, 1) != 1) return 2;
   ddpm_runlog *rl = ddpm_runlog_open(path);
   if (!rl) { fprintf(stderr, "child %d open: %s\n", k, ddpm_errmsg()); return 1; }
   ddpm_run_info info = {0};
   info.name = k ? "child-b" : "child-a";
   info.script_text = SCRIPT;
   info.seed = k;
   int64_t run;
   int rc = ddpm_runlog_begin_run(rl, &info, &run);
   for (int s = 0; s < CHILD_STEPS && rc == DDPM_OK; s++) {
      rc = ddpm_runlog_log_metric(rl, run, "loss", s, 1.0 / (s + 1));
      if (rc == DDPM_OK) rc = ddpm_runlog_log_metric(rl, run, k ? "loss_b" : "loss_a", s, s);
      if (rc == DDPM_OK && s % 97 == 0) rc = ddpm_runlog_flush(rl);   /* many small commits */
   }
   if (rc == DDPM_OK) rc = ddpm_runlog_end_run(rl, run, "finished", NULL);
   if (rc != DDPM_OK) fprintf(stderr, "child %d: %s\n", k, ddpm_errmsg());
   int crc = ddpm_runlog_close(rl);
   return rc != DDPM_OK || crc != DDPM_OK;
}

static void test_two_processes(void)
{
   const char *path = tmp("shared.db");   /* new: both children race to create it */
   int gate[2];
   if (pipe(gate) != 0) { CHECK(0, "pipe"); return; }
   fflush(stdout);
   pid_t pids[2];
   for (int k = 0; k < 2; k++) {
      pids[k] = fork();
      if (pids[k] == 0) { close(gate[1]); _exit(child(path, gate[0], k)); }
   }
   close(gate[0]);
   if (write(gate[1], "go", 2) != 2) CHECK(0, "gate");
   close(gate[1]);
   int ok = 1;
   for (int k = 0; k < 2; k++) {
      int st = 0;
      waitpid(pids[k], &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = 0;
   }
   CHECK(ok, "two processes created and wrote one new store at the same time, both succeeded");
   ddpm_runlog *rl = ddpm_runlog_open(path);
   CHECK(rl != NULL, "open the shared store");
   if (!rl) return;
   CHECK(q1(rl, "SELECT count(*) FROM runs WHERE status = 'finished'", 0).num == 2, "both runs finished");
   CHECK(q1(rl, "SELECT count(*) FROM metrics_v m JOIN runs r USING (run_id) WHERE r.name = 'child-a'", 0).num
         == 2 * CHILD_STEPS, "all %d rows of process A present", 2 * CHILD_STEPS);
   CHECK(q1(rl, "SELECT count(*) FROM metrics_v m JOIN runs r USING (run_id) WHERE r.name = 'child-b'", 0).num
         == 2 * CHILD_STEPS, "all %d rows of process B present", 2 * CHILD_STEPS);
   CHECK(q1(rl, "SELECT count(*) FROM metric_names", 0).num == 3, "names interned once: loss, loss_a, loss_b");
   ddpm_runlog_close(rl);
}

static void test_crash_detection(void)
{
   const char *path = tmp("crash.db");
   ddpm_runlog *rl = ddpm_runlog_open(path);
   ddpm_run_info info = {0};
   int64_t dead_run, live_run, reused_run, remote_run;
   ddpm_runlog_begin_run(rl, &info, &dead_run);
   ddpm_runlog_begin_run(rl, &info, &live_run);
   ddpm_runlog_begin_run(rl, &info, &reused_run);
   ddpm_runlog_begin_run(rl, &info, &remote_run);
   ddpm_runlog_close(rl);
   pid_t gone = fork();
   if (gone == 0) _exit(0);
   waitpid(gone, NULL, 0);
   sqlite3 *db;
   sqlite3_open(path, &db);
   char sql[512];
   /* dead: its pid is gone; live: this process; reused: this pid, but a
      process that started at another time; remote: a dead pid of another
      host, which cannot be judged from here. */
   snprintf(sql, sizeof sql,
            "UPDATE runs SET pid = %d WHERE run_id IN (%lld, %lld);"
            "UPDATE runs SET env_json = json_set(env_json, '$.proc_start',"
            " env_json ->> '$.proc_start' + 1) WHERE run_id = %lld;"
            "UPDATE runs SET host = 'elsewhere.example' WHERE run_id = %lld;",
            (int)gone, (long long)dead_run, (long long)remote_run, (long long)reused_run,
            (long long)remote_run);
   CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "set up four runs");
   CHECK(ddpm_proc_start_time(0) > 0 && ddpm_proc_start_time(getpid()) == ddpm_proc_start_time(0),
         "this process's start time is read from /proc (%lld)", (long long)ddpm_proc_start_time(0));
   rl = ddpm_runlog_open_readonly(path);
   first f = q1(rl, "SELECT group_concat(status, ',') FROM (SELECT status FROM runs ORDER BY run_id)", 0);
   CHECK(strcmp(f.text, "crashed,running,crashed,running") == 0,
         "a reader sees a dead or reused local pid's run as 'crashed' at once (%s)", f.text);
   f = q1(rl, "SELECT error_text FROM runs WHERE run_id = :run", dead_run);
   CHECK(strstr(f.text, "exited without ending the run") != NULL, "with a reason (%s)", f.text);
   ddpm_runlog_close(rl);
   sqlite3_stmt *st;
   sqlite3_prepare_v2(db, "SELECT group_concat(status, ',') FROM runs", -1, &st, NULL);
   sqlite3_step(st);
   CHECK(strcmp((const char *)sqlite3_column_text(st, 0), "running,running,running,running") == 0,
         "the reader wrote nothing (%s)", (const char *)sqlite3_column_text(st, 0));
   sqlite3_finalize(st);
   sqlite3_close(db);
   rl = ddpm_runlog_open(path);
   f = q1(rl, "SELECT group_concat(status, ',') FROM (SELECT status FROM runs ORDER BY run_id)", 0);
   CHECK(strcmp(f.text, "crashed,running,crashed,running") == 0,
         "a writer records the same verdict at open (%s)", f.text);
   f = q1(rl, "SELECT error_text FROM runs WHERE run_id = :run", dead_run);
   CHECK(strstr(f.text, "exited without ending the run") != NULL, "with a reason (%s)", f.text);
   CHECK(ddpm_runlog_end_run(rl, dead_run, "finished", NULL) == DDPM_OK,
         "a run judged crashed can still be ended by its process");
   ddpm_runlog_close(rl);
}

static int count_rows(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *vals)
{
   if (vals) ++*(int *)ud;
   return 0;
}

static void test_readonly(void)
{
   const char *path = tmp("ro.db");
   ddpm_runlog *rl = ddpm_runlog_open(path);
   ddpm_run_info info = {0};
   int64_t id;
   ddpm_runlog_begin_run(rl, &info, &id);
   ddpm_runlog_log_metric(rl, id, "loss", 1, 0.5);
   ddpm_runlog_end_run(rl, id, "finished", NULL);
   ddpm_runlog_close(rl);
   struct stat before, after;
   stat(path, &before);
   char sum0[65], sum1[65];
   int64_t nbytes;
   ddpm_sha256_file(path, sum0, &nbytes);

   rl = ddpm_runlog_open_readonly(path);
   CHECK(rl && ddpm_runlog_readonly(rl), "an existing store opens read-only");
   int n = 0;
   CHECK(ddpm_runlog_query(rl, "SELECT * FROM metrics_v", NULL, 0, count_rows, &n) == DDPM_OK && n == 1,
         "and reads (%d row)", n);
   static const char *const writes[] = {"DROP TABLE metrics", "DELETE FROM runs",
      "UPDATE runs SET name = 'x'", "PRAGMA user_version = 7", "VACUUM",
      "CREATE TABLE t (a)", "INSERT INTO metric_names (name) VALUES ('z')"};
   for (size_t i = 0; i < sizeof writes / sizeof *writes; i++) {
      int rc = ddpm_runlog_query(rl, writes[i], NULL, 0, NULL, NULL);
      CHECK(rc != DDPM_OK && strstr(ddpm_errmsg(), "read-only"),
            "refuses \"%s\" (%s)", writes[i], ddpm_errmsg());
   }
   CHECK(ddpm_runlog_log_metric(rl, id, "loss", 2, 0.25) != DDPM_OK ||
         ddpm_runlog_flush(rl) != DDPM_OK, "logging through a read-only store fails");
   ddpm_runlog_close(rl);
   stat(path, &after);
   ddpm_sha256_file(path, sum1, &nbytes);
   CHECK(strcmp(sum0, sum1) == 0 && before.st_mtime == after.st_mtime,
         "the file is unchanged byte for byte after reads, refused writes and close");
   rl = ddpm_runlog_open(path);
   n = 0;
   ddpm_runlog_query(rl, "SELECT * FROM metrics_v", NULL, 0, count_rows, &n);
   CHECK(n == 1, "the history is intact (%d metric row)", n);
   ddpm_runlog_close(rl);

   const char *missing = tmp("missing.db");
   CHECK(ddpm_runlog_open_readonly(missing) == NULL && strstr(ddpm_errmsg(), "missing.db"),
         "a missing store is an error naming it (%s)", ddpm_errmsg());
   CHECK(access(missing, F_OK) != 0, "and is not created");
   CHECK(ddpm_runlog_open_readonly(dir) == NULL && strstr(ddpm_errmsg(), "not a file"),
         "a folder is refused (%s)", ddpm_errmsg());
   const char *empty = tmp("empty.db");
   FILE *e = fopen(empty, "wb");
   fclose(e);
   CHECK(ddpm_runlog_open_readonly(empty) == NULL, "an empty file is not a store (%s)", ddpm_errmsg());
   stat(empty, &after);
   CHECK(after.st_size == 0, "and stays empty");
}

int main(void)
{
   snprintf(dir, sizeof dir, "/tmp/test_runlog.XXXXXX");
   if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
   printf("# temp dir %s\n", dir);

   test_sha256();
   char path[PATH_MAX];
   snprintf(path, sizeof path, "%s", tmp("runs.db"));
   ddpm_runlog *rl = ddpm_runlog_open(path);
   CHECK(rl != NULL, "open a new store (%s)", rl ? "ok" : ddpm_errmsg());
   if (!rl) return check_done();
   test_schema(path);
   int64_t run = test_main_run(rl);
   test_statuses(rl, run);
   test_queries(rl);
   ddpm_runlog_log_metric(rl, run, "pending_at_close", 1, 1.0);
   CHECK(ddpm_runlog_close(rl) == DDPM_OK, "close flushes");

   rl = ddpm_runlog_open(path);
   CHECK(rl != NULL, "reopen an existing store (%s)", rl ? "ok" : ddpm_errmsg());
   if (rl) {
      CHECK(q1(rl, "SELECT count(*) FROM metrics_v WHERE run_id = :run AND key IN ('loss', 'lr')", run).num
            == 2 * NSTEP + 1, "reopened: metrics kept");
      CHECK(q1(rl, "SELECT count(*) FROM metrics_v WHERE key = 'pending_at_close'", 0).num == 1,
            "reopened: the row buffered at close was written");
      CHECK(q1(rl, "SELECT status FROM runs WHERE run_id = :run", run).text[0] == 'f',
            "reopened: status kept");
      test_contention(rl, path);
      ddpm_runlog_close(rl);
   }
   test_refusals();
   test_two_processes();
   test_crash_detection();
   test_readonly();

   char cmd[PATH_MAX + 16];
   snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
   if (system(cmd) != 0) printf("# could not remove %s\n", dir);
   return check_done();
}
