/*
 * l_plot.c — core.plot_lines over runtime/plot.c (PLplot, cairo PNG):
 *
 *   core.plot_lines('loss.png', {
 *        {name = 'run 3', x = {1, 2, 3}, y = {0.9, 0.5, 0.4}},
 *        {name = 'run 4', x = {...}, y = {...}},
 *     }, {title = 'loss', xlabel = 'step', ylabel = 'loss', logy = false,
 *         width = 800, height = 500})
 *   core.plot_colors -> {'#1f77b4', ...}   the series colours, in order
 *
 * x and y are arrays of numbers of the same length; NaN and +-Inf are
 * allowed (left out of the line). Anything else wrong is a Lua error.
 */
#include "bind.h"
#include "ddpm/plot.h"

#include <stdio.h>
#include <string.h>

void l_plot_register(lua_State *L);

/* Reads field k of the series table at idx as an array of n numbers (n < 0:
   take its length) into GC-owned memory. */
static double *read_numbers(lua_State *L, int idx, int s, const char *k, int *n)
{
   lua_getfield(L, idx, k);
   if (!lua_istable(L, -1))
      luaL_error(L, "plot_lines: series %d: field '%s' must be an array of numbers, got %s", s, k,
                 luaL_typename(L, -1));
   int len = (int)lua_objlen(L, -1);
   if (*n >= 0 && len != *n)
      luaL_error(L, "plot_lines: series %d: x has %d values but y has %d", s, *n, len);
   double *v = lua_newuserdata(L, sizeof *v * (size_t)(len ? len : 1));
   for (int i = 0; i < len; i++) {
      lua_rawgeti(L, -2, i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "plot_lines: series %d: %s[%d] must be a number, got %s", s, k, i + 1,
                    luaL_typename(L, -1));
      v[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
   }
   lua_remove(L, -2);   /* the array; the userdata stays on the stack */
   *n = len;
   return v;
}

static const char *opt_field_str(lua_State *L, int idx, const char *k)
{
   lua_getfield(L, idx, k);
   const char *s = NULL;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "plot_lines: option '%s' must be a string, got %s", k, luaL_typename(L, -1));
      s = lua_tostring(L, -1);
   }
   lua_pop(L, 1);   /* the options table keeps a string alive (numbers: see below) */
   return s;
}

static int opt_field_int(lua_State *L, int idx, const char *k, int def)
{
   lua_getfield(L, idx, k);
   int v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "plot_lines: option '%s' must be a number, got %s", k, luaL_typename(L, -1));
      v = (int)lua_tonumber(L, -1);
   }
   lua_pop(L, 1);
   return v;
}

/* plot_lines(path, series, opt) */
static int l_plot_lines(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   luaL_checktype(L, 2, LUA_TTABLE);
   if (lua_isnoneornil(L, 3)) { lua_settop(L, 2); lua_newtable(L); }
   luaL_checktype(L, 3, LUA_TTABLE);
   lua_settop(L, 3);
   static const char *const known[] = {"title", "xlabel", "ylabel", "logy", "width", "height", NULL};
   lua_pushnil(L);
   while (lua_next(L, 3)) {
      int ok = 0;
      if (lua_type(L, -2) == LUA_TSTRING)
         for (int i = 0; known[i] && !ok; i++) ok = strcmp(lua_tostring(L, -2), known[i]) == 0;
      if (!ok) {
         lua_pop(L, 1);
         return luaL_error(L, "plot_lines: unknown option '%s' (known: title, xlabel, ylabel, "
                              "logy, width, height)", lua_type(L, -1) == LUA_TSTRING
                              ? lua_tostring(L, -1) : luaL_typename(L, -1));
      }
      lua_pop(L, 1);
   }
   /* numbers given as title/labels become strings in the table itself, so
      the pointers below stay valid */
   ddpm_plot_opts o = DDPM_PLOT_OPTS_DEFAULT;
   o.title = opt_field_str(L, 3, "title");
   o.xlabel = opt_field_str(L, 3, "xlabel");
   o.ylabel = opt_field_str(L, 3, "ylabel");
   lua_getfield(L, 3, "logy");
   o.y_axis = lua_toboolean(L, -1) ? DDPM_AXIS_LOG10 : DDPM_AXIS_LINEAR;
   lua_pop(L, 1);
   o.width = opt_field_int(L, 3, "width", o.width);
   o.height = opt_field_int(L, 3, "height", o.height);

   int n = (int)lua_objlen(L, 2);
   if (n < 1 || n > 1000)
      return luaL_error(L, "plot_lines: expected 1 to 1000 series {name=, x=, y=}, got %d", n);
   if (!lua_checkstack(L, 2 * n + 16)) return luaL_error(L, "plot_lines: Lua stack overflow");
   const double **xs = lua_newuserdata(L, sizeof *xs * (size_t)n);
   const double **ys = lua_newuserdata(L, sizeof *ys * (size_t)n);
   int *ns = lua_newuserdata(L, sizeof *ns * (size_t)n);
   const char **names = lua_newuserdata(L, sizeof *names * (size_t)n);
   int names_tbl = lua_gettop(L) + 1;
   lua_newtable(L);   /* keeps the name strings alive */
   for (int s = 1; s <= n; s++) {
      lua_rawgeti(L, 2, s);
      if (!lua_istable(L, -1))
         return luaL_error(L, "plot_lines: series %d must be a table {name=, x=, y=}, got %s", s,
                           luaL_typename(L, -1));
      int t = lua_gettop(L);
      int len = -1;
      xs[s - 1] = read_numbers(L, t, s, "x", &len);
      lua_insert(L, t);   /* userdata below the series table */
      t++;
      ys[s - 1] = read_numbers(L, t, s, "y", &len);
      lua_insert(L, t);
      t++;
      ns[s - 1] = len;
      lua_getfield(L, t, "name");
      if (lua_isnil(L, -1)) {
         names[s - 1] = NULL;
         lua_pop(L, 1);
      } else {
         const char *nm = lua_tostring(L, -1);
         if (!nm) return luaL_error(L, "plot_lines: series %d: name must be a string", s);
         names[s - 1] = nm;
         lua_rawseti(L, names_tbl, s);
      }
      lua_pop(L, 1);   /* the series table */
   }
   l_check(L, ddpm_plot_lines(path, n, names, xs, ys, ns, &o), NULL);   /* "plot: ..." */
   return 0;
}

void l_plot_register(lua_State *L)
{
   static const luaL_Reg fns[] = {{"plot_lines", l_plot_lines}, {NULL, NULL}};
   luaL_register(L, NULL, fns);
   lua_createtable(L, DDPM_PLOT_NCOLORS, 0);
   for (int i = 0; i < DDPM_PLOT_NCOLORS; i++) {
      char hex[8];
      snprintf(hex, sizeof hex, "#%06x", ddpm_plot_colors[i]);
      lua_pushstring(L, hex);
      lua_rawseti(L, -2, i + 1);
   }
   lua_setfield(L, -2, "plot_colors");
}
