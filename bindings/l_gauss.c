/*
 * l_gauss.c — Gaussian feature statistics and the Fréchet distance for Lua
 * (runtime/frechet.c), the statistics behind FD-LeNet and FID.
 *
 *   core.gauss_stats(D) -> ddpm.GaussStats;  core.gauss_load(path) -> g, {metadata}
 *   g:add(rows [N,D]), g:merge(other), g:allreduce(), g:count(), g:dim(),
 *   g:mean(), g:cov() (float32 copies), g:save(path [, {key = string}]), g:free()
 *   core.frechet_distance(g1, g2) -> fd, {mean_term=, tr1=, tr2=, tr_sqrt=, min_eig=}
 */
#include "bind.h"
#include "ddpm/frechet.h"

#include <math.h>

#define DDPM_GAUSS_MT "ddpm.GaussStats"

typedef struct l_gauss { ddpm_gauss *g; } l_gauss;

static ddpm_gauss *check_gauss(lua_State *L, int idx)
{
   l_gauss *u = luaL_testudata(L, idx, DDPM_GAUSS_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.GaussStats expected, got %s", luaL_typename(L, idx)));
   if (!u->g) luaL_argerror(L, idx, "the statistics were freed (g:free()) and cannot be used");
   return u->g;
}

static l_gauss *push_gauss_ud(lua_State *L)
{
   l_gauss *u = lua_newuserdata(L, sizeof *u);
   u->g = NULL;
   luaL_getmetatable(L, DDPM_GAUSS_MT);
   lua_setmetatable(L, -2);
   return u;
}

static int l_gauss_new(lua_State *L)
{
   double D = luaL_checknumber(L, 1);
   luaL_argcheck(L, D >= 1 && D <= 16384 && D == floor(D), 1, "dimension must be an integer in 1..16384");
   l_gauss *u = push_gauss_ud(L);
   u->g = ddpm_gauss_new((int)D);
   l_check_ptr(L, u->g, "gauss_stats");
   return 1;
}

static int l_gauss_load(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   l_gauss *u = push_gauss_ud(L);
   u->g = ddpm_gauss_load(path);
   l_check_ptr(L, u->g, "gauss_load");
   ddpm_st_file *f = ddpm_st_open(path);
   l_check_ptr(L, f, "gauss_load");
   l_push_metadata(L, f);
   ddpm_st_close(f);
   return 2;
}

static int l_gauss_add(lua_State *L)
{
   ddpm_gauss *g = check_gauss(L, 1);
   ddpm_tensor *x = l_checktensor(L, 2);
   if (x->ndim != 2 || x->size[1] != g->D) {
      char s[128];
      return luaL_error(L, "gauss add: expected rows [N,%d], got %s", g->D, ddpm_tensor_shape_str(x, s, sizeof s));
   }
   const float *p = ddpm_tensor_data(x);
   if (!ddpm_tensor_is_contiguous(x)) {
      ddpm_tensor *c = ddpm_tensor_clone(x);
      l_check_ptr(L, c, "gauss add");
      l_pushtensor(L, c);
      p = ddpm_tensor_data(c);
   }
   l_check(L, ddpm_gauss_add(g, p, x->size[0]), "gauss add");
   return 0;
}

static int l_gauss_merge(lua_State *L)
{
   l_check(L, ddpm_gauss_merge(check_gauss(L, 1), check_gauss(L, 2)), "gauss merge");
   return 0;
}

static int l_gauss_allreduce(lua_State *L)
{
   l_check(L, ddpm_gauss_allreduce(check_gauss(L, 1)), "gauss allreduce");
   return 0;
}

static int l_gauss_count(lua_State *L)
{
   lua_pushnumber(L, (double)check_gauss(L, 1)->n);
   return 1;
}

static int l_gauss_dim(lua_State *L)
{
   lua_pushinteger(L, check_gauss(L, 1)->D);
   return 1;
}

static int l_gauss_mean(lua_State *L)
{
   ddpm_gauss *g = check_gauss(L, 1);
   float *p = l_new_tensor(L, 1, g->D, 0, "gauss mean");
   for (int i = 0; i < g->D; i++) p[i] = (float)g->mean[i];
   return 1;
}

static int l_gauss_cov(lua_State *L)
{
   ddpm_gauss *g = check_gauss(L, 1);
   const size_t DD = (size_t)g->D * g->D;
   double *cov = lua_newuserdata(L, DD * sizeof *cov);   /* freed by the GC */
   l_check(L, ddpm_gauss_cov(g, cov), "g:cov");
   float *p = l_new_tensor(L, 2, g->D, g->D, "gauss cov");
   for (size_t i = 0; i < DD; i++) p[i] = (float)cov[i];
   return 1;
}

static int l_gauss_save(lua_State *L)
{
   ddpm_gauss *g = check_gauss(L, 1);
   const char *path = luaL_checkstring(L, 2);
   const char *keys[32], *vals[32];
   int n = l_read_metadata(L, 3, keys, vals, "gauss save");
   l_check(L, ddpm_gauss_save(g, path, n, keys, vals), "gauss save");
   return 0;
}

static int l_gauss_gc(lua_State *L)
{
   l_gauss *u = luaL_checkudata(L, 1, DDPM_GAUSS_MT);
   ddpm_gauss_free(u->g);
   u->g = NULL;
   return 0;
}

static int l_gauss_free(lua_State *L)
{
   check_gauss(L, 1);
   return l_gauss_gc(L);
}

static int l_gauss_tostring(lua_State *L)
{
   l_gauss *u = luaL_checkudata(L, 1, DDPM_GAUSS_MT);
   if (!u->g) lua_pushstring(L, "[ddpm.GaussStats (freed)]");
   else lua_pushfstring(L, "[ddpm.GaussStats D=%d n=%d]", u->g->D, (int)u->g->n);
   return 1;
}

static int l_frechet_distance(lua_State *L)
{
   ddpm_gauss *a = check_gauss(L, 1), *b = check_gauss(L, 2);
   double fd;
   ddpm_frechet_parts p;
   l_check(L, ddpm_frechet_gauss(&fd, &p, a, b), "frechet_distance");
   lua_pushnumber(L, fd);
   lua_createtable(L, 0, 5);
   lua_pushnumber(L, p.mean_term); lua_setfield(L, -2, "mean_term");
   lua_pushnumber(L, p.tr1); lua_setfield(L, -2, "tr1");
   lua_pushnumber(L, p.tr2); lua_setfield(L, -2, "tr2");
   lua_pushnumber(L, p.tr_sqrt); lua_setfield(L, -2, "tr_sqrt");
   lua_pushnumber(L, p.min_eig); lua_setfield(L, -2, "min_eig");
   return 2;
}

void l_gauss_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"add", l_gauss_add}, {"merge", l_gauss_merge}, {"allreduce", l_gauss_allreduce}, {"count", l_gauss_count},
      {"dim", l_gauss_dim}, {"mean", l_gauss_mean}, {"cov", l_gauss_cov},
      {"save", l_gauss_save}, {"free", l_gauss_free}, {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"gauss_stats", l_gauss_new}, {"gauss_load", l_gauss_load},
      {"frechet_distance", l_frechet_distance}, {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_GAUSS_MT);
   lua_pushcfunction(L, l_gauss_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_gauss_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   luaL_register(L, NULL, fns);
}
