/*
 * l_tsampler.c — the loss-second-moment timestep sampler (runtime/tsampler.c).
 *   core.tsampler(T [, {history = 10, uniform_prob = 0.001}]) -> ddpm.TSampler
 *   s:sample(N, seed [, counter]) -> t (table of N code indices), weights [N]
 *   s:update(t, losses)   t a table of N indices, losses a tensor of N values
 *   s:probs() -> tensor [T]; s:warm() -> boolean; s:T(); s:history()
 *   s:state() -> tensor [T, history + 1] (count, losses...); s:set_state(tensor)
 */
#include "bind.h"
#include "ddpm/tsampler.h"

#include <math.h>
#include <stdlib.h>

#define DDPM_TSAMPLER_MT "ddpm.TSampler"

typedef struct l_tsampler { ddpm_tsampler *s; } l_tsampler;

static ddpm_tsampler *check_ts(lua_State *L, int idx)
{
   l_tsampler *u = luaL_checkudata(L, idx, DDPM_TSAMPLER_MT);
   if (!u->s) luaL_argerror(L, idx, "timestep sampler was freed");
   return u->s;
}

static double opt_num(lua_State *L, int t, const char *k, double def)
{
   if (lua_isnoneornil(L, t)) return def;
   lua_getfield(L, t, k);
   if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "tsampler: option '%s' must be a number, got %s", k, luaL_typename(L, -1));
   double v = luaL_optnumber(L, -1, def);
   lua_pop(L, 1);
   return v;
}

static int l_tsampler_new(lua_State *L)
{
   double T = luaL_checknumber(L, 1);
   luaL_argcheck(L, T >= 1 && T <= 1e7 && T == floor(T), 1, "T must be a positive integer");
   if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
   double h = opt_num(L, 2, "history", 10), u = opt_num(L, 2, "uniform_prob", 0.001);
   if (!(h >= 1 && h <= 1e6 && h == floor(h)))
      return luaL_error(L, "tsampler: history = %g must be a positive integer", h);
   l_tsampler *ud = lua_newuserdata(L, sizeof *ud);
   ud->s = NULL;
   luaL_getmetatable(L, DDPM_TSAMPLER_MT);
   lua_setmetatable(L, -2);
   ud->s = ddpm_tsampler_new((int)T, (int)h, u);
   l_check_ptr(L, ud->s, NULL);
   return 1;
}

static int l_tsampler_gc(lua_State *L)
{
   l_tsampler *u = luaL_checkudata(L, 1, DDPM_TSAMPLER_MT);
   ddpm_tsampler_free(u->s);
   u->s = NULL;
   return 0;
}

static int l_tsampler_sample(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   double n = luaL_checknumber(L, 2), seed = luaL_checknumber(L, 3), c = luaL_optnumber(L, 4, 0);
   luaL_argcheck(L, n >= 1 && n <= (1 << 24) && n == floor(n), 2, "count must be a positive integer");
   luaL_argcheck(L, seed >= 0 && seed == floor(seed), 3, "seed must be a non-negative integer");
   luaL_argcheck(L, c >= 0 && c == floor(c), 4, "counter must be a non-negative integer");
   const int N = (int)n;
   ddpm_tensor *w = ddpm_tensor_new_1d(N);
   l_check_ptr(L, w, "tsampler:sample");
   int *t = malloc(sizeof *t * (size_t)N);
   if (!t) { ddpm_tensor_release(w); return luaL_error(L, "tsampler:sample: out of memory"); }
   ddpm_tsampler_sample(s, N, (uint64_t)seed, (uint64_t)c, t, ddpm_tensor_data(w));
   lua_createtable(L, N, 0);
   for (int i = 0; i < N; i++) {
      lua_pushinteger(L, t[i]);
      lua_rawseti(L, -2, i + 1);
   }
   free(t);
   l_pushtensor(L, w);
   return 2;
}

static int l_tsampler_update(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   luaL_checktype(L, 2, LUA_TTABLE);
   ddpm_tensor *l = l_checktensor(L, 3);
   const int N = (int)lua_objlen(L, 2);
   if (ddpm_tensor_numel(l) != N || !ddpm_tensor_is_contiguous(l))
      return luaL_error(L, "tsampler:update: %d timesteps but %d losses (a contiguous tensor)", N,
                        (int)ddpm_tensor_numel(l));
   int *t = lua_newuserdata(L, sizeof *t * (size_t)(N ? N : 1));
   for (int i = 0; i < N; i++) {
      lua_rawgeti(L, 2, i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
         return luaL_error(L, "tsampler:update: timestep %d is a %s", i + 1, luaL_typename(L, -1));
      t[i] = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
   }
   l_check(L, ddpm_tsampler_update(s, t, ddpm_tensor_data(l), N), "tsampler:update");
   return 0;
}

static int l_tsampler_probs(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   double *p = lua_newuserdata(L, sizeof *p * (size_t)s->T);
   ddpm_tsampler_probs(s, p);
   ddpm_tensor *o = ddpm_tensor_new_1d(s->T);
   l_check_ptr(L, o, "tsampler:probs");
   float *d = ddpm_tensor_data(o);
   for (int i = 0; i < s->T; i++) d[i] = (float)p[i];
   l_pushtensor(L, o);
   return 1;
}

static int l_tsampler_warm(lua_State *L)
{
   lua_pushboolean(L, ddpm_tsampler_warm(check_ts(L, 1)));
   return 1;
}

static int l_tsampler_T(lua_State *L) { lua_pushinteger(L, check_ts(L, 1)->T); return 1; }
static int l_tsampler_history(lua_State *L) { lua_pushinteger(L, check_ts(L, 1)->history); return 1; }

static int l_tsampler_state(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   int64_t size[2] = {s->T, s->history + 1};
   ddpm_tensor *o = ddpm_tensor_new(2, size);
   l_check_ptr(L, o, "tsampler:state");
   ddpm_tsampler_get_state(s, ddpm_tensor_data(o));
   l_pushtensor(L, o);
   return 1;
}

static int l_tsampler_set_state(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   ddpm_tensor *st = l_checktensor(L, 2);
   if (st->ndim != 2 || st->size[0] != s->T || st->size[1] != s->history + 1 ||
       !ddpm_tensor_is_contiguous(st))
      return luaL_error(L, "tsampler:set_state: expected a contiguous [%d, %d] tensor", s->T,
                        s->history + 1);
   l_check(L, ddpm_tsampler_set_state(s, ddpm_tensor_data(st)), "tsampler:set_state");
   return 0;
}

static int l_tsampler_tostring(lua_State *L)
{
   ddpm_tsampler *s = check_ts(L, 1);
   lua_pushfstring(L, "ddpm.TSampler(T = %d, history = %d, %s)", s->T, s->history,
                   ddpm_tsampler_warm(s) ? "warm" : "uniform until every t has its history");
   return 1;
}

void l_tsampler_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"sample", l_tsampler_sample}, {"update", l_tsampler_update}, {"probs", l_tsampler_probs},
      {"warm", l_tsampler_warm}, {"T", l_tsampler_T}, {"history", l_tsampler_history},
      {"state", l_tsampler_state}, {"set_state", l_tsampler_set_state}, {"free", l_tsampler_gc},
      {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_TSAMPLER_MT);
   lua_pushcfunction(L, l_tsampler_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_tsampler_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   lua_pushcfunction(L, l_tsampler_new);
   lua_setfield(L, -2, "tsampler");
}
