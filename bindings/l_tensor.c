/*
 * l_tensor.c — the ddpm.Tensor userdata: construction, shape, indexing,
 * arithmetic, reductions and printing. Indices are 1-based, as in torch7.
 *
 * Every function checks all of its arguments before allocating, and raises a
 * Lua error (never crashes) on a wrong type, a wrong shape or a freed tensor.
 */
#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Bytes allocated since the last full GC: big tensors are invisible to Lua's
   own accounting (the userdata is 8 bytes), so temporaries such as those of
   ((x + 1) * 2 - x) / 3 would wait for a collection that Lua's small heap
   never asks for. A full collection runs once the tensors made since the
   last one pass 16 MB and the size of Lua's own heap: the memory held by
   dead temporaries stays bounded, and the collector's work (proportional to
   the Lua heap) stays at most about one byte traversed per tensor byte. */
static size_t l_heap_bytes;
#define L_HEAP_MIN ((size_t)16 << 20)

void l_track(lua_State *L, const ddpm_tensor *t)
{
   l_heap_bytes += (size_t)ddpm_tensor_numel(t) * sizeof(float);
   if (l_heap_bytes > L_HEAP_MIN && l_heap_bytes > (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024) {
      l_heap_bytes = 0;
      lua_gc(L, LUA_GCCOLLECT, 0);
   }
}

void l_check(lua_State *L, int rc, const char *what)
{
   if (rc == DDPM_OK) return;
   if (what) luaL_error(L, "%s: %s", what, ddpm_errmsg());
   luaL_error(L, "%s", ddpm_errmsg());
}

void l_pushtensor(lua_State *L, ddpm_tensor *t)
{
   l_tensor *u = lua_newuserdata(L, sizeof *u);
   u->t = NULL;
   luaL_getmetatable(L, DDPM_TENSOR_MT);
   lua_setmetatable(L, -2);
   u->t = t;
}

ddpm_tensor *l_checktensor(lua_State *L, int idx)
{
   l_tensor *u = luaL_testudata(L, idx, DDPM_TENSOR_MT);
   if (!u) {
      const char *got = luaL_typename(L, idx);
      luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.Tensor expected, got %s", got));
   }
   if (!u->t) luaL_argerror(L, idx, "tensor was freed (t:free()) and cannot be used");
   /* every binding that may write a tensor's data gets it here: counting
      each as a write keeps caches of the data (the U-Net's bfloat16
      filters) from going stale, whatever the binding does with it */
   ddpm_tensor_touch(u->t);
   return u->t;
}


/* Pushes a new tensor or raises the runtime's message. */
static void push_new(lua_State *L, ddpm_tensor *t, const char *what)
{
   l_check_ptr(L, t, what);
   l_track(L, t);
   l_pushtensor(L, t);
}

/* Reads sizes from a table or from the numbers at idx.. (up to top). */
static int read_sizes(lua_State *L, int idx, int64_t *size, const char *what)
{
   int n = 0;
   if (lua_istable(L, idx)) {
      n = (int)lua_objlen(L, idx);
      if (n > DDPM_MAX_DIMS) luaL_error(L, "%s: %d dimensions (at most %d)", what, n, DDPM_MAX_DIMS);
      for (int i = 0; i < n; i++) {
         lua_rawgeti(L, idx, i + 1);
         if (!lua_isnumber(L, -1))
            luaL_error(L, "%s: size %d is a %s, expected a number", what, i + 1, luaL_typename(L, -1));
         double v = lua_tonumber(L, -1);
         lua_pop(L, 1);
         if (v != floor(v) || v < 0 || v > 1e13)
            luaL_error(L, "%s: size %d = %g is not a non-negative integer", what, i + 1, v);
         size[i] = (int64_t)v;
      }
      return n;
   }
   int top = lua_gettop(L);
   for (int i = idx; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
      if (n == DDPM_MAX_DIMS) luaL_error(L, "%s: more than %d dimensions", what, DDPM_MAX_DIMS);
      double v = lua_tonumber(L, i);
      if (v != floor(v) || v < 0 || v > 1e13)
         luaL_error(L, "%s: size %d = %g is not a non-negative integer", what, n + 1, v);
      size[n++] = (int64_t)v;
   }
   return n;
}

static int l_zeros(lua_State *L)
{
   int64_t size[DDPM_MAX_DIMS];
   int n = read_sizes(L, 1, size, "zeros");
   push_new(L, ddpm_tensor_new(n, size), "zeros");
   return 1;
}

/* full(sizes, value) */
static int l_full(lua_State *L)
{
   int64_t size[DDPM_MAX_DIMS];
   luaL_checktype(L, 1, LUA_TTABLE);
   float v = (float)luaL_checknumber(L, 2);
   int n = read_sizes(L, 1, size, "full");
   ddpm_tensor *t = ddpm_tensor_new(n, size);
   if (t) ddpm_tensor_fill(t, v);
   push_new(L, t, "full");
   return 1;
}

/* randn(sizes, seed [, counter]) -> tensor, next counter */
static int l_randn(lua_State *L)
{
   int64_t size[DDPM_MAX_DIMS];
   luaL_checktype(L, 1, LUA_TTABLE);
   double seed = luaL_checknumber(L, 2);
   double ctr = luaL_optnumber(L, 3, 0);
   luaL_argcheck(L, seed >= 0 && seed == floor(seed), 2, "seed must be a non-negative integer");
   luaL_argcheck(L, ctr >= 0 && ctr == floor(ctr), 3, "counter must be a non-negative integer");
   int n = read_sizes(L, 1, size, "randn");
   ddpm_tensor *t = ddpm_tensor_new(n, size);
   l_check_ptr(L, t, "randn");
   ddpm_rng r = {(uint64_t)seed, (uint64_t)ctr};
   ddpm_rng_normal(&r, ddpm_tensor_data(t), ddpm_tensor_numel(t));
   push_new(L, t, "randn");
   lua_pushnumber(L, (double)r.counter);
   return 2;
}

/* rand(sizes, seed [, counter]): uniform [0,1) */
static int l_rand(lua_State *L)
{
   int64_t size[DDPM_MAX_DIMS];
   luaL_checktype(L, 1, LUA_TTABLE);
   double seed = luaL_checknumber(L, 2);
   double ctr = luaL_optnumber(L, 3, 0);
   luaL_argcheck(L, seed >= 0 && seed == floor(seed), 2, "seed must be a non-negative integer");
   int n = read_sizes(L, 1, size, "rand");
   ddpm_tensor *t = ddpm_tensor_new(n, size);
   l_check_ptr(L, t, "rand");
   ddpm_rng r = {(uint64_t)seed, (uint64_t)ctr};
   ddpm_rng_uniform(&r, ddpm_tensor_data(t), ddpm_tensor_numel(t));
   push_new(L, t, "rand");
   lua_pushnumber(L, (double)r.counter);
   return 2;
}

/* Infers the shape of a nested table of numbers. */
static int table_shape(lua_State *L, int idx, int64_t *size, int depth)
{
   if (depth >= DDPM_MAX_DIMS) luaL_error(L, "tensor: table nested deeper than %d", DDPM_MAX_DIMS);
   size[depth] = (int64_t)lua_objlen(L, idx);
   if (size[depth] == 0) return depth + 1;
   lua_rawgeti(L, idx, 1);
   int nd = depth + 1;
   if (lua_istable(L, -1)) nd = table_shape(L, lua_gettop(L), size, depth + 1);
   lua_pop(L, 1);
   return nd;
}

static void table_fill(lua_State *L, int idx, const int64_t *size, int nd, int depth,
                       float **out, char *path, size_t plen)
{
   int64_t n = (int64_t)lua_objlen(L, idx);
   if (n != size[depth])
      luaL_error(L, "tensor: ragged table at %s: %d entries, expected %d", path[0] ? path : "top",
                 (int)n, (int)size[depth]);
   for (int64_t i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (int)i);
      size_t l = strlen(path);
      snprintf(path + l, plen - l, "[%d]", (int)i);
      if (depth + 1 < nd) {
         if (!lua_istable(L, -1)) luaL_error(L, "tensor: %s is a %s, expected a table", path,
                                             luaL_typename(L, -1));
         table_fill(L, lua_gettop(L), size, nd, depth + 1, out, path, plen);
      } else {
         if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "tensor: %s is a %s, expected a number", path, luaL_typename(L, -1));
         *(*out)++ = (float)lua_tonumber(L, -1);
      }
      path[l] = '\0';
      lua_pop(L, 1);
   }
}

/* tensor(nested table) */
static int l_from_table(lua_State *L)
{
   luaL_checktype(L, 1, LUA_TTABLE);
   int64_t size[DDPM_MAX_DIMS];
   int nd = table_shape(L, 1, size, 0);
   char path[256] = "";
   ddpm_tensor *t = ddpm_tensor_new(nd, size);
   l_check_ptr(L, t, "tensor");
   l_pushtensor(L, t);       /* owned by Lua now: a ragged table error frees it */
   l_track(L, t);
   float *p = ddpm_tensor_data(t);
   if (ddpm_tensor_numel(t) > 0) table_fill(L, 1, size, nd, 0, &p, path, sizeof path);
   return 1;
}

static int l_gc(lua_State *L)
{
   l_tensor *u = luaL_checkudata(L, 1, DDPM_TENSOR_MT);
   ddpm_tensor_release(u->t);
   u->t = NULL;
   return 0;
}

static int l_free(lua_State *L)
{
   l_checktensor(L, 1);
   return l_gc(L);
}

static int l_is_tensor(lua_State *L)
{
   lua_pushboolean(L, luaL_testudata(L, 1, DDPM_TENSOR_MT) != NULL);
   return 1;
}

static int l_is_freed(lua_State *L)
{
   l_tensor *u = luaL_checkudata(L, 1, DDPM_TENSOR_MT);
   lua_pushboolean(L, u->t == NULL);
   return 1;
}

/* size() -> table; size(d) -> number */
static int l_size(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (!lua_isnoneornil(L, 2)) {
      int d = (int)luaL_checkinteger(L, 2);
      luaL_argcheck(L, d >= 1 && d <= t->ndim, 2,
                    lua_pushfstring(L, "dimension %d out of range 1..%d", d, t->ndim));
      lua_pushnumber(L, (double)t->size[d - 1]);
      return 1;
   }
   lua_createtable(L, t->ndim, 0);
   for (int d = 0; d < t->ndim; d++) {
      lua_pushnumber(L, (double)t->size[d]);
      lua_rawseti(L, -2, d + 1);
   }
   return 1;
}

static int l_dim(lua_State *L)
{
   lua_pushinteger(L, l_checktensor(L, 1)->ndim);
   return 1;
}

static int l_numel(lua_State *L)
{
   lua_pushnumber(L, (double)ddpm_tensor_numel(l_checktensor(L, 1)));
   return 1;
}

static int l_is_contiguous(lua_State *L)
{
   lua_pushboolean(L, ddpm_tensor_is_contiguous(l_checktensor(L, 1)));
   return 1;
}

static int l_shape_str(lua_State *L)
{
   char buf[256];
   lua_pushstring(L, ddpm_tensor_shape_str(l_checktensor(L, 1), buf, sizeof buf));
   return 1;
}

/* Element pointer from 1-based indices at stack idx.. (exactly ndim of them). */
static float *index_ptr(lua_State *L, ddpm_tensor *t, int idx, int count, const char *what)
{
   int64_t ix[DDPM_MAX_DIMS];
   if (count != t->ndim) {
      char buf[128];
      luaL_error(L, "%s: %d indices given for a %d-dimensional tensor %s", what, count, t->ndim,
                 ddpm_tensor_shape_str(t, buf, sizeof buf));
   }
   for (int d = 0; d < count; d++) {
      double v = luaL_checknumber(L, idx + d);
      if (v != floor(v) || v < 1 || v > (double)t->size[d])
         luaL_error(L, "%s: index %g out of range 1..%d of dimension %d", what, v,
                    (int)t->size[d], d + 1);
      ix[d] = (int64_t)v - 1;
   }
   return ddpm_tensor_ptr(t, ix);
}

static int l_get(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   lua_pushnumber(L, *index_ptr(L, t, 2, lua_gettop(L) - 1, "get"));
   return 1;
}

static int l_set(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int top = lua_gettop(L);
   float v = (float)luaL_checknumber(L, top);
   *index_ptr(L, t, 2, top - 2, "set") = v;
   return 0;
}

static ddpm_tensor *new_view(lua_State *L, ddpm_tensor *t)
{
   ddpm_tensor *v = ddpm_tensor_view_of(t);
   l_check_ptr(L, v, "view");
   return v;
}

/* Pushes the view, releasing it and raising on a failed runtime call. */
static int finish_view(lua_State *L, ddpm_tensor *v, int rc, const char *what)
{
   if (rc != DDPM_OK) {
      ddpm_tensor_release(v);
      l_check(L, rc, what);
   }
   l_pushtensor(L, v);
   return 1;
}

static int l_view(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int64_t size[DDPM_MAX_DIMS];
   int n = read_sizes(L, 2, size, "view");
   /* one -1 is inferred */
   ddpm_tensor *v = new_view(L, t);
   return finish_view(L, v, ddpm_tensor_reshape(v, n, size), "view");
}

static int l_narrow(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int d = (int)luaL_checkinteger(L, 2);
   lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
   ddpm_tensor *v = new_view(L, t);
   return finish_view(L, v, ddpm_tensor_narrow(v, d - 1, start - 1, len), "narrow");
}

static int l_select(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int d = (int)luaL_checkinteger(L, 2);
   lua_Integer i = luaL_checkinteger(L, 3);
   ddpm_tensor *v = new_view(L, t);
   return finish_view(L, v, ddpm_tensor_select(v, d - 1, i - 1), "select");
}

static int l_transpose(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int a = (int)luaL_checkinteger(L, 2), b = (int)luaL_checkinteger(L, 3);
   ddpm_tensor *v = new_view(L, t);
   return finish_view(L, v, ddpm_tensor_transpose(v, a - 1, b - 1), "transpose");
}

static int l_clone(lua_State *L)
{
   push_new(L, ddpm_tensor_clone(l_checktensor(L, 1)), "clone");
   return 1;
}

static int l_contiguous(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (ddpm_tensor_is_contiguous(t)) {
      lua_settop(L, 1);
      return 1;
   }
   push_new(L, ddpm_tensor_clone(t), "contiguous");
   return 1;
}

static int l_fill(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   ddpm_tensor_fill(t, (float)luaL_checknumber(L, 2));
   lua_settop(L, 1);
   return 1;
}

static int l_copy(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1), *s = l_checktensor(L, 2);
   l_check(L, ddpm_tensor_copy(t, s), "copy");
   lua_settop(L, 1);
   return 1;
}

/* Reading t[i]: a number for 1-D tensors, a view (row i) otherwise. */
static int l_index(lua_State *L)
{
   if (lua_type(L, 2) == LUA_TNUMBER) {
      ddpm_tensor *t = l_checktensor(L, 1);
      double v = lua_tonumber(L, 2);
      if (t->ndim == 0) luaL_error(L, "index: cannot index a 0-dimensional tensor");
      if (v != floor(v) || v < 1 || v > (double)t->size[0])
         luaL_error(L, "index %g out of range 1..%d of dimension 1", v, (int)t->size[0]);
      int64_t i = (int64_t)v - 1;
      if (t->ndim == 1) {
         lua_pushnumber(L, t->storage->data[t->offset + i * t->stride[0]]);
         return 1;
      }
      ddpm_tensor *w = new_view(L, t);
      return finish_view(L, w, ddpm_tensor_select(w, 0, i), "index");
   }
   /* methods */
   lua_getmetatable(L, 1);
   lua_getfield(L, -1, "__methods");
   lua_pushvalue(L, 2);
   lua_rawget(L, -2);
   return 1;
}

/* t[i] = v: a number into a 1-D tensor, or fill/copy a row. */
static int l_newindex(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (lua_type(L, 2) != LUA_TNUMBER) return luaL_error(L, "tensor fields cannot be assigned");
   double v = lua_tonumber(L, 2);
   if (t->ndim == 0) return luaL_error(L, "index: cannot index a 0-dimensional tensor");
   if (v != floor(v) || v < 1 || v > (double)t->size[0])
      return luaL_error(L, "index %g out of range 1..%d of dimension 1", v, (int)t->size[0]);
   int64_t i = (int64_t)v - 1;
   if (t->ndim == 1) {
      t->storage->data[t->offset + i * t->stride[0]] = (float)luaL_checknumber(L, 3);
      return 0;
   }
   ddpm_tensor row = *t;
   ddpm_tensor_select(&row, 0, i);
   if (lua_type(L, 3) == LUA_TNUMBER) ddpm_tensor_fill(&row, (float)lua_tonumber(L, 3));
   else l_check(L, ddpm_tensor_copy(&row, l_checktensor(L, 3)), "assign");
   return 0;
}

static int l_len(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   lua_pushnumber(L, t->ndim ? (double)t->size[0] : 0);
   return 1;
}

static int arith(lua_State *L, int op, const char *what)
{
   int ta = luaL_testudata(L, 1, DDPM_TENSOR_MT) != NULL, tb = luaL_testudata(L, 2, DDPM_TENSOR_MT) != NULL;
   ddpm_tensor *a = ta ? l_checktensor(L, 1) : NULL, *b = tb ? l_checktensor(L, 2) : NULL;
   if (a && b) {
      l_checktensor(L, 1);
      l_checktensor(L, 2);
      if (!ddpm_tensor_same_shape(a, b)) {
         char sa[128], sb[128];
         return luaL_error(L, "%s: shapes %s and %s differ", what,
                           ddpm_tensor_shape_str(a, sa, sizeof sa),
                           ddpm_tensor_shape_str(b, sb, sizeof sb));
      }
      ddpm_tensor *o = ddpm_tensor_new(a->ndim, a->size);
      l_check_ptr(L, o, what);
      ddpm_tensor_binop(o, a, b, op);
      push_new(L, o, what);
      return 1;
   }
   int ti = a ? 1 : 2, si = a ? 2 : 1;
   ddpm_tensor *t = l_checktensor(L, ti);
   if (lua_type(L, si) != LUA_TNUMBER)
      return luaL_error(L, "%s: expected a tensor or a number, got %s", what, luaL_typename(L, si));
   ddpm_tensor *o = ddpm_tensor_new(t->ndim, t->size);
   l_check_ptr(L, o, what);
   ddpm_tensor_scalarop(o, t, lua_tonumber(L, si), op,
                        si == 1 ? DDPM_SCALAR_LEFT : DDPM_SCALAR_RIGHT);
   push_new(L, o, what);
   return 1;
}

static int l_add(lua_State *L) { return arith(L, DDPM_OP_ADD, "add"); }
static int l_sub(lua_State *L) { return arith(L, DDPM_OP_SUB, "sub"); }
static int l_mul(lua_State *L) { return arith(L, DDPM_OP_MUL, "mul"); }
static int l_div(lua_State *L) { return arith(L, DDPM_OP_DIV, "div"); }

static int l_unm(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   ddpm_tensor *o = ddpm_tensor_new(t->ndim, t->size);
   l_check_ptr(L, o, "unm");
   ddpm_tensor_scalarop(o, t, -1.0, DDPM_OP_MUL, DDPM_SCALAR_RIGHT);
   push_new(L, o, "unm");
   return 1;
}

/* In-place: t:add_(other or scalar [, alpha]) -> t  (t += alpha * other) */
static int l_add_inplace(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (lua_type(L, 2) == LUA_TNUMBER) {
      l_check(L, ddpm_tensor_scalarop(t, t, lua_tonumber(L, 2), DDPM_OP_ADD, DDPM_SCALAR_RIGHT),
              "add_");
   } else {
      ddpm_tensor *o = l_checktensor(L, 2);
      double alpha = luaL_optnumber(L, 3, 1.0);
      if (!ddpm_tensor_same_shape(t, o)) {
         char sa[128], sb[128];
         return luaL_error(L, "add_: shapes %s and %s differ", ddpm_tensor_shape_str(t, sa, sizeof sa),
                           ddpm_tensor_shape_str(o, sb, sizeof sb));
      }
      if (alpha == 1.0) l_check(L, ddpm_tensor_binop(t, t, o, DDPM_OP_ADD), "add_");
      else {
         ddpm_tensor *s = ddpm_tensor_clone(o);
         l_check_ptr(L, s, "add_");
         ddpm_tensor_scalarop(s, s, alpha, DDPM_OP_MUL, DDPM_SCALAR_RIGHT);
         ddpm_tensor_binop(t, t, s, DDPM_OP_ADD);
         ddpm_tensor_release(s);
      }
   }
   lua_settop(L, 1);
   return 1;
}

static int l_mul_inplace(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (lua_type(L, 2) == LUA_TNUMBER)
      l_check(L, ddpm_tensor_scalarop(t, t, lua_tonumber(L, 2), DDPM_OP_MUL, DDPM_SCALAR_RIGHT),
              "mul_");
   else
      l_check(L, ddpm_tensor_binop(t, t, l_checktensor(L, 2), DDPM_OP_MUL), "mul_");
   lua_settop(L, 1);
   return 1;
}

/* equal(other): same shape and bit-identical values (NaNs compare by bits). */
static int l_equal(lua_State *L)
{
   ddpm_tensor *a = l_checktensor(L, 1), *b = l_checktensor(L, 2);
   if (!ddpm_tensor_same_shape(a, b)) { lua_pushboolean(L, 0); return 1; }
   int eq = ddpm_tensor_equal(a, b);
   lua_pushboolean(L, eq);
   return 1;
}

/* max_abs_diff(other) -> max |a - b| (same shape required). */
static int l_max_abs_diff(lua_State *L)
{
   ddpm_tensor *a = l_checktensor(L, 1), *b = l_checktensor(L, 2);
   if (!ddpm_tensor_same_shape(a, b)) {
      char sa[128], sb[128];
      return luaL_error(L, "max_abs_diff: shapes %s and %s differ", ddpm_tensor_shape_str(a, sa, sizeof sa),
                        ddpm_tensor_shape_str(b, sb, sizeof sb));
   }
   lua_pushnumber(L, ddpm_tensor_max_abs_diff(a, b));
   return 1;
}

/* abs() -> new tensor */
static int l_abs(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   ddpm_tensor *o = ddpm_tensor_clone(t);
   l_check_ptr(L, o, "abs");
   ddpm_tensor_abs(o, o);
   push_new(L, o, "abs");
   return 1;
}

/* to_8bit() -> new tensor: each value as an 8-bit image stores it, clamped to
   [-1, 1] and rounded to the nearest of the 256 levels k / 127.5 - 1 (the
   rule of the PNG writer; NaN reads as 0). */
static int l_to_8bit(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   ddpm_tensor *o = ddpm_tensor_clone(t);
   l_check_ptr(L, o, "to_8bit");
   ddpm_tensor_to_8bit(o, o);
   push_new(L, o, "to_8bit");
   return 1;
}

/* clamp(lo, hi) -> new tensor */
static int l_clamp(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   float lo = (float)luaL_checknumber(L, 2), hi = (float)luaL_checknumber(L, 3);
   luaL_argcheck(L, lo <= hi, 3, "clamp: lower bound above upper bound");
   ddpm_tensor *o = ddpm_tensor_clone(t);
   l_check_ptr(L, o, "clamp");
   ddpm_tensor_clamp(o, o, lo, hi);
   push_new(L, o, "clamp");
   return 1;
}

static int l_sum(lua_State *L)
{
   lua_pushnumber(L, ddpm_tensor_sum(l_checktensor(L, 1)));
   return 1;
}

static int l_mean(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   int64_t n = ddpm_tensor_numel(t);
   if (n == 0) return luaL_error(L, "mean: tensor is empty");
   lua_pushnumber(L, ddpm_tensor_sum(t) / (double)n);
   return 1;
}

static int l_min(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (ddpm_tensor_numel(t) == 0) return luaL_error(L, "min: tensor is empty");
   lua_pushnumber(L, ddpm_tensor_min(t));
   return 1;
}

static int l_max(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (ddpm_tensor_numel(t) == 0) return luaL_error(L, "max: tensor is empty");
   lua_pushnumber(L, ddpm_tensor_max(t));
   return 1;
}

static void push_table_rec(lua_State *L, const ddpm_tensor *t, int d, int64_t off)
{
   lua_createtable(L, (int)t->size[d], 0);
   for (int64_t i = 0; i < t->size[d]; i++) {
      int64_t o = off + i * t->stride[d];
      if (d == t->ndim - 1) lua_pushnumber(L, t->storage->data[o]);
      else push_table_rec(L, t, d + 1, o);
      lua_rawseti(L, -2, (int)i + 1);
   }
}

static int l_totable(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   if (ddpm_tensor_numel(t) > 50000000)
      return luaL_error(L, "totable: %d elements is too many for a Lua table", (int)ddpm_tensor_numel(t));
   if (t->ndim == 0) {
      lua_pushnumber(L, t->storage->data[t->offset]);
      return 1;
   }
   push_table_rec(L, t, 0, t->offset);
   return 1;
}

/* "[ddpm.Tensor f32 8x3x32x32]" plus min/max/mean and a few values. */
static int l_tostring(lua_State *L)
{
   l_tensor *u = luaL_checkudata(L, 1, DDPM_TENSOR_MT);
   if (!u->t) {
      lua_pushstring(L, "[ddpm.Tensor (freed)]");
      return 1;
   }
   ddpm_tensor *t = u->t;
   luaL_Buffer b;
   luaL_buffinit(L, &b);
   char buf[256];
   size_t p = (size_t)snprintf(buf, sizeof buf, "[ddpm.Tensor f32 ");
   for (int d = 0; d < t->ndim; d++)
      p += (size_t)snprintf(buf + p, sizeof buf - p, d ? "x%lld" : "%lld", (long long)t->size[d]);
   if (t->ndim == 0) p += (size_t)snprintf(buf + p, sizeof buf - p, "scalar");
   snprintf(buf + p, sizeof buf - p, "]");
   luaL_addstring(&b, buf);
   int64_t n = ddpm_tensor_numel(t);
   if (n > 0) {
      snprintf(buf, sizeof buf, " min %.4g max %.4g mean %.4g\n  ", ddpm_tensor_min(t),
               ddpm_tensor_max(t), ddpm_tensor_sum(t) / (double)n);
      luaL_addstring(&b, buf);
      ddpm_tensor flat = *t;
      int64_t show = n < 8 ? n : 8;
      int64_t ix[DDPM_MAX_DIMS] = {0};
      for (int64_t k = 0; k < show; k++) {
         snprintf(buf, sizeof buf, "%s%.5g", k ? " " : "", *ddpm_tensor_ptr(&flat, ix));
         luaL_addstring(&b, buf);
         for (int d = t->ndim - 1; d >= 0; d--) {       /* row-major increment */
            if (++ix[d] < t->size[d]) break;
            ix[d] = 0;
         }
      }
      if (n > show) luaL_addstring(&b, " ...");
   }
   luaL_pushresult(&b);
   return 1;
}

void l_tensor_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"size", l_size}, {"dim", l_dim}, {"numel", l_numel}, {"nelement", l_numel},
      {"is_contiguous", l_is_contiguous}, {"shape_str", l_shape_str},
      {"get", l_get}, {"set", l_set}, {"view", l_view}, {"narrow", l_narrow},
      {"select", l_select}, {"transpose", l_transpose}, {"clone", l_clone},
      {"contiguous", l_contiguous}, {"fill", l_fill}, {"copy", l_copy},
      {"add_", l_add_inplace}, {"mul_", l_mul_inplace},
      {"equal", l_equal}, {"max_abs_diff", l_max_abs_diff}, {"abs", l_abs}, {"clamp", l_clamp}, {"to_8bit", l_to_8bit},
      {"sum", l_sum}, {"mean", l_mean}, {"min", l_min}, {"max", l_max},
      {"totable", l_totable}, {"free", l_free}, {"is_freed", l_is_freed},
      {NULL, NULL}
   };
   static const luaL_Reg meta[] = {
      {"__gc", l_gc}, {"__tostring", l_tostring}, {"__index", l_index},
      {"__newindex", l_newindex}, {"__len", l_len},
      {"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul}, {"__div", l_div}, {"__unm", l_unm},
      {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"zeros", l_zeros}, {"full", l_full}, {"randn", l_randn}, {"rand", l_rand},
      {"tensor", l_from_table}, {"is_tensor", l_is_tensor}, {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_TENSOR_MT);
   luaL_register(L, NULL, meta);
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__methods");
   lua_pushstring(L, DDPM_TENSOR_MT);
   lua_setfield(L, -2, "__name");
   lua_setfield(L, -2, "Tensor_mt");   /* module.Tensor_mt = metatable */
   for (const luaL_Reg *f = fns; f->name; f++) {
      lua_pushcfunction(L, f->func);
      lua_setfield(L, -2, f->name);
   }
}
