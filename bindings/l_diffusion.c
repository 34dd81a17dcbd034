/*
 * l_diffusion.c — the ddpm.Schedule userdata and the diffusion ops on tensors
 * (runtime/include/ddpm/diffusion.h): q_sample, predictions, the posterior, the reverse
 * process, ancestral and DDIM steps, L_simple and the VLB terms.
 *
 * Timesteps are the 0-based CODE index t = 0..T-1 everywhere (what the
 * network is fed), unlike tensor indices, which are 1-based. A timestep
 * argument is a number (the whole batch), a table of N integers or a tensor
 * of N integral values. Tensors are [N, ...] with the batch first; the
 * reverse-process ops read [N, C, H, W] (any trailing dims, flattened).
 *
 * Every argument is checked (type, shape, range, option names) before
 * anything is allocated; a failure is one Lua error naming expected and
 * actual shapes. Each function first sets the stack to its argument count,
 * so a missing optional argument stays nil once buffers are pushed above. Non-contiguous inputs are copied; outputs passed in (out,
 * x0_out, grad) must be contiguous and are written in place.
 */
#include "bind.h"
#include "ddpm/diffusion.h"

#include <math.h>
#include <string.h>

void l_diffusion_register(lua_State *L);

#define DDPM_SCHEDULE_MT "ddpm.Schedule"

typedef struct l_schedule { ddpm_schedule *s; } l_schedule;

/* ------------------------------------------------------------------ helpers */

static ddpm_schedule *check_schedule(lua_State *L, int idx)
{
   l_schedule *u = luaL_testudata(L, idx, DDPM_SCHEDULE_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.Schedule expected, got %s",
                                                 luaL_typename(L, idx)));
   if (!u->s) luaL_argerror(L, idx, "schedule was freed");
   return u->s;
}

/* Pushes a Schedule that owns s; raises the runtime's message when s is NULL. */
static void push_schedule(lua_State *L, ddpm_schedule *s, const char *what)
{
   l_check_ptr(L, s, what);
   l_schedule *u = lua_newuserdata(L, sizeof *u);
   u->s = s;
   luaL_getmetatable(L, DDPM_SCHEDULE_MT);
   lua_setmetatable(L, -2);
}

static const char *shape(const ddpm_tensor *t, char *buf, size_t len)
{
   return ddpm_tensor_shape_str(t, buf, len);
}

/* Data of a tensor argument, contiguous: a copy is pushed (and collected
   later) when the tensor is a strided view. */
static const float *in_data(lua_State *L, ddpm_tensor *t, const char *what)
{
   if (ddpm_tensor_is_contiguous(t)) return ddpm_tensor_data(t);
   ddpm_tensor *c = ddpm_tensor_clone(t);
   l_check_ptr(L, c, what);
   l_pushtensor(L, c);
   return ddpm_tensor_data(c);
}

/* A new tensor shaped like `like`, pushed; or the caller's output at idx
   (contiguous, same shape) when that argument is a tensor. */
static float *out_data(lua_State *L, int idx, const ddpm_tensor *like, const char *what,
                       const char *name)
{
   char a[128], b[128];
   if (idx > 0 && !lua_isnoneornil(L, idx)) {
      ddpm_tensor *o = l_checktensor(L, idx);
      if (!ddpm_tensor_same_shape(o, like))
         luaL_error(L, "%s: %s expected %s, got %s", what, name, shape(like, a, sizeof a),
                    shape(o, b, sizeof b));
      if (!ddpm_tensor_is_contiguous(o))
         luaL_error(L, "%s: %s must be contiguous", what, name);
      lua_pushvalue(L, idx);
      return ddpm_tensor_data(o);
   }
   ddpm_tensor *o = ddpm_tensor_new(like->ndim, like->size);
   l_check_ptr(L, o, what);
   l_pushtensor(L, o);
   return ddpm_tensor_data(o);
}

/* A new 1-D tensor [n], pushed. */
static float *out_vec(lua_State *L, int n, const char *what)
{
   ddpm_tensor *o = ddpm_tensor_new_1d(n);
   l_check_ptr(L, o, what);
   l_pushtensor(L, o);
   return ddpm_tensor_data(o);
}

/* Batch size and per-example size of a batched tensor [N, ...]. */
static int batch_of(lua_State *L, const ddpm_tensor *x, int64_t *D, const char *what,
                    const char *name)
{
   char a[128];
   if (x->ndim < 1 || x->size[0] < 1 || x->size[0] > (1 << 24))
      luaL_error(L, "%s: %s expected [N,...] with N >= 1, got %s", what, name, shape(x, a, sizeof a));
   int64_t n = ddpm_tensor_numel(x);
   if (n == 0) luaL_error(L, "%s: %s is empty (%s)", what, name, shape(x, a, sizeof a));
   *D = n / x->size[0];
   return (int)x->size[0];
}

/* Image tensor [N, C, ...]: N, C and HW (the product of the rest). */
static void image_dims(lua_State *L, const ddpm_tensor *x, int *N, int *C, int *HW,
                       const char *what, const char *name)
{
   char a[128];
   if (x->ndim < 2 || ddpm_tensor_numel(x) == 0 || x->size[0] > (1 << 24))
      luaL_error(L, "%s: %s expected [N,C,H,W] (or [N,C,...]), got %s", what, name,
                 shape(x, a, sizeof a));
   int64_t hw = 1;
   for (int d = 2; d < x->ndim; d++) hw *= x->size[d];
   if (x->size[1] > (1 << 20) || hw > ((int64_t)1 << 30))
      luaL_error(L, "%s: %s %s is too large", what, name, shape(x, a, sizeof a));
   *N = (int)x->size[0];
   *C = (int)x->size[1];
   *HW = (int)hw;
}

static void same_shape(lua_State *L, const ddpm_tensor *x, const ddpm_tensor *ref,
                       const char *what, const char *name, const char *refname)
{
   char a[128], b[128];
   if (!ddpm_tensor_same_shape(x, ref))
      luaL_error(L, "%s: %s expected %s (the shape of %s), got %s", what, name,
                 shape(ref, a, sizeof a), refname, shape(x, b, sizeof b));
}

/* model_out must be [N, Cout, <xt's trailing dims>]. */
static void check_model_out(lua_State *L, const ddpm_tensor *mo, const ddpm_tensor *xt,
                            int C, int var_type, const char *what)
{
   int Co = ddpm_model_out_channels(C, var_type);
   int ok = mo->ndim == xt->ndim && mo->size[0] == xt->size[0] && mo->size[1] == Co;
   for (int d = 2; ok && d < xt->ndim; d++) ok = mo->size[d] == xt->size[d];
   if (!ok) {
      char want[160], got[128];
      ddpm_tensor tmp = *xt;
      tmp.size[1] = Co;
      shape(&tmp, want, sizeof want);
      luaL_error(L, "%s: model_out expected %s (var_type %s needs %s channels), got %s", what,
                 want, ddpm_var_type_name(var_type), Co == C ? "C" : "2C",
                 shape(mo, got, sizeof got));
   }
}

/* Reads the timesteps at idx for a batch of N into a buffer on the stack. */
static const int *read_t(lua_State *L, int idx, int N, const ddpm_schedule *s, const char *what)
{
   int *t = lua_newuserdata(L, sizeof(int) * (size_t)N);
   double v;
   if (lua_type(L, idx) == LUA_TNUMBER) {
      v = lua_tonumber(L, idx);
      if (v != floor(v) || v < 0 || v >= s->T)
         luaL_error(L, "%s: timestep %g is not an integer in 0..%d (0-based code index, T = %d)",
                    what, v, s->T - 1, s->T);
      for (int n = 0; n < N; n++) t[n] = (int)v;
      return t;
   }
   if (lua_istable(L, idx)) {
      int len = (int)lua_objlen(L, idx);
      if (len != N)
         luaL_error(L, "%s: %d timesteps given for a batch of %d", what, len, N);
      for (int n = 0; n < N; n++) {
         lua_rawgeti(L, idx, n + 1);
         if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: timestep %d is a %s, expected an integer", what, n + 1,
                       luaL_typename(L, -1));
         v = lua_tonumber(L, -1);
         lua_pop(L, 1);
         if (v != floor(v) || v < 0 || v >= s->T)
            luaL_error(L, "%s: timestep %d = %g is not an integer in 0..%d (0-based code index, "
                       "T = %d)", what, n + 1, v, s->T - 1, s->T);
         t[n] = (int)v;
      }
      return t;
   }
   if (!luaL_testudata(L, idx, DDPM_TENSOR_MT))
      luaL_argerror(L, idx, lua_pushfstring(L, "timesteps expected (number, table or tensor), got %s",
                                            luaL_typename(L, idx)));
   ddpm_tensor *tt = l_checktensor(L, idx);
   char a[128];
   if (ddpm_tensor_numel(tt) != N)
      luaL_error(L, "%s: timesteps %s do not hold one value per example (batch %d)", what,
                 shape(tt, a, sizeof a), N);
   const float *p = in_data(L, tt, what);
   for (int n = 0; n < N; n++) {
      v = p[n];
      if (v != floor(v) || v < 0 || v >= s->T)
         luaL_error(L, "%s: timestep %d = %g is not an integer in 0..%d (0-based code index, "
                    "T = %d)", what, n + 1, v, s->T - 1, s->T);
      t[n] = (int)v;
   }
   return t;
}

/* Options: a table (or nil) whose keys must all be in `known` (NULL-ended). */
static void check_opts(lua_State *L, int idx, const char *const *known, const char *what)
{
   if (lua_isnoneornil(L, idx)) return;
   if (!lua_istable(L, idx))
      luaL_argerror(L, idx, lua_pushfstring(L, "options table expected, got %s", luaL_typename(L, idx)));
   lua_pushnil(L);
   while (lua_next(L, idx)) {
      lua_pop(L, 1);
      int ok = 0;
      if (lua_type(L, -1) == LUA_TSTRING)
         for (const char *const *k = known; *k && !ok; k++) ok = !strcmp(lua_tostring(L, -1), *k);
      if (!ok) {
         luaL_Buffer b;
         luaL_buffinit(L, &b);
         for (const char *const *k = known; *k; k++) {
            if (k != known) luaL_addstring(&b, ", ");
            luaL_addstring(&b, *k);
         }
         luaL_pushresult(&b);
         luaL_error(L, "%s: unknown option '%s' (known: %s)", what,
                    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2),
                    lua_tostring(L, -1));
      }
   }
}

/* opts[key] as an enum through parse; def when absent. */
static int opt_enum(lua_State *L, int idx, const char *key, int def, int (*parse)(const char *),
                    const char *what)
{
   if (lua_isnoneornil(L, idx)) return def;
   lua_getfield(L, idx, key);
   int v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
         luaL_error(L, "%s: option '%s' must be a string, got %s", what, key, luaL_typename(L, -1));
      v = parse(lua_tostring(L, -1));
      if (v < 0) l_check(L, DDPM_EINVAL, what);
   }
   lua_pop(L, 1);
   return v;
}

static int opt_bool(lua_State *L, int idx, const char *key, int def, const char *what)
{
   if (lua_isnoneornil(L, idx)) return def;
   lua_getfield(L, idx, key);
   int v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TBOOLEAN)
         luaL_error(L, "%s: option '%s' must be a boolean, got %s", what, key, luaL_typename(L, -1));
      v = lua_toboolean(L, -1);
   }
   lua_pop(L, 1);
   return v;
}

static double opt_num(lua_State *L, int idx, const char *key, double def, const char *what)
{
   if (lua_isnoneornil(L, idx)) return def;
   lua_getfield(L, idx, key);
   double v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "%s: option '%s' must be a number, got %s", what, key, luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
   }
   lua_pop(L, 1);
   return v;
}

/* opts[key] pushed onto the stack (nil when absent); returns its index. */
static int opt_push(lua_State *L, int idx, const char *key)
{
   if (lua_isnoneornil(L, idx)) lua_pushnil(L);
   else lua_getfield(L, idx, key);
   return lua_gettop(L);
}

/* ------------------------------------------------------------------ Schedule */

/* schedule(name, T [, beta_start = 1e-4, beta_end = 0.02]) */
static int l_schedule_new(lua_State *L)
{
   const char *name = luaL_checkstring(L, 1);
   lua_Number T = luaL_checknumber(L, 2);
   double b0 = luaL_optnumber(L, 3, 1e-4), b1 = luaL_optnumber(L, 4, 0.02);
   luaL_argcheck(L, T == floor(T) && T >= 1 && T <= 1e8, 2, "T must be an integer in 1..1e8");
   push_schedule(L, ddpm_schedule_new(name, (int)T, b0, b1), "schedule");
   return 1;
}

/* schedule_from_betas(table or 1-D tensor of T betas) */
static int l_schedule_from_betas(lua_State *L)
{
   lua_settop(L, 1);
   int T;
   double *b;
   char a[128];
   if (lua_istable(L, 1)) {
      T = (int)lua_objlen(L, 1);
      if (T < 1) return luaL_error(L, "schedule_from_betas: the table of betas is empty");
      b = lua_newuserdata(L, sizeof(double) * (size_t)T);
      for (int i = 0; i < T; i++) {
         lua_rawgeti(L, 1, i + 1);
         if (lua_type(L, -1) != LUA_TNUMBER)
            return luaL_error(L, "schedule_from_betas: beta %d is a %s, expected a number", i + 1,
                              luaL_typename(L, -1));
         b[i] = lua_tonumber(L, -1);
         lua_pop(L, 1);
      }
   } else {
      if (!luaL_testudata(L, 1, DDPM_TENSOR_MT))
         return luaL_argerror(L, 1, lua_pushfstring(L, "table or ddpm.Tensor of betas expected, got %s",
                                                    luaL_typename(L, 1)));
      ddpm_tensor *t = l_checktensor(L, 1);
      if (t->ndim != 1 || t->size[0] < 1 || t->size[0] > 100000000)
         return luaL_error(L, "schedule_from_betas: expected betas [T], got %s", shape(t, a, sizeof a));
      T = (int)t->size[0];
      const float *p = in_data(L, t, "schedule_from_betas");
      b = lua_newuserdata(L, sizeof(double) * (size_t)T);
      for (int i = 0; i < T; i++) b[i] = p[i];
   }
   push_schedule(L, ddpm_schedule_from_betas(b, T), "schedule_from_betas");
   return 1;
}

static int l_schedule_gc(lua_State *L)
{
   l_schedule *u = luaL_checkudata(L, 1, DDPM_SCHEDULE_MT);
   ddpm_schedule_free(u->s);
   u->s = NULL;
   return 0;
}

static int l_schedule_free(lua_State *L)
{
   check_schedule(L, 1);
   return l_schedule_gc(L);
}

static int l_schedule_T(lua_State *L)
{
   lua_pushinteger(L, check_schedule(L, 1)->T);
   return 1;
}

static const double *table_arg(lua_State *L, const ddpm_schedule *s, int idx)
{
   const char *name = luaL_checkstring(L, idx);
   const double *a = ddpm_schedule_array(s, name);
   return l_check_ptr(L, (void *)a, NULL);
}

/* s:get(name, t) -> number at 0-based code index t */
static int l_schedule_get(lua_State *L)
{
   ddpm_schedule *s = check_schedule(L, 1);
   const double *a = table_arg(L, s, 2);
   lua_Number t = luaL_checknumber(L, 3);
   if (t != floor(t) || t < 0 || t >= s->T)
      return luaL_error(L, "get: t = %g is not an integer in 0..%d (0-based code index, T = %d)",
                        t, s->T - 1, s->T);
   lua_pushnumber(L, a[(int)t]);
   return 1;
}

/* s:array(name) -> float32 tensor [T] (a copy) */
static int l_schedule_array(lua_State *L)
{
   ddpm_schedule *s = check_schedule(L, 1);
   const double *a = table_arg(L, s, 2);
   float *p = out_vec(L, s->T, "array");
   for (int i = 0; i < s->T; i++) p[i] = (float)a[i];
   return 1;
}

static int l_schedule_names(lua_State *L)
{
   check_schedule(L, 1);
   lua_newtable(L);
   for (int i = 0; ddpm_schedule_array_name(i); i++) {
      lua_pushstring(L, ddpm_schedule_array_name(i));
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

/* s:timestep_map() -> table of T original timesteps (0-based) */
static int l_schedule_timestep_map(lua_State *L)
{
   ddpm_schedule *s = check_schedule(L, 1);
   lua_createtable(L, s->T, 0);
   for (int i = 0; i < s->T; i++) {
      lua_pushinteger(L, s->timestep_map[i]);
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

/* space_timesteps(T, spec) -> table of 0-based indices */
static int l_space_timesteps(lua_State *L)
{
   lua_settop(L, 2);
   lua_Number T = luaL_checknumber(L, 1);
   const char *spec = luaL_checkstring(L, 2);
   luaL_argcheck(L, T == floor(T) && T >= 1 && T <= 1e7, 1, "T must be an integer in 1..1e7");
   int *idx = lua_newuserdata(L, sizeof(int) * (size_t)T), K = 0;
   l_check(L, ddpm_space_timesteps(idx, &K, (int)T, spec), NULL);
   lua_createtable(L, K, 0);
   for (int k = 0; k < K; k++) {
      lua_pushinteger(L, idx[k]);
      lua_rawseti(L, -2, k + 1);
   }
   return 1;
}

/* s:respace(spec string or table of 0-based indices) -> Schedule */
static int l_schedule_respace(lua_State *L)
{
   lua_settop(L, 2);
   ddpm_schedule *s = check_schedule(L, 1);
   int *idx = lua_newuserdata(L, sizeof(int) * (size_t)s->T), K = 0;
   if (lua_type(L, 2) == LUA_TSTRING) {
      l_check(L, ddpm_space_timesteps(idx, &K, s->T, lua_tostring(L, 2)), "respace");
   } else if (lua_istable(L, 2)) {
      K = (int)lua_objlen(L, 2);
      if (K < 1 || K > s->T)
         return luaL_error(L, "respace: %d indices given for a %d-step schedule", K, s->T);
      for (int k = 0; k < K; k++) {
         lua_rawgeti(L, 2, k + 1);
         lua_Number v = lua_tonumber(L, -1);
         if (lua_type(L, -1) != LUA_TNUMBER || v != floor(v) || v < 0 || v >= s->T)
            return luaL_error(L, "respace: index %d must be an integer in 0..%d", k + 1, s->T - 1);
         idx[k] = (int)v;
         lua_pop(L, 1);
      }
   } else {
      return luaL_argerror(L, 2, lua_pushfstring(L, "spacing string or table of indices expected, "
                                                 "got %s", luaL_typename(L, 2)));
   }
   push_schedule(L, ddpm_schedule_respace(s, idx, K), "respace");
   return 1;
}

static int l_schedule_tostring(lua_State *L)
{
   l_schedule *u = luaL_checkudata(L, 1, DDPM_SCHEDULE_MT);
   if (!u->s) lua_pushstring(L, "[ddpm.Schedule (freed)]");
   else lua_pushfstring(L, "[ddpm.Schedule T=%d beta %f..%f]", u->s->T, u->s->betas[0],
                        u->s->betas[u->s->T - 1]);
   return 1;
}

static int l_schedule_len(lua_State *L)
{
   lua_pushinteger(L, check_schedule(L, 1)->T);
   return 1;
}

/* ------------------------------------------------------------------ forward process */

typedef int (*flat_op)(const ddpm_schedule *, float *, const float *, const float *,
                       const int *, int, int64_t);

/* op(sched, a, b, t [, out]) with a, b of one shape [N, ...] */
static int flat2(lua_State *L, flat_op op, const char *what, const char *an, const char *bn)
{
   lua_settop(L, 5);
   ddpm_schedule *s = check_schedule(L, 1);
   ddpm_tensor *a = l_checktensor(L, 2), *b = l_checktensor(L, 3);
   int64_t D;
   int N = batch_of(L, a, &D, what, an);
   same_shape(L, b, a, what, bn, an);
   if (lua_isnoneornil(L, 4)) return luaL_argerror(L, 4, "timesteps expected (number, table or tensor)");
   if (!lua_isnoneornil(L, 5)) l_checktensor(L, 5);
   const int *t = read_t(L, 4, N, s, what);
   const float *pa = in_data(L, a, what), *pb = in_data(L, b, what);
   float *out = out_data(L, 5, a, what, "out");
   l_check(L, op(s, out, pa, pb, t, N, D), what);
   return 1;
}

/* q_sample(sched, x0, eps, t [, out]) -> x_t (eq. 4) */
static int l_q_sample(lua_State *L)
{
   return flat2(L, ddpm_q_sample, "q_sample", "x0", "eps");
}

/* predict_x0(sched, xt, eps, t [, out]) -> x0 */
static int l_predict_x0(lua_State *L)
{
   return flat2(L, ddpm_predict_x0_from_eps, "predict_x0", "xt", "eps");
}

/* predict_eps(sched, xt, x0, t [, out]) -> eps */
static int l_predict_eps(lua_State *L)
{
   return flat2(L, ddpm_predict_eps_from_x0, "predict_eps", "xt", "x0");
}

/* v_target(sched, x0, eps, t [, out]) -> v */
static int l_v_target(lua_State *L)
{
   return flat2(L, ddpm_v_target, "v_target", "x0", "eps");
}

/* q_posterior(sched, x0, xt, t) -> mean, variance [N], log variance [N] (eqs. 6-7) */
static int l_q_posterior(lua_State *L)
{
   lua_settop(L, 4);
   const char *what = "q_posterior";
   ddpm_schedule *s = check_schedule(L, 1);
   ddpm_tensor *x0 = l_checktensor(L, 2), *xt = l_checktensor(L, 3);
   int64_t D;
   int N = batch_of(L, x0, &D, what, "x0");
   same_shape(L, xt, x0, what, "xt", "x0");
   if (lua_isnoneornil(L, 4)) return luaL_argerror(L, 4, "timesteps expected (number, table or tensor)");
   const int *t = read_t(L, 4, N, s, what);
   const float *p0 = in_data(L, x0, what), *pt = in_data(L, xt, what);
   int top = lua_gettop(L);
   float *mean = out_data(L, 0, x0, what, "mean");
   float *var = out_vec(L, N, what), *lv = out_vec(L, N, what);
   l_check(L, ddpm_q_posterior(s, mean, var, lv, p0, pt, t, N, D), what);
   return lua_gettop(L) - top;
}

/* ------------------------------------------------------------------ reverse process */

static const char *const rev_opts[] = { "mean_type", "var_type", "clip", "out", "x0_out", NULL };
static const char *const ddim_opts[] = { "mean_type", "var_type", "clip", "out", "x0_out", "eta", NULL };

typedef struct rev_args {
   ddpm_schedule *s;
   ddpm_tensor *mo, *xt;
   int N, C, HW, mean_type, var_type, clip;
   const int *t;
   const float *pmo, *pxt;
} rev_args;

/* Reads (sched, model_out, xt, t) at 1..4 and the options at opt_idx. */
static void rev_read(lua_State *L, rev_args *r, int opt_idx, const char *const *known,
                     int clip_default, const char *what)
{
   r->s = check_schedule(L, 1);
   r->mo = l_checktensor(L, 2);
   r->xt = l_checktensor(L, 3);
   check_opts(L, opt_idx, known, what);
   r->mean_type = opt_enum(L, opt_idx, "mean_type", DDPM_MEAN_EPS, ddpm_mean_type_parse, what);
   r->var_type = opt_enum(L, opt_idx, "var_type", DDPM_VAR_FIXEDLARGE, ddpm_var_type_parse, what);
   r->clip = opt_bool(L, opt_idx, "clip", clip_default, what);
   image_dims(L, r->xt, &r->N, &r->C, &r->HW, what, "xt");
   check_model_out(L, r->mo, r->xt, r->C, r->var_type, what);
   if (lua_isnoneornil(L, 4)) luaL_argerror(L, 4, "timesteps expected (number, table or tensor)");
   r->t = read_t(L, 4, r->N, r->s, what);
}

/* An output option (opts.out, opts.x0_out) checked against xt; NULL if absent. */
static float *opt_out(lua_State *L, int opt_idx, const char *key, const ddpm_tensor *xt,
                      const char *what)
{
   int i = opt_push(L, opt_idx, key);
   if (lua_isnil(L, i)) { lua_pop(L, 1); return NULL; }
   if (!luaL_testudata(L, i, DDPM_TENSOR_MT))
      luaL_error(L, "%s: option '%s' must be a ddpm.Tensor, got %s", what, key, luaL_typename(L, i));
   l_checktensor(L, i);
   float *p = out_data(L, i, xt, what, key);
   lua_pop(L, 2);   /* the option and out_data's copy: the table keeps it alive */
   return p;
}

/* p_mean_variance(sched, model_out, xt, t [, opts]) -> mean, logvar, x0_hat
   (opts: mean_type = 'eps', var_type = 'fixedlarge', clip = true) */
static int l_p_mean_variance(lua_State *L)
{
   lua_settop(L, 5);
   const char *what = "p_mean_variance";
   static const char *const known[] = { "mean_type", "var_type", "clip", NULL };
   rev_args r;
   rev_read(L, &r, 5, known, 1, what);
   const float *pmo = in_data(L, r.mo, what), *pxt = in_data(L, r.xt, what);
   int top = lua_gettop(L);
   float *mean = out_data(L, 0, r.xt, what, "mean");
   float *lv = out_data(L, 0, r.xt, what, "logvar");
   float *x0 = out_data(L, 0, r.xt, what, "x0");
   l_check(L, ddpm_p_mean_variance(r.s, mean, lv, x0, pmo, pxt, r.t, r.N, r.C, r.HW, r.mean_type,
                                   r.var_type, r.clip), what);
   return lua_gettop(L) - top;
}

/* p_sample_step(sched, model_out, xt, t, noise [, opts]) -> x_prev
   (Alg. 2 line 4; opts: mean_type, var_type, clip = true, out, x0_out) */
static int l_p_sample_step(lua_State *L)
{
   lua_settop(L, 6);
   const char *what = "p_sample_step";
   rev_args r;
   rev_read(L, &r, 6, rev_opts, 1, what);
   ddpm_tensor *z = l_checktensor(L, 5);
   same_shape(L, z, r.xt, what, "noise", "xt");
   float *x0 = opt_out(L, 6, "x0_out", r.xt, what);
   const float *pmo = in_data(L, r.mo, what), *pxt = in_data(L, r.xt, what);
   const float *pz = in_data(L, z, what);
   int oi = opt_push(L, 6, "out");
   if (!lua_isnil(L, oi) && !luaL_testudata(L, oi, DDPM_TENSOR_MT))
      return luaL_error(L, "%s: option 'out' must be a ddpm.Tensor, got %s", what, luaL_typename(L, oi));
   float *out = out_data(L, lua_isnil(L, oi) ? 0 : oi, r.xt, what, "out");
   l_check(L, ddpm_p_sample_step(r.s, out, x0, pmo, pxt, r.t, pz, r.N, r.C, r.HW, r.mean_type,
                                 r.var_type, r.clip), what);
   return 1;
}

/* ddim_step(sched, model_out, xt, t, noise or nil [, opts]) -> x_prev
   (opts as p_sample_step plus eta = 0; noise may be nil when eta = 0) */
static int l_ddim_step(lua_State *L)
{
   lua_settop(L, 6);
   const char *what = "ddim_step";
   rev_args r;
   rev_read(L, &r, 6, ddim_opts, 1, what);
   double eta = opt_num(L, 6, "eta", 0.0, what);
   if (!(eta >= 0 && eta <= 1e6)) return luaL_error(L, "%s: eta = %g must be >= 0", what, eta);
   const float *pz = NULL;
   if (!lua_isnoneornil(L, 5)) {
      ddpm_tensor *z = l_checktensor(L, 5);
      same_shape(L, z, r.xt, what, "noise", "xt");
      pz = in_data(L, z, what);
   } else if (eta > 0) {
      return luaL_error(L, "%s: eta = %g > 0 needs noise", what, eta);
   }
   float *x0 = opt_out(L, 6, "x0_out", r.xt, what);
   const float *pmo = in_data(L, r.mo, what), *pxt = in_data(L, r.xt, what);
   int oi = opt_push(L, 6, "out");
   if (!lua_isnil(L, oi) && !luaL_testudata(L, oi, DDPM_TENSOR_MT))
      return luaL_error(L, "%s: option 'out' must be a ddpm.Tensor, got %s", what, luaL_typename(L, oi));
   float *out = out_data(L, lua_isnil(L, oi) ? 0 : oi, r.xt, what, "out");
   l_check(L, ddpm_ddim_step(r.s, out, x0, pmo, pxt, r.t, pz, eta, r.N, r.C, r.HW, r.mean_type,
                             r.var_type, r.clip), what);
   return 1;
}

/* ddim_reverse_step(sched, model_out, xt, t [, opts]) -> x_next
   (the deterministic DDIM encoder step t -> t+1, docs/math.md §5.2:
   x_next = sqrt(ab_next) x0_hat + sqrt(1 - ab_next) eps, eps re-derived from
   the (clamped) x0_hat; opts as p_sample_step: mean_type, var_type,
   clip = true, out, x0_out) */
static int l_ddim_reverse_step(lua_State *L)
{
   lua_settop(L, 5);
   const char *what = "ddim_reverse_step";
   rev_args r;
   rev_read(L, &r, 5, rev_opts, 1, what);
   float *x0 = opt_out(L, 5, "x0_out", r.xt, what);
   const float *pmo = in_data(L, r.mo, what), *pxt = in_data(L, r.xt, what);
   int oi = opt_push(L, 5, "out");
   if (!lua_isnil(L, oi) && !luaL_testudata(L, oi, DDPM_TENSOR_MT))
      return luaL_error(L, "%s: option 'out' must be a ddpm.Tensor, got %s", what, luaL_typename(L, oi));
   float *out = out_data(L, lua_isnil(L, oi) ? 0 : oi, r.xt, what, "out");
   l_check(L, ddpm_ddim_reverse_step(r.s, out, x0, pmo, pxt, r.t, r.N, r.C, r.HW, r.mean_type,
                                     r.var_type, r.clip), what);
   return 1;
}

/* ------------------------------------------------------------------ losses */

/* loss_simple(model_out, target [, grad]) -> loss, grad (eq. 14) */
static int l_loss_simple(lua_State *L)
{
   lua_settop(L, 3);
   const char *what = "loss_simple";
   ddpm_tensor *o = l_checktensor(L, 1), *y = l_checktensor(L, 2);
   if (!lua_isnoneornil(L, 3)) l_checktensor(L, 3);
   int64_t D;
   int N = batch_of(L, o, &D, what, "model_out");
   same_shape(L, y, o, what, "target", "model_out");
   const float *po = in_data(L, o, what), *py = in_data(L, y, what);
   float *g = out_data(L, 3, o, what, "grad");
   ddpm_clearerr();
   double loss = ddpm_loss_simple(g, po, py, N, D);
   /* NaN inputs give a NaN loss, a value; only a set message is an error */
   if (isnan(loss) && ddpm_errmsg()[0]) l_check(L, DDPM_EINVAL, NULL);
   lua_pushnumber(L, loss);
   lua_insert(L, -2);
   return 2;
}

/* loss_simple_per_example(model_out, target) -> losses [N] */
static int l_loss_simple_per_example(lua_State *L)
{
   lua_settop(L, 2);
   const char *what = "loss_simple_per_example";
   ddpm_tensor *o = l_checktensor(L, 1), *y = l_checktensor(L, 2);
   int64_t D;
   int N = batch_of(L, o, &D, what, "model_out");
   same_shape(L, y, o, what, "target", "model_out");
   const float *po = in_data(L, o, what), *py = in_data(L, y, what);
   float *out = out_vec(L, N, what);
   l_check(L, ddpm_loss_simple_per_example(out, po, py, N, D), what);
   return 1;
}

/* vb_terms_bpd(sched, model_out, x0, xt, t [, opts]) -> terms [N], x0_mse [N]
   (bits/dim; opts: mean_type, var_type, clip = false) */
static int l_vb_terms_bpd(lua_State *L)
{
   lua_settop(L, 6);
   const char *what = "vb_terms_bpd";
   static const char *const known[] = { "mean_type", "var_type", "clip", NULL };
   ddpm_schedule *s = check_schedule(L, 1);
   ddpm_tensor *mo = l_checktensor(L, 2), *x0 = l_checktensor(L, 3), *xt = l_checktensor(L, 4);
   check_opts(L, 6, known, what);
   int mt = opt_enum(L, 6, "mean_type", DDPM_MEAN_EPS, ddpm_mean_type_parse, what);
   int vt = opt_enum(L, 6, "var_type", DDPM_VAR_FIXEDLARGE, ddpm_var_type_parse, what);
   int clip = opt_bool(L, 6, "clip", 0, what);
   int N, C, HW;
   image_dims(L, xt, &N, &C, &HW, what, "xt");
   same_shape(L, x0, xt, what, "x0", "xt");
   check_model_out(L, mo, xt, C, vt, what);
   if (lua_isnoneornil(L, 5)) return luaL_argerror(L, 5, "timesteps expected (number, table or tensor)");
   const int *t = read_t(L, 5, N, s, what);
   const float *pmo = in_data(L, mo, what), *p0 = in_data(L, x0, what), *pt = in_data(L, xt, what);
   int top = lua_gettop(L);
   float *terms = out_vec(L, N, what), *mse = out_vec(L, N, what);
   l_check(L, ddpm_vb_terms_bpd(s, terms, mse, NULL, pmo, p0, pt, t, NULL, N, C, HW, mt, vt,
                                clip, 0), what);
   return lua_gettop(L) - top;
}

/* normal_kl(m1, lv1, m2, lv2) -> KL(N(m1, e^lv1) || N(m2, e^lv2)) in nats
   (numbers; docs/math.md §3.2) */
static int l_normal_kl(lua_State *L)
{
   double m1 = luaL_checknumber(L, 1), lv1 = luaL_checknumber(L, 2);
   double m2 = luaL_checknumber(L, 3), lv2 = luaL_checknumber(L, 4);
   lua_pushnumber(L, ddpm_normal_kl(m1, lv1, m2, lv2));
   return 1;
}

/* discretized_gaussian_log_likelihood(x, mu, log_scale) -> log p, d/dmu,
   d/dlog_scale: the decoder of eq. 13 (docs/math.md §3.2) for the 8-bit bin of x in
   [-1, 1] (numbers) */
static int l_discretized_gaussian_log_likelihood(lua_State *L)
{
   double x = luaL_checknumber(L, 1), mu = luaL_checknumber(L, 2), ls = luaL_checknumber(L, 3);
   double dmu = 0, dls = 0;
   lua_pushnumber(L, ddpm_discretized_gaussian_log_likelihood(x, mu, ls, &dmu, &dls));
   lua_pushnumber(L, dmu);
   lua_pushnumber(L, dls);
   return 3;
}

/* prior_bpd(sched, x0) -> L_T per example [N] in bits/dim */
static int l_prior_bpd(lua_State *L)
{
   lua_settop(L, 2);
   const char *what = "prior_bpd";
   ddpm_schedule *s = check_schedule(L, 1);
   ddpm_tensor *x0 = l_checktensor(L, 2);
   int64_t D;
   int N = batch_of(L, x0, &D, what, "x0");
   const float *p0 = in_data(L, x0, what);
   float *out = out_vec(L, N, what);
   l_check(L, ddpm_prior_bpd(s, out, p0, N, D), what);
   return 1;
}

/* training_losses(sched, model_out, x0, xt, eps, t [, opts])
   -> loss, grad (like model_out), losses [N], mse [N], vb [N]
   (opts: mean_type = 'eps', var_type = 'fixedlarge', loss_type = 'mse',
   weights = tensor or table of N numbers) */
static int l_training_losses(lua_State *L)
{
   lua_settop(L, 7);
   const char *what = "training_losses";
   static const char *const known[] = { "mean_type", "var_type", "loss_type", "weights", NULL };
   ddpm_schedule *s = check_schedule(L, 1);
   ddpm_tensor *mo = l_checktensor(L, 2), *x0 = l_checktensor(L, 3), *xt = l_checktensor(L, 4);
   ddpm_tensor *eps = lua_isnoneornil(L, 5) ? NULL : l_checktensor(L, 5);
   check_opts(L, 7, known, what);
   int mt = opt_enum(L, 7, "mean_type", DDPM_MEAN_EPS, ddpm_mean_type_parse, what);
   int vt = opt_enum(L, 7, "var_type", DDPM_VAR_FIXEDLARGE, ddpm_var_type_parse, what);
   int lt = opt_enum(L, 7, "loss_type", DDPM_LOSS_MSE, ddpm_loss_type_parse, what);
   int N, C, HW;
   image_dims(L, xt, &N, &C, &HW, what, "xt");
   same_shape(L, x0, xt, what, "x0", "xt");
   if (eps) same_shape(L, eps, xt, what, "eps", "xt");
   else if ((lt == DDPM_LOSS_MSE || lt == DDPM_LOSS_RESCALED_MSE) &&
            (mt == DDPM_MEAN_EPS || mt == DDPM_MEAN_V))
      return luaL_error(L, "%s: eps is needed for loss_type %s with mean_type %s", what,
                        ddpm_loss_type_name(lt), ddpm_mean_type_name(mt));
   check_model_out(L, mo, xt, C, vt, what);
   if (lua_isnoneornil(L, 6)) return luaL_argerror(L, 6, "timesteps expected (number, table or tensor)");
   const int *t = read_t(L, 6, N, s, what);
   const float *w = NULL;
   int wi = opt_push(L, 7, "weights");
   if (lua_istable(L, wi)) {
      if ((int)lua_objlen(L, wi) != N)
         return luaL_error(L, "%s: %d weights given for a batch of %d", what, (int)lua_objlen(L, wi), N);
      float *wb = lua_newuserdata(L, sizeof(float) * (size_t)N);
      w = wb;
      for (int n = 0; n < N; n++) {
         lua_rawgeti(L, wi, n + 1);
         if (lua_type(L, -1) != LUA_TNUMBER)
            return luaL_error(L, "%s: weight %d is a %s, expected a number", what, n + 1,
                              luaL_typename(L, -1));
         wb[n] = (float)lua_tonumber(L, -1);
         lua_pop(L, 1);
      }
   } else if (!lua_isnil(L, wi)) {
      if (!luaL_testudata(L, wi, DDPM_TENSOR_MT))
         return luaL_error(L, "%s: option 'weights' must be a tensor or a table, got %s", what,
                           luaL_typename(L, wi));
      ddpm_tensor *wt = l_checktensor(L, wi);
      char a[128];
      if (ddpm_tensor_numel(wt) != N)
         return luaL_error(L, "%s: weights %s do not hold one value per example (batch %d)", what,
                           shape(wt, a, sizeof a), N);
      w = in_data(L, wt, what);
   }
   const float *pmo = in_data(L, mo, what), *p0 = in_data(L, x0, what), *pt = in_data(L, xt, what);
   const float *pe = eps ? in_data(L, eps, what) : NULL;
   int top = lua_gettop(L);
   float *g = out_data(L, 0, mo, what, "grad");
   float *losses = out_vec(L, N, what), *mse = out_vec(L, N, what), *vb = out_vec(L, N, what);
   double loss;
   l_check(L, ddpm_training_losses(s, &loss, losses, mse, vb, g, pmo, p0, pt, pe, t, w, N, C, HW,
                                   mt, vt, lt), what);
   lua_pushnumber(L, loss);
   lua_insert(L, top + 1);
   return lua_gettop(L) - top;
}

/* ------------------------------------------------------------------ register */

void l_diffusion_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"T", l_schedule_T}, {"get", l_schedule_get}, {"array", l_schedule_array},
      {"names", l_schedule_names}, {"timestep_map", l_schedule_timestep_map},
      {"respace", l_schedule_respace}, {"free", l_schedule_free}, {NULL, NULL}
   };
   static const luaL_Reg meta[] = {
      {"__gc", l_schedule_gc}, {"__tostring", l_schedule_tostring}, {"__len", l_schedule_len},
      {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"schedule", l_schedule_new}, {"schedule_from_betas", l_schedule_from_betas},
      {"space_timesteps", l_space_timesteps},
      {"q_sample", l_q_sample}, {"predict_x0", l_predict_x0}, {"predict_eps", l_predict_eps},
      {"v_target", l_v_target}, {"q_posterior", l_q_posterior},
      {"p_mean_variance", l_p_mean_variance}, {"p_sample_step", l_p_sample_step},
      {"ddim_step", l_ddim_step}, {"ddim_reverse_step", l_ddim_reverse_step},
      {"normal_kl", l_normal_kl},
      {"discretized_gaussian_log_likelihood", l_discretized_gaussian_log_likelihood},
      {"loss_simple", l_loss_simple}, {"loss_simple_per_example", l_loss_simple_per_example},
      {"vb_terms_bpd", l_vb_terms_bpd}, {"prior_bpd", l_prior_bpd},
      {"training_losses", l_training_losses},
      {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_SCHEDULE_MT);
   luaL_register(L, NULL, meta);
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pushstring(L, DDPM_SCHEDULE_MT);
   lua_setfield(L, -2, "__name");
   lua_setfield(L, -2, "Schedule_mt");   /* module.Schedule_mt = metatable */
   for (const luaL_Reg *f = fns; f->name; f++) {
      lua_pushcfunction(L, f->func);
      lua_setfield(L, -2, f->name);
   }
}
