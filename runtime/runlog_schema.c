/*
 * runlog_schema.c — the run store's schema as a list of migrations, and the
 * migration that brings a file up to DDPM_RUNLOG_SCHEMA_VERSION (see
 * docs/design.md §3 for why the schema looks so).
 */
#include "runlog_internal.h"

#include <stdio.h>

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

int ddpm_runlog_migrate(ddpm_runlog *rl)
{
   const char *what = rl->path;
   int64_t version, app, ntables;
   int rc = ddpm_runlog_exec_plain(rl, what, "BEGIN IMMEDIATE");
   if (rc != DDPM_OK) return rc;
   /* Read again under the write lock: another process may have migrated. */
   if ((rc = ddpm_runlog_pragma_int(rl, what, "PRAGMA user_version", &version)) != DDPM_OK ||
       (rc = ddpm_runlog_pragma_int(rl, what, "PRAGMA application_id", &app)) != DDPM_OK ||
       (rc = ddpm_runlog_pragma_int(rl, what, "SELECT count(*) FROM sqlite_schema",
                                    &ntables)) != DDPM_OK)
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
      if ((rc = ddpm_runlog_exec_plain(rl, what, migrations[version])) != DDPM_OK) goto fail;
   char sql[128];
   snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
            DDPM_RUNLOG_SCHEMA_VERSION, DDPM_RUNLOG_APPLICATION_ID);
   if ((rc = ddpm_runlog_exec_plain(rl, what, sql)) != DDPM_OK) goto fail;
   if ((rc = ddpm_runlog_exec_plain(rl, what, "COMMIT")) != DDPM_OK) goto fail;
   return DDPM_OK;
fail:
   ddpm_runlog_rollback(rl);
   return rc;
}
