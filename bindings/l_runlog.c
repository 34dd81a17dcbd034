/*
 * l_runlog.c — the ddpm.RunLog userdata over runtime/runlog.c:
 *
 *   local log = core.runlog_open('runs.db')
 *   local id = log:begin_run{name=, experiment=, script_path=, script_text=,
 *                            config_json=, seed=, argv_json=, git_commit=,
 *                            git_dirty=, parent_run_id=, world_size=,
 *                            version=, env_json=}
 *   log:metric(id, 'loss', step, value)   log:flush()
 *   log:artifact(id, step|nil, kind, path [, meta_json])
 *   log:checkpoint(id, step, path)        log:tag(id, key, value|nil)
 *   log:source(id, path, text)            log:end_run(id, status [, error_text])
 *   local rows, cols = log:query(sql [, {run = id, ...} or {v1, v2}])
 *   log:pending()  log:path()  log:readonly()  log:close()
 *   core.runlog_open(path, {readonly = true}) opens an existing store for
 *   reading only (see ddpm_runlog_open_readonly).
 *
 * Every argument is checked here; anything wrong is a Lua error, never a
 * crash. Integers must be integral numbers within +-2^53 (exact in a double);
 * query results give integers as Lua numbers, so values past 2^53 round.
 */
#include "bind.h"
#include "ddpm/runlog.h"

#include <math.h>
#include <string.h>

void l_runlog_register(lua_State *L);

#define DDPM_RUNLOG_MT "ddpm.RunLog"
#define MAX_EXACT 9007199254740992.0   /* 2^53 */

typedef struct l_runlog { ddpm_runlog *rl; } l_runlog;

static ddpm_runlog *check_log(lua_State *L)
{
   l_runlog *u = luaL_testudata(L, 1, DDPM_RUNLOG_MT);
   if (!u) luaL_argerror(L, 1, lua_pushfstring(L, "ddpm.RunLog expected, got %s (call methods "
                                                  "with ':')", luaL_typename(L, 1)));
   if (!u->rl) luaL_argerror(L, 1, "run log was closed (log:close()) and cannot be used");
   return u->rl;
}

static int64_t check_int(lua_State *L, int idx, const char *what)
{
   if (lua_type(L, idx) != LUA_TNUMBER)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s must be an integer, got %s", what,
                                            luaL_typename(L, idx)));
   double d = lua_tonumber(L, idx);
   if (d != floor(d) || fabs(d) > MAX_EXACT)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s must be an integer, got %f", what, d));
   return (int64_t)d;
}

static int64_t check_run_id(lua_State *L, int idx)
{
   int64_t id = check_int(L, idx, "run_id");
   luaL_argcheck(L, id > 0, idx, "run_id must be positive");
   return id;
}

/* A string argument without embedded NULs (the runtime takes C strings). */
static const char *check_str(lua_State *L, int idx, const char *what)
{
   if (lua_type(L, idx) != LUA_TSTRING)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a string, got %s", what,
                                            luaL_typename(L, idx)));
   size_t len;
   const char *s = lua_tolstring(L, idx, &len);
   if (strlen(s) != len) luaL_argerror(L, idx, lua_pushfstring(L, "%s contains a NUL byte", what));
   return s;
}

static const char *opt_str(lua_State *L, int idx, const char *what)
{
   return lua_isnoneornil(L, idx) ? NULL : check_str(L, idx, what);
}

static void check(lua_State *L, int rc)
{
   l_check(L, rc, "runlog");
}

/* core.runlog_open(path [, {readonly = true}]) */
static int l_runlog_open(lua_State *L)
{
   const char *path = check_str(L, 1, "path");
   int readonly = 0;
   if (!lua_isnoneornil(L, 2)) {
      luaL_checktype(L, 2, LUA_TTABLE);
      lua_getfield(L, 2, "readonly");
      if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
         return luaL_error(L, "runlog_open: readonly must be a boolean, got %s", luaL_typename(L, -1));
      readonly = lua_toboolean(L, -1);
      lua_pop(L, 1);
   }
   l_runlog *u = lua_newuserdata(L, sizeof *u);   /* before opening: no leak on OOM */
   u->rl = NULL;
   luaL_getmetatable(L, DDPM_RUNLOG_MT);
   lua_setmetatable(L, -2);
   u->rl = readonly ? ddpm_runlog_open_readonly(path) : ddpm_runlog_open(path);
   l_check_ptr(L, u->rl, "runlog_open");
   return 1;
}

/* ------------------------------------------------------------ begin_run */

static const char *const run_fields[] = {
   "name", "experiment", "script_path", "script_text", "config_json", "seed", "argv_json",
   "git_commit", "git_dirty", "parent_run_id", "world_size", "version", "env_json", NULL
};

static const char *field_str(lua_State *L, const char *k)
{
   lua_getfield(L, 2, k);
   const char *s = NULL;
   if (!lua_isnil(L, -1)) {
      size_t len;
      if (lua_type(L, -1) != LUA_TSTRING)
         luaL_error(L, "begin_run: field '%s' must be a string, got %s", k, luaL_typename(L, -1));
      s = lua_tolstring(L, -1, &len);
      if (strlen(s) != len) luaL_error(L, "begin_run: field '%s' contains a NUL byte", k);
   }
   lua_pop(L, 1);   /* the table keeps the string alive */
   return s;
}

static int64_t field_int(lua_State *L, const char *k, int64_t def, int required)
{
   lua_getfield(L, 2, k);
   int64_t v = def;
   if (lua_isnil(L, -1)) {
      if (required) luaL_error(L, "begin_run: field '%s' is required", k);
   } else {
      double d = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "begin_run: field '%s' must be an integer, got %s", k, luaL_typename(L, -1));
      if (d != floor(d) || fabs(d) > MAX_EXACT)
         luaL_error(L, "begin_run: field '%s' must be an integer, got %f", k, d);
      v = (int64_t)d;
   }
   lua_pop(L, 1);
   return v;
}

static int l_begin_run(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   luaL_checktype(L, 2, LUA_TTABLE);
   lua_pushnil(L);
   while (lua_next(L, 2)) {   /* a misspelt field is an error, not a silent default */
      if (lua_type(L, -2) != LUA_TSTRING)
         return luaL_error(L, "begin_run: keys must be field names, got a %s key",
                           luaL_typename(L, -2));
      int ok = 0;
      for (int i = 0; run_fields[i] && !ok; i++) ok = strcmp(lua_tostring(L, -2), run_fields[i]) == 0;
      if (!ok) return luaL_error(L, "begin_run: unknown field '%s'", lua_tostring(L, -2));
      lua_pop(L, 1);
   }
   ddpm_run_info info;
   memset(&info, 0, sizeof info);
   info.name = field_str(L, "name");
   info.experiment = field_str(L, "experiment");
   info.script_path = field_str(L, "script_path");
   info.script_text = field_str(L, "script_text");
   info.config_json = field_str(L, "config_json");
   info.argv_json = field_str(L, "argv_json");
   info.git_commit = field_str(L, "git_commit");
   info.version = field_str(L, "version");
   info.env_json = field_str(L, "env_json");
   info.seed = field_int(L, "seed", 0, 1);
   info.parent_run_id = field_int(L, "parent_run_id", 0, 0);
   if (info.parent_run_id < 0) return luaL_error(L, "begin_run: parent_run_id must be positive");
   int64_t ws = field_int(L, "world_size", 1, 0);
   if (ws < 1 || ws > 1 << 20) return luaL_error(L, "begin_run: world_size must be in 1..2^20");
   info.world_size = (int)ws;
   lua_getfield(L, 2, "git_dirty");
   if (lua_isnil(L, -1)) info.git_dirty = -1;
   else if (lua_type(L, -1) == LUA_TBOOLEAN) info.git_dirty = lua_toboolean(L, -1);
   else return luaL_error(L, "begin_run: field 'git_dirty' must be a boolean, got %s",
                          luaL_typename(L, -1));
   lua_pop(L, 1);
   int64_t id;
   check(L, ddpm_runlog_begin_run(rl, &info, &id));
   lua_pushnumber(L, (lua_Number)id);
   return 1;
}

/* ------------------------------------------------------------ logging */

static int l_metric(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   const char *name = check_str(L, 3, "metric name");
   int64_t step = check_int(L, 4, "step");
   if (lua_type(L, 5) != LUA_TNUMBER)
      luaL_argerror(L, 5, lua_pushfstring(L, "value must be a number, got %s", luaL_typename(L, 5)));
   check(L, ddpm_runlog_log_metric(rl, id, name, step, lua_tonumber(L, 5)));
   return 0;
}

static int l_flush(lua_State *L)
{
   check(L, ddpm_runlog_flush(check_log(L)));
   return 0;
}

static int l_pending(lua_State *L)
{
   lua_pushnumber(L, (lua_Number)ddpm_runlog_pending(check_log(L)));
   return 1;
}

static int l_readonly(lua_State *L)
{
   lua_pushboolean(L, ddpm_runlog_readonly(check_log(L)));
   return 1;
}

static int l_path(lua_State *L)
{
   lua_pushstring(L, ddpm_runlog_path(check_log(L)));
   return 1;
}

/* artifact(run_id, step|nil, kind, path [, meta_json]) */
static int l_artifact(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   int64_t step = lua_isnil(L, 3) ? -1 : check_int(L, 3, "step");
   luaL_argcheck(L, step >= -1, 3, "step must be non-negative (or nil)");
   const char *kind = check_str(L, 4, "kind");
   const char *path = check_str(L, 5, "path");
   const char *meta = opt_str(L, 6, "meta_json");
   check(L, ddpm_runlog_log_artifact(rl, id, step, kind, path, meta));
   return 0;
}

static int l_checkpoint(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   int64_t step = check_int(L, 3, "step");
   const char *path = check_str(L, 4, "path");
   check(L, ddpm_runlog_log_checkpoint(rl, id, step, path));
   return 0;
}

/* tag(run_id, key, value): value a string, number, boolean, or nil (NULL). */
static int l_tag(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   const char *key = check_str(L, 3, "tag key");
   const char *value = NULL;
   int t = lua_type(L, 4);
   if (t == LUA_TBOOLEAN) value = lua_toboolean(L, 4) ? "true" : "false";
   else if (t == LUA_TNUMBER) value = lua_tostring(L, 4);   /* converts slot 4 in place */
   else if (t != LUA_TNIL && t != LUA_TNONE) value = check_str(L, 4, "tag value");
   check(L, ddpm_runlog_set_tag(rl, id, key, value));
   return 0;
}

static int l_source(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   const char *path = check_str(L, 3, "path");
   const char *text = check_str(L, 4, "text");
   check(L, ddpm_runlog_add_source(rl, id, path, text));
   return 0;
}

static int l_end_run(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   int64_t id = check_run_id(L, 2);
   const char *status = check_str(L, 3, "status");
   const char *err = opt_str(L, 4, "error_text");
   check(L, ddpm_runlog_end_run(rl, id, status, err));
   return 0;
}

/* ------------------------------------------------------------ query */

typedef struct qctx {
   lua_State *L;
   int fn, rows, cols;        /* stack slots: push_row, result tables */
   int n, failed;
   int ncol;
   const char *const *names;
   const ddpm_runlog_value *vals;
} qctx;

#define STOP_LUA_ERROR 1000   /* our callback's "stop": a Lua error is on the stack */

/* push_row(ctx, rows, cols): runs under lua_pcall, so a memory error while
   building a row cannot unwind through SQLite's open statement. */
static int push_row(lua_State *L)
{
   qctx *q = lua_touserdata(L, 1);
   if (!q->vals) {
      for (int c = 0; c < q->ncol; c++) {
         lua_pushstring(L, q->names[c]);
         lua_rawseti(L, 3, c + 1);
      }
      return 0;
   }
   lua_createtable(L, 0, q->ncol);
   for (int c = 0; c < q->ncol; c++) {
      const ddpm_runlog_value *v = &q->vals[c];
      switch (v->type) {
      case DDPM_RUNLOG_INT:  lua_pushnumber(L, (lua_Number)v->i); break;
      case DDPM_RUNLOG_REAL: lua_pushnumber(L, v->d); break;
      case DDPM_RUNLOG_TEXT:
      case DDPM_RUNLOG_BLOB: lua_pushlstring(L, v->s ? v->s : "", v->len); break;
      default: continue;     /* NULL: the key stays absent (nil) */
      }
      lua_setfield(L, -2, q->names[c]);
   }
   lua_rawseti(L, 2, q->n + 1);
   return 0;
}

static int on_row(void *ud, int ncol, const char *const *names, const ddpm_runlog_value *vals)
{
   qctx *q = ud;
   lua_State *L = q->L;
   q->ncol = ncol;
   q->names = names;
   q->vals = vals;
   lua_pushvalue(L, q->fn);           /* slots reserved by lua_checkstack */
   lua_pushlightuserdata(L, q);
   lua_pushvalue(L, q->rows);
   lua_pushvalue(L, q->cols);
   if (lua_pcall(L, 3, 0, 0) != 0) {
      q->failed = 1;
      return STOP_LUA_ERROR;
   }
   if (vals) q->n++;
   return 0;
}

/* Reads the params table at idx into a userdata array (freed by the GC, so a
   Lua error while reading leaks nothing). Keys: positive integers (?N) or
   names (":run", "run"). Values: numbers, strings, booleans. */
static ddpm_runlog_param *read_params(lua_State *L, int idx, int *np)
{
   int n = 0;
   lua_pushnil(L);
   while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
   ddpm_runlog_param *p = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *p);
   int i = 0;
   lua_pushnil(L);
   while (lua_next(L, idx)) {
      ddpm_runlog_param *q = &p[i++];
      memset(q, 0, sizeof *q);
      if (lua_type(L, -2) == LUA_TSTRING) {
         q->name = lua_tostring(L, -2);
      } else if (lua_type(L, -2) == LUA_TNUMBER) {
         double k = lua_tonumber(L, -2);
         if (k != floor(k) || k < 1 || k > 32766)
            luaL_error(L, "query: parameter key %f is not an index in 1..32766", k);
         q->index = (int)k;
      } else {
         luaL_error(L, "query: parameter keys must be names or indices, got %s", luaL_typename(L, -2));
      }
      ddpm_runlog_value *v = &q->value;
      switch (lua_type(L, -1)) {
      case LUA_TNUMBER: {
         double d = lua_tonumber(L, -1);
         if (d == floor(d) && fabs(d) <= MAX_EXACT) { v->type = DDPM_RUNLOG_INT; v->i = (int64_t)d; }
         else { v->type = DDPM_RUNLOG_REAL; v->d = d; }
         break;
      }
      case LUA_TSTRING:
         v->type = DDPM_RUNLOG_TEXT;
         v->s = lua_tolstring(L, -1, &v->len);   /* alive: the params table holds it */
         break;
      case LUA_TBOOLEAN:
         v->type = DDPM_RUNLOG_INT;
         v->i = lua_toboolean(L, -1);
         break;
      default:
         lua_pushvalue(L, -2);
         luaL_error(L, "query: parameter %s is a %s (numbers, strings and booleans only)",
                    lua_tostring(L, -1), luaL_typename(L, -2));
      }
      lua_pop(L, 1);
   }
   *np = n;
   return p;
}

/* query(sql [, params]) -> rows, columns */
static int l_query(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   const char *sql = check_str(L, 2, "sql");
   ddpm_runlog_param *params = NULL;
   int np = 0;
   if (!lua_isnoneornil(L, 3)) {
      luaL_checktype(L, 3, LUA_TTABLE);
      params = read_params(L, 3, &np);
   }
   if (!lua_checkstack(L, 16)) return luaL_error(L, "query: Lua stack overflow");
   qctx q;
   memset(&q, 0, sizeof q);
   q.L = L;
   lua_pushcfunction(L, push_row);
   q.fn = lua_gettop(L);
   lua_newtable(L);
   q.rows = lua_gettop(L);
   lua_newtable(L);
   q.cols = lua_gettop(L);
   int rc = ddpm_runlog_query(rl, sql, params, np, on_row, &q);
   if (q.failed) return lua_error(L);      /* push_row's message is on top */
   check(L, rc);
   lua_pushvalue(L, q.rows);
   lua_pushvalue(L, q.cols);
   return 2;
}

/* ------------------------------------------------------------ lifetime */

static int l_close(lua_State *L)
{
   ddpm_runlog *rl = check_log(L);
   l_runlog *u = lua_touserdata(L, 1);
   u->rl = NULL;
   check(L, ddpm_runlog_close(rl));   /* freed either way; a failed last flush is reported */
   return 0;
}

static int l_gc(lua_State *L)
{
   l_runlog *u = luaL_checkudata(L, 1, DDPM_RUNLOG_MT);
   ddpm_runlog *rl = u->rl;
   u->rl = NULL;
   ddpm_runlog_close(rl);   /* flushes; nothing can be reported from __gc */
   return 0;
}

static int l_is_open(lua_State *L)
{
   l_runlog *u = luaL_checkudata(L, 1, DDPM_RUNLOG_MT);
   lua_pushboolean(L, u->rl != NULL);
   return 1;
}

static int l_tostring(lua_State *L)
{
   l_runlog *u = luaL_checkudata(L, 1, DDPM_RUNLOG_MT);
   if (!u->rl) lua_pushstring(L, "[ddpm.RunLog (closed)]");
   else lua_pushfstring(L, "[ddpm.RunLog %s]", ddpm_runlog_path(u->rl));
   return 1;
}

void l_runlog_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"begin_run", l_begin_run}, {"metric", l_metric}, {"flush", l_flush},
      {"artifact", l_artifact}, {"checkpoint", l_checkpoint}, {"tag", l_tag},
      {"source", l_source}, {"end_run", l_end_run}, {"query", l_query},
      {"pending", l_pending}, {"path", l_path}, {"readonly", l_readonly}, {"is_open", l_is_open}, {"close", l_close},
      {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_RUNLOG_MT);
   lua_pushcfunction(L, l_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   lua_pushcfunction(L, l_runlog_open);
   lua_setfield(L, -2, "runlog_open");
}
