/*
 * l_io.c — safetensors files as Lua tables of tensors.
 *   load_safetensors(path) -> {name = tensor, ...}, {metadata key = value}
 *   save_safetensors(path, {name = tensor, ...} [, {key = string}])
 * and the helpers other bindings share for new tensors and file metadata
 * (bind.h).
 */
#include "bind.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ shared helpers (bind.h) */

void *l_check_ptr(lua_State *L, void *p, const char *what)
{
   if (!p) l_check(L, DDPM_EINVAL, what);   /* any status: the message is ddpm_errmsg() */
   return p;
}

/* A new float tensor pushed on the stack (Lua owns it from here). */
float *l_new_tensor(lua_State *L, int ndim, int64_t a, int64_t b, const char *what)
{
   int64_t size[2] = {a, b};
   ddpm_tensor *t = ddpm_tensor_new(ndim, size);
   l_check_ptr(L, t, what);
   l_pushtensor(L, t);
   l_track(L, t);
   return ddpm_tensor_data(t);
}

/* Optional {key = string} table at idx into parallel arrays (max 32),
   sorted by key: a Lua table's order varies, and a file written from the
   same values must come out byte for byte the same (its sha256 is a key). */
int l_read_metadata(lua_State *L, int idx, const char **keys, const char **vals, const char *what)
{
   if (lua_isnoneornil(L, idx)) return 0;
   luaL_checktype(L, idx, LUA_TTABLE);
   int n = 0;
   lua_pushnil(L);
   while (lua_next(L, idx)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
         luaL_error(L, "%s: metadata must map strings to strings (got %s = %s)", what,
                    luaL_typename(L, -2), luaL_typename(L, -1));
      if (n == 32) luaL_error(L, "%s: more than 32 metadata entries", what);
      keys[n] = lua_tostring(L, -2);   /* the table keeps the strings alive */
      vals[n] = lua_tostring(L, -1);
      for (int i = n; i > 0 && strcmp(keys[i - 1], keys[i]) > 0; i--) {   /* insertion sort */
         const char *k = keys[i], *v = vals[i];
         keys[i] = keys[i - 1]; vals[i] = vals[i - 1];
         keys[i - 1] = k; vals[i - 1] = v;
      }
      n++;
      lua_pop(L, 1);
   }
   return n;
}

void l_push_metadata(lua_State *L, const ddpm_st_file *f)
{
   int nm = ddpm_st_metadata_count(f);
   lua_createtable(L, 0, nm);
   for (int i = 0; i < nm; i++) {
      const char *k = ddpm_st_metadata_key(f, i);
      lua_pushstring(L, ddpm_st_metadata(f, k));
      lua_setfield(L, -2, k);
   }
}

/* ------------------------------------------------------------ files */

static int l_load_safetensors(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   ddpm_st_file *f = ddpm_st_open(path);
   l_check_ptr(L, f, "load_safetensors");
   int n = ddpm_st_count(f);
   lua_createtable(L, 0, n);
   for (int i = 0; i < n; i++) {
      const ddpm_st_entry *e = ddpm_st_entry_at(f, i);
      ddpm_tensor *t = ddpm_tensor_new(e->ndim, e->shape);
      if (!t) {
         ddpm_st_close(f);
         l_check_ptr(L, NULL, lua_pushfstring(L, "load_safetensors: %s: tensor '%s'", path, e->name));
      }
      int rc = ddpm_st_read_f32(f, i, ddpm_tensor_data(t), (size_t)ddpm_tensor_numel(t));
      if (rc != DDPM_OK) {
         ddpm_tensor_release(t);
         ddpm_st_close(f);
         l_check(L, rc, "load_safetensors");
      }
      l_pushtensor(L, t);
      lua_setfield(L, -2, e->name);
   }
   l_push_metadata(L, f);
   ddpm_st_close(f);
   return 2;
}

static int l_save_safetensors(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   luaL_checktype(L, 2, LUA_TTABLE);
   if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
   /* Check every entry first; collect into arrays owned by a userdata-free
      scratch that we free on every path (no Lua error between malloc/free). */
   int n = 0, nm = 0;
   lua_pushnil(L);
   while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING)
         return luaL_error(L, "save_safetensors: keys must be strings (tensor names), got %s",
                           luaL_typename(L, -2));
      if (!luaL_testudata(L, -1, DDPM_TENSOR_MT))
         return luaL_error(L, "save_safetensors: '%s' is a %s, expected a ddpm.Tensor",
                           lua_tostring(L, -2), luaL_typename(L, -1));
      l_checktensor(L, -1);
      n++;
      lua_pop(L, 1);
   }
   if (!lua_isnoneornil(L, 3)) {
      lua_pushnil(L);
      while (lua_next(L, 3)) {
         if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "save_safetensors: metadata must map strings to strings");
         nm++;
         lua_pop(L, 1);
      }
   }
   const char **names = calloc((size_t)n + 1, sizeof *names);
   int *ndims = calloc((size_t)n + 1, sizeof *ndims);
   const int64_t **shapes = calloc((size_t)n + 1, sizeof *shapes);
   const float **data = calloc((size_t)n + 1, sizeof *data);
   ddpm_tensor **tmp = calloc((size_t)n + 1, sizeof *tmp);
   const char **mk = calloc((size_t)nm + 1, sizeof *mk), **mv = calloc((size_t)nm + 1, sizeof *mv);
   int rc = DDPM_OK, i = 0;
   if (!names || !ndims || !shapes || !data || !tmp || !mk || !mv) {
      rc = ddpm_seterr(DDPM_ENOMEM, "out of memory");
      goto done;
   }
   lua_pushnil(L);
   while (lua_next(L, 2)) {    /* keys and values stay alive on the caller's table */
      l_tensor *u = lua_touserdata(L, -1);
      ddpm_tensor *t = u->t;
      if (!ddpm_tensor_is_contiguous(t)) {
         tmp[i] = ddpm_tensor_clone(t);
         if (!tmp[i]) { rc = DDPM_ENOMEM; lua_pop(L, 2); goto done; }
         t = tmp[i];
      }
      names[i] = lua_tostring(L, -2);
      ndims[i] = t->ndim;
      shapes[i] = t->size;
      data[i] = ddpm_tensor_data(t);
      i++;
      lua_pop(L, 1);
   }
   if (nm) {
      int j = 0;
      lua_pushnil(L);
      while (lua_next(L, 3)) {
         mk[j] = lua_tostring(L, -2);
         mv[j] = lua_tostring(L, -1);
         j++;
         lua_pop(L, 1);
      }
   }
   rc = ddpm_st_write(path, n, names, ndims, shapes, data, nm, mk, mv);
done:
   for (int k = 0; k < n && tmp; k++) ddpm_tensor_release(tmp[k]);
   free(names); free(ndims); free(shapes); free(data); free(tmp); free(mk); free(mv);
   l_check(L, rc, "save_safetensors");
   return 0;
}

/* remove_stale_temps(dir) -> how many temp files of killed writers were removed */
static int l_remove_stale_temps(lua_State *L)
{
   const char *dir = luaL_checkstring(L, 1);
   int removed = 0;
   l_check(L, ddpm_remove_stale_temps(dir, &removed), "remove_stale_temps");
   lua_pushinteger(L, removed);
   return 1;
}

void l_io_register(lua_State *L)
{
   lua_pushcfunction(L, l_remove_stale_temps);
   lua_setfield(L, -2, "remove_stale_temps");
   lua_pushcfunction(L, l_load_safetensors);
   lua_setfield(L, -2, "load_safetensors");
   lua_pushcfunction(L, l_save_safetensors);
   lua_setfield(L, -2, "save_safetensors");
}
