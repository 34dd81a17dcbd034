/*
 * l_dist.c — ddpm.core's data-parallel functions (runtime/include/ddpm/dist.h):
 *
 *   core.dist_active() core.dist_rank() core.dist_size() core.dist_local_rank()
 *   core.dist_allreduce(tensor [, 'sum'|'max'|'min'])     in place, float32
 *   core.dist_allreduce_numbers({...} [, op]) -> {...}    float64
 *   core.dist_broadcast(tensor [, root])                  in place
 *   core.dist_broadcast_string(s [, root]) -> s           root's string
 *   core.dist_barrier()
 *   core.dist_same(s) -> bool, first differing rank|nil   same bytes on every rank?
 *   core.dist_timeout() core.dist_set_timeout(seconds)
 *   core.dist_abort(code)  core.dist_finalize()
 *   core.hash64(tensor | string) -> 16 hex digits
 *
 * Outside an MPI job every collective is a no-op on a world of one.
 */
#include "bind.h"
#include "ddpm/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void l_dist_register(lua_State *L);

static ddpm_dist_op check_op(lua_State *L, int idx)
{
   const char *s = luaL_optstring(L, idx, "sum");
   if (strcmp(s, "sum") == 0) return DDPM_DIST_SUM;
   if (strcmp(s, "max") == 0) return DDPM_DIST_MAX;
   if (strcmp(s, "min") == 0) return DDPM_DIST_MIN;
   luaL_argerror(L, idx, lua_pushfstring(L, "op must be 'sum', 'max' or 'min', got '%s'", s));
   return DDPM_DIST_SUM;
}

static int check_root(lua_State *L, int idx)
{
   double r = luaL_optnumber(L, idx, 0);
   luaL_argcheck(L, r >= 0 && r == floor(r) && r < ddpm_dist_size(), idx,
                 lua_pushfstring(L, "root must be a rank in 0..%d", ddpm_dist_size() - 1));
   return (int)r;
}

static float *contiguous_data(lua_State *L, int idx, const char *what, int64_t *n)
{
   ddpm_tensor *t = l_checktensor(L, idx);
   if (!ddpm_tensor_is_contiguous(t))
      luaL_error(L, "%s: the tensor must be contiguous (use :contiguous())", what);
   *n = ddpm_tensor_numel(t);
   return ddpm_tensor_data(t);
}

static int l_active(lua_State *L) { lua_pushboolean(L, ddpm_dist_active()); return 1; }
static int l_rank(lua_State *L) { lua_pushinteger(L, ddpm_dist_rank()); return 1; }
static int l_size(lua_State *L) { lua_pushinteger(L, ddpm_dist_size()); return 1; }
static int l_local_rank(lua_State *L) { lua_pushinteger(L, ddpm_dist_local_rank()); return 1; }

static int l_allreduce(lua_State *L)
{
   int64_t n;
   float *p = contiguous_data(L, 1, "dist_allreduce", &n);
   ddpm_dist_op op = check_op(L, 2);
   l_check(L, ddpm_dist_allreduce_f32(p, n, op), "dist_allreduce");
   lua_settop(L, 1);
   return 1;
}

static int l_allreduce_numbers(lua_State *L)
{
   luaL_checktype(L, 1, LUA_TTABLE);
   ddpm_dist_op op = check_op(L, 2);
   int n = (int)lua_objlen(L, 1);
   double *v = lua_newuserdata(L, (size_t)(n > 0 ? n : 1) * sizeof(double));
   for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 1, i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
         return luaL_error(L, "dist_allreduce_numbers: element %d is a %s, not a number", i + 1,
                           luaL_typename(L, -1));
      v[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
   }
   l_check(L, ddpm_dist_allreduce_f64(v, n, op), "dist_allreduce_numbers");
   lua_createtable(L, n, 0);
   for (int i = 0; i < n; i++) {
      lua_pushnumber(L, v[i]);
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

static int l_broadcast(lua_State *L)
{
   int64_t n;
   float *p = contiguous_data(L, 1, "dist_broadcast", &n);
   int root = check_root(L, 2);
   l_check(L, ddpm_dist_broadcast(p, n * (int64_t)sizeof(float), root), "dist_broadcast");
   lua_settop(L, 1);
   return 1;
}

static int l_broadcast_string(lua_State *L)
{
   size_t len;
   const char *s = luaL_checklstring(L, 1, &len);
   int root = check_root(L, 2);
   double n = (double)len;
   l_check(L, ddpm_dist_broadcast(&n, sizeof n, root), "dist_broadcast_string");
   char *buf = lua_newuserdata(L, (size_t)n + 1);
   if (ddpm_dist_rank() == root) memcpy(buf, s, len);
   l_check(L, ddpm_dist_broadcast(buf, (int64_t)n, root), "dist_broadcast_string");
   lua_pushlstring(L, buf, (size_t)n);
   return 1;
}

static int l_barrier(lua_State *L)
{
   l_check(L, ddpm_dist_barrier(), "dist_barrier");
   return 0;
}

static int l_same(lua_State *L)
{
   size_t len;
   const char *s = luaL_checklstring(L, 1, &len);
   int same = 1, first = -1;
   l_check(L, ddpm_dist_same(s, (int64_t)len, &same, &first), "dist_same");
   lua_pushboolean(L, same);
   if (same) lua_pushnil(L); else lua_pushinteger(L, first);
   return 2;
}

static int l_timeout(lua_State *L) { lua_pushnumber(L, ddpm_dist_timeout()); return 1; }

static int l_set_timeout(lua_State *L)
{
   double s = luaL_checknumber(L, 1);
   luaL_argcheck(L, s > 0, 1, "timeout must be positive (seconds)");
   ddpm_dist_set_timeout(s);
   return 0;
}

static int l_abort(lua_State *L)
{
   int code = (int)luaL_optinteger(L, 1, 1);
   fflush(stdout);
   fflush(stderr);
   ddpm_dist_abort(code);
   return 0;
}

static int l_finalize(lua_State *L)
{
   l_check(L, ddpm_dist_finalize(), "dist_finalize");
   return 0;
}

static int l_hash64(lua_State *L)
{
   uint64_t h;
   if (lua_type(L, 1) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, 1, &len);
      h = ddpm_hash64(s, (int64_t)len);
   } else {
      int64_t n;
      float *p = contiguous_data(L, 1, "hash64", &n);
      h = ddpm_hash64(p, n * (int64_t)sizeof(float));
   }
   char hex[17];
   snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
   lua_pushstring(L, hex);
   return 1;
}

void l_dist_register(lua_State *L)
{
   static const luaL_Reg fns[] = {
      {"dist_active", l_active}, {"dist_rank", l_rank}, {"dist_size", l_size},
      {"dist_local_rank", l_local_rank}, {"dist_allreduce", l_allreduce},
      {"dist_allreduce_numbers", l_allreduce_numbers}, {"dist_broadcast", l_broadcast},
      {"dist_broadcast_string", l_broadcast_string}, {"dist_barrier", l_barrier},
      {"dist_same", l_same}, {"dist_timeout", l_timeout}, {"dist_set_timeout", l_set_timeout},
      {"dist_abort", l_abort}, {"dist_finalize", l_finalize}, {"hash64", l_hash64},
      {NULL, NULL}
   };
   luaL_register(L, NULL, fns);
}
