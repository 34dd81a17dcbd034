-- scripts/queries.sql — everyday questions about runs.db (schema: runtime/runlog.h).
--
--   sqlite3 -box runs.db                   then, inside the shell:
--   .param set :run 42                     the run to look at   (default: the newest run)
--   .param set :run_b 41                   second run of a diff (default: the one before :run)
--   .param set :metric 'loss'              metric name          (default: 'loss')
--   .param set :config_key 'schedule'      config field         (default: 'schedule')
--   .param set :every 100                  keep every Nth step  (default: 1)
--   .read scripts/queries.sql              runs them all; or paste the one you need
--
-- Parameters left unset are NULL, so each query falls back to its default with
-- coalesce(). One-off from the command line:
--   sqlite3 -box runs.db ".param set :run 3" "SELECT step, value FROM metrics_v WHERE run_id = :run AND key = 'loss'"
--   sqlite3 -csv -header runs.db "SELECT step, value FROM metrics_v WHERE run_id = 3 AND key = 'loss'" > loss.csv
-- From Lua: log:query(sql, {run = 42, metric = 'loss'}) with one statement;
-- there every :name in the statement must be given a value.
-- Needs SQLite >= 3.39 (->>, unixepoch(), FULL OUTER JOIN); Debian 12 has 3.40.

-- 1. Runs, newest first: status, duration and the last value of :metric
SELECT r.run_id, r.name, r.experiment, r.status, r.seed,
       datetime(r.start_time, 'unixepoch', 'localtime') AS started,
       round((coalesce(r.end_time, r.heartbeat, r.start_time) - r.start_time) / 60.0, 1) AS minutes,
       lm.step AS last_step, lm.value AS last_value
FROM runs r
LEFT JOIN latest_metrics lm ON lm.run_id = r.run_id
     AND lm.name_id = (SELECT name_id FROM metric_names WHERE name = coalesce(:metric, 'loss'))
ORDER BY r.start_time DESC
LIMIT 20;

-- 2. Loss curve of :run (every :every-th step), for plotting or CSV export
SELECT step, value
FROM metrics_v
WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
  AND key = coalesce(:metric, 'loss')
  AND step % coalesce(:every, 1) = 0
ORDER BY step;

-- 3. Smoothed loss of :run: moving average over the last 50 logged points (NaN rows skipped),
--    shown every :every-th step
SELECT step, value, smooth
FROM (SELECT step, value,
             round(avg(value) OVER (ORDER BY step ROWS BETWEEN 49 PRECEDING AND CURRENT ROW), 6)
                AS smooth
      FROM metrics_v
      WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
        AND key = coalesce(:metric, 'loss'))
WHERE step % coalesce(:every, 1) = 0
ORDER BY step;

-- 4. Throughput of :run: steps per second since the previous shown point (every :every-th
--    step), from the wall time at which each value was logged
SELECT step,
       round((step - lag(step) OVER w) / (wall_time - lag(wall_time) OVER w), 2) AS steps_per_s,
       datetime(wall_time, 'unixepoch', 'localtime') AS at
FROM metrics_v
WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
  AND key = coalesce(:metric, 'loss')
  AND step % coalesce(:every, 1) = 0
WINDOW w AS (ORDER BY step)
ORDER BY step;

-- 5. Every metric of :run summarised: points, first/last step and value, min, max, NaN count
SELECT n.name AS key, count(*) AS points,
       min(m.step) AS first_step, max(m.step) AS last_step,
       (SELECT f.value FROM metrics f WHERE f.run_id = m.run_id AND f.name_id = m.name_id
        ORDER BY f.step LIMIT 1) AS first,
       (SELECT f.value FROM metrics f WHERE f.run_id = m.run_id AND f.name_id = m.name_id
        ORDER BY f.step DESC LIMIT 1) AS last,
       min(m.value) AS min, max(m.value) AS max,
       count(*) - count(m.value) AS nan
FROM metrics m JOIN metric_names n USING (name_id)
WHERE m.run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
GROUP BY m.name_id
ORDER BY key;

-- 6. Best (lowest) :metric per value of config field :config_key, and the run that reached it
--    (use max() instead of min() for higher-is-better metrics)
SELECT r.config_json ->> ('$.' || coalesce(:config_key, 'schedule')) AS config_value,
       count(DISTINCT r.run_id) AS runs,
       min(m.value) AS best,
       r.run_id AS best_run, r.name, m.step AS at_step
FROM runs r
JOIN metrics m ON m.run_id = r.run_id
     AND m.name_id = (SELECT name_id FROM metric_names WHERE name = coalesce(:metric, 'loss'))
WHERE r.status <> 'failed'
GROUP BY config_value
ORDER BY best;

-- 7. Config diff of :run and :run_b: every leaf that differs (json_tree walks nested
--    objects and arrays; json_each instead of json_tree compares top-level keys only)
SELECT coalesce(a.key, b.key) AS key, a.value AS run_a, b.value AS run_b
FROM (SELECT fullkey AS key, type, atom AS value
      FROM json_tree((SELECT config_json FROM runs
                      WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))))
      WHERE type NOT IN ('object', 'array')) a
FULL OUTER JOIN
     (SELECT fullkey AS key, type, atom AS value
      FROM json_tree((SELECT config_json FROM runs
                      WHERE run_id = coalesce(:run_b, (SELECT max(run_id) FROM runs
                            WHERE run_id < coalesce(:run, (SELECT max(run_id) FROM runs))))))
      WHERE type NOT IN ('object', 'array')) b USING (key)
WHERE a.type IS NOT b.type OR a.value IS NOT b.value
ORDER BY key;

-- 8. Stale runs: still 'running' but silent for over 2 minutes (crashed elsewhere, or hung)
SELECT run_id, name, host, pid,
       datetime(coalesce(heartbeat, start_time), 'unixepoch', 'localtime') AS last_heartbeat,
       round(unixepoch() - coalesce(heartbeat, start_time)) AS silent_s
FROM runs
WHERE status = 'running' AND coalesce(heartbeat, start_time) < unixepoch() - 120
ORDER BY last_heartbeat;

-- 9. Latest checkpoint of :run, to resume from
SELECT step, path, sha256, bytes, datetime(created, 'unixepoch', 'localtime') AS saved
FROM checkpoints
WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
ORDER BY step DESC
LIMIT 1;

-- 10. All runs of the same script as :run (same bytes, by sha256), newest first, with last :metric
SELECT r.run_id, r.name, r.seed, r.status, r.config_sha256 = s.config_sha256 AS same_config,
       datetime(r.start_time, 'unixepoch', 'localtime') AS started,
       lm.step AS last_step, lm.value AS last_value
FROM runs r
JOIN runs s ON s.run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
           AND r.script_sha256 = s.script_sha256
LEFT JOIN latest_metrics lm ON lm.run_id = r.run_id
     AND lm.name_id = (SELECT name_id FROM metric_names WHERE name = coalesce(:metric, 'loss'))
ORDER BY r.start_time DESC;

-- 11. Artifacts of :run (sample grids, progressions, FD statistics, stdout)
SELECT artifact_id, step, kind, path, substr(sha256, 1, 12) AS sha256, meta_json,
       datetime(created, 'unixepoch', 'localtime') AS created
FROM artifacts
WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
ORDER BY kind, step;

-- 12. Seeds of one configuration: final :metric over runs with identical config_json
SELECT substr(r.config_sha256, 1, 12) AS config, count(*) AS runs,
       group_concat(r.seed, ',') AS seeds,
       round(avg(lm.value), 6) AS mean_last, min(lm.value) AS best_last, max(lm.value) AS worst_last
FROM runs r
JOIN latest_metrics lm ON lm.run_id = r.run_id
     AND lm.name_id = (SELECT name_id FROM metric_names WHERE name = coalesce(:metric, 'loss'))
GROUP BY r.config_sha256
ORDER BY mean_last;

-- 13. Runs that went wrong: diverged (first NaN/Inf step), failed, crashed or interrupted
SELECT r.run_id, r.name, r.status, t.value AS first_nonfinite_step,
       substr(r.error_text, 1, instr(r.error_text || char(10), char(10)) - 1) AS error
FROM runs r
LEFT JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'nonfinite_step'
WHERE t.value IS NOT NULL OR r.status IN ('failed', 'crashed', 'interrupted')
ORDER BY r.run_id DESC;

-- 14. Resume chain of :run: the run, its parent, the parent's parent, ...
WITH RECURSIVE chain(run_id, parent_run_id, depth) AS (
   SELECT run_id, parent_run_id, 0 FROM runs
   WHERE run_id = coalesce(:run, (SELECT max(run_id) FROM runs))
   UNION ALL
   SELECT r.run_id, r.parent_run_id, c.depth + 1
   FROM runs r JOIN chain c ON r.run_id = c.parent_run_id
)
SELECT c.depth, r.run_id, r.name, r.status,
       (SELECT max(step) FROM checkpoints k WHERE k.run_id = r.run_id) AS last_checkpoint
FROM chain c JOIN runs r USING (run_id)
ORDER BY c.depth;

-- 15. The Table 2 ablation (experiments/ablation_loss.lua, ablation_sigma.lua):
--     one row per variant with its parameterisation, objective, sigma, NLL and FD-LeNet
SELECT r.run_id, r.experiment, r.name, r.status,
       r.config_json ->> '$.mean_type' AS mean, r.config_json ->> '$.loss_type' AS loss,
       r.config_json ->> '$.var_type' AS sigma, r.config_json ->> '$.steps' AS steps,
       round(max(m.value) FILTER (WHERE m.key = 'nll_bpd'), 3) AS nll_bpd,
       round(max(m.value) FILTER (WHERE m.key = 'fd_lenet'), 2) AS fd_lenet
FROM runs r LEFT JOIN metrics_v m USING (run_id)
WHERE r.experiment IN ('ablation_loss', 'ablation_sigma')
GROUP BY r.run_id
ORDER BY r.experiment, r.run_id;
