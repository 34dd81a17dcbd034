/*
 * l_data.c — the ddpm.Dataset userdata (IDX, CIFAR-10 and PNG-folder image
 * sets held in memory as bytes) and core.save_grid.
 *
 *   local d = core.dataset_idx(images_path, labels_path_or_nil)
 *   local d = core.dataset_cifar(dir_or_nil, 'train' | 'test')
 *   local d = core.dataset_png_dir(dir, channels)           -- 1 or 3
 *   d:size(), d:shape() -> {C,H,W}, d:label(i), d:has_labels()
 *   d:batch(indices, pad_to, flips, out) -> ddpm.Tensor [n,C,P,P]
 *   d:permutation(seed, epoch [, t]) -> {1-based indices}
 *   d:free()
 *   core.save_grid(path, x [N,C,H,W], nrow, padding, pad_value)
 *
 * Indices are 1-based, as everywhere on the Lua side. Every argument is
 * checked before the runtime is called; a wrong one is a Lua error naming it.
 */
#include "bind.h"
#include "ddpm/dataset.h"
#include "ddpm/png.h"

#include <math.h>
#include <string.h>

#define DDPM_DATASET_MT "ddpm.Dataset"

void l_data_register(lua_State *L);

/* Holds the dataset; NULL after d:free() (or before the reader returned). */
typedef struct l_dataset { ddpm_dataset *d; } l_dataset;

static ddpm_dataset *check_dataset(lua_State *L, int idx)
{
   l_dataset *u = luaL_testudata(L, idx, DDPM_DATASET_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.Dataset expected, got %s",
                                                 luaL_typename(L, idx)));
   if (!u->d) luaL_argerror(L, idx, "dataset was freed (d:free()) and cannot be used");
   return u->d;
}

/* An empty userdata with the metatable; the reader's result goes in after,
   so a failing reader leaves nothing to leak. */
static l_dataset *new_dataset_ud(lua_State *L)
{
   l_dataset *u = lua_newuserdata(L, sizeof *u);
   u->d = NULL;
   luaL_getmetatable(L, DDPM_DATASET_MT);
   lua_setmetatable(L, -2);
   return u;
}

/* Big byte buffers are invisible to Lua's GC accounting: charge them. */
static void charge_gc(lua_State *L, size_t bytes)
{
   size_t kb = bytes >> 10;
   if (kb >= 1024) lua_gc(L, LUA_GCSTEP, kb > (1u << 30) ? 1 << 30 : (int)kb);
}

/* An integer Lua number in [lo, hi] at stack index idx. */
static double check_int_range(lua_State *L, int idx, double lo, double hi, const char *name)
{
   if (lua_type(L, idx) != LUA_TNUMBER)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s: number expected, got %s", name,
                                            luaL_typename(L, idx)));
   double v = lua_tonumber(L, idx);
   if (v != floor(v) || v < lo || v > hi)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s = %f is not an integer in %f..%f", name, v, lo, hi));
   return v;
}

static int l_dataset_idx(lua_State *L)
{
   const char *images = luaL_checkstring(L, 1);
   const char *labels = luaL_optstring(L, 2, NULL);
   l_dataset *u = new_dataset_ud(L);
   u->d = ddpm_dataset_read_idx(images, labels);
   l_check_ptr(L, u->d, "dataset_idx");
   charge_gc(L, (size_t)u->d->N * u->d->H * u->d->W);
   return 1;
}

static int l_dataset_cifar(lua_State *L)
{
   const char *dir = luaL_optstring(L, 1, NULL);
   const char *split = luaL_optstring(L, 2, "train");
   luaL_argcheck(L, strcmp(split, "train") == 0 || strcmp(split, "test") == 0, 2,
                 "split must be 'train' or 'test'");
   l_dataset *u = new_dataset_ud(L);
   u->d = ddpm_dataset_read_cifar(dir, split);
   l_check_ptr(L, u->d, "dataset_cifar");
   charge_gc(L, (size_t)u->d->N * 3072);
   return 1;
}

static int l_dataset_png_dir(lua_State *L)
{
   const char *dir = luaL_checkstring(L, 1);
   int channels = lua_isnoneornil(L, 2) ? 3 : (int)check_int_range(L, 2, 1, 3, "channels");
   luaL_argcheck(L, channels == 1 || channels == 3, 2, "channels must be 1 (gray) or 3 (RGB)");
   l_dataset *u = new_dataset_ud(L);
   u->d = ddpm_dataset_read_png_dir(dir, channels);
   l_check_ptr(L, u->d, "dataset_png_dir");
   charge_gc(L, (size_t)u->d->N * u->d->C * u->d->H * u->d->W);
   return 1;
}

static int l_size(lua_State *L)
{
   lua_pushnumber(L, (double)check_dataset(L, 1)->N);
   return 1;
}

static int l_shape(lua_State *L)
{
   ddpm_dataset *d = check_dataset(L, 1);
   lua_createtable(L, 3, 0);
   lua_pushinteger(L, d->C);
   lua_rawseti(L, -2, 1);
   lua_pushinteger(L, d->H);
   lua_rawseti(L, -2, 2);
   lua_pushinteger(L, d->W);
   lua_rawseti(L, -2, 3);
   return 1;
}

static int l_has_labels(lua_State *L)
{
   lua_pushboolean(L, check_dataset(L, 1)->labels != NULL);
   return 1;
}

/* label(i) -> 0..9, or nil when the set has no labels (a PNG folder). */
static int l_label(lua_State *L)
{
   ddpm_dataset *d = check_dataset(L, 1);
   int64_t i = (int64_t)check_int_range(L, 2, 1, (double)d->N, "index");
   if (!d->labels) {
      lua_pushnil(L);
      return 1;
   }
   lua_pushinteger(L, d->labels[i - 1]);
   return 1;
}

/* Number of entries of a table or a 1-D tensor at idx (what = its name). */
static int64_t seq_len(lua_State *L, int idx, const char *what)
{
   if (lua_istable(L, idx)) return (int64_t)lua_objlen(L, idx);
   ddpm_tensor *t = l_checktensor(L, idx);
   if (t->ndim != 1) {
      char buf[96];
      luaL_argerror(L, idx, lua_pushfstring(L, "%s: expected a 1-D tensor, got %s", what,
                                            ddpm_tensor_shape_str(t, buf, sizeof buf)));
   }
   return t->size[0];
}

/* Entry k (0-based) of a table or 1-D tensor at idx, as a number. */
static double seq_get(lua_State *L, int idx, int64_t k, const char *what, int allow_bool)
{
   if (lua_istable(L, idx)) {
      lua_rawgeti(L, idx, (int)(k + 1));
      double v = 0;
      int ty = lua_type(L, -1);
      if (ty == LUA_TNUMBER) v = lua_tonumber(L, -1);
      else if (allow_bool && ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
      else luaL_argerror(L, idx, lua_pushfstring(L, "%s[%d] is a %s, expected a number%s", what,
                                                 (int)(k + 1), luaL_typename(L, -1),
                                                 allow_bool ? " or boolean" : ""));
      lua_pop(L, 1);
      return v;
   }
   ddpm_tensor *t = l_checktensor(L, idx);
   return t->storage->data[t->offset + k * t->stride[0]];
}

/* batch(indices, pad_to, flips, out): indices 1-based (table or 1-D tensor);
   pad_to 0/nil = none; flips nil or a table/tensor of n booleans or numbers
   (non-zero = mirror); out optional contiguous [n,C,P,P] tensor to fill. */
static int l_batch(lua_State *L)
{
   ddpm_dataset *d = check_dataset(L, 1);
   if (!lua_istable(L, 2) && !luaL_testudata(L, 2, DDPM_TENSOR_MT))
      luaL_argerror(L, 2, lua_pushfstring(L, "indices: table or ddpm.Tensor expected, got %s",
                                          luaL_typename(L, 2)));
   int64_t n = seq_len(L, 2, "indices");
   luaL_argcheck(L, n > 0, 2, "indices is empty");
   luaL_argcheck(L, n <= (1 << 30), 2, "too many indices");
   int pad_to = lua_isnoneornil(L, 3) ? 0 : (int)check_int_range(L, 3, 0, 65536, "pad_to");
   if (pad_to != 0 && (pad_to < d->H || pad_to < d->W))
      luaL_argerror(L, 3, lua_pushfstring(L, "pad_to = %d is smaller than the images (%dx%d)",
                                          pad_to, d->W, d->H));
   int has_flips = !lua_isnoneornil(L, 4);
   if (has_flips) {
      if (!lua_istable(L, 4) && !luaL_testudata(L, 4, DDPM_TENSOR_MT))
         luaL_argerror(L, 4, lua_pushfstring(L, "flips: table, ddpm.Tensor or nil expected, got %s",
                                             luaL_typename(L, 4)));
      int64_t nf = seq_len(L, 4, "flips");
      if (nf != n)
         luaL_argerror(L, 4, lua_pushfstring(L, "flips has %d entries, indices has %d", (int)nf, (int)n));
   }
   const int PH = pad_to ? pad_to : d->H, PW = pad_to ? pad_to : d->W;
   ddpm_tensor *out = NULL;
   if (!lua_isnoneornil(L, 5)) {
      out = l_checktensor(L, 5);
      int64_t want[4] = {n, d->C, PH, PW};
      int ok = out->ndim == 4 && ddpm_tensor_is_contiguous(out);
      for (int k = 0; ok && k < 4; k++) ok = out->size[k] == want[k];
      if (!ok) {
         char buf[96];
         luaL_argerror(L, 5, lua_pushfstring(L, "out: expected a contiguous [%d,%d,%d,%d] tensor, got %s",
                                             (int)n, d->C, PH, PW,
                                             ddpm_tensor_shape_str(out, buf, sizeof buf)));
      }
   }

   lua_settop(L, 5);   /* scratch goes above the arguments, so 4 and 5 stay theirs */
   int64_t *idx = lua_newuserdata(L, (size_t)n * sizeof *idx);     /* collected by the GC */
   uint8_t *flip = has_flips ? lua_newuserdata(L, (size_t)n) : NULL;
   for (int64_t k = 0; k < n; k++) {
      double v = seq_get(L, 2, k, "indices", 0);
      if (v != floor(v) || v < 1 || v > (double)d->N)
         luaL_argerror(L, 2, lua_pushfstring(L, "indices[%d] = %f is out of range 1..%f", (int)(k + 1),
                                             v, (double)d->N));
      idx[k] = (int64_t)v - 1;
      if (flip) flip[k] = seq_get(L, 4, k, "flips", 1) != 0;
   }

   if (!out) {
      ddpm_tensor *t = ddpm_tensor_new_4d(n, d->C, PH, PW);
      l_check_ptr(L, t, "batch");
      l_pushtensor(L, t);
      charge_gc(L, (size_t)ddpm_tensor_numel(t) * sizeof(float));
      out = t;
   } else {
      lua_pushvalue(L, 5);
   }
   l_check(L, ddpm_dataset_batch(d, ddpm_tensor_data(out), idx, (int)n, pad_to, flip), "batch");
   return 1;
}

/* permutation(seed, epoch [, t]) -> t: a shuffled 1..N, a function of
   (seed, epoch) only (see ddpm_dataset_permutation). */
static int l_permutation(lua_State *L)
{
   ddpm_dataset *d = check_dataset(L, 1);
   uint64_t seed = (uint64_t)check_int_range(L, 2, 0, 9007199254740992.0, "seed");
   uint64_t epoch = (uint64_t)check_int_range(L, 3, 0, 9007199254740992.0, "epoch");
   int fill = !lua_isnoneornil(L, 4);
   if (fill) luaL_checktype(L, 4, LUA_TTABLE);
   luaL_argcheck(L, d->N <= (1 << 30), 1, "dataset too large for a Lua table permutation");
   lua_settop(L, 4);   /* the scratch below goes above the arguments */
   int64_t *perm = lua_newuserdata(L, (size_t)d->N * sizeof *perm);
   l_check(L, ddpm_dataset_permutation(perm, d->N, seed, epoch), "permutation");
   if (fill) lua_pushvalue(L, 4);
   else lua_createtable(L, (int)d->N, 0);
   for (int64_t i = 0; i < d->N; i++) {
      lua_pushnumber(L, (double)(perm[i] + 1));
      lua_rawseti(L, -2, (int)(i + 1));
   }
   return 1;
}

static int l_gc(lua_State *L)
{
   l_dataset *u = luaL_checkudata(L, 1, DDPM_DATASET_MT);
   ddpm_dataset_free(u->d);
   u->d = NULL;
   return 0;
}

static int l_free(lua_State *L)
{
   check_dataset(L, 1);
   return l_gc(L);
}

static int l_is_freed(lua_State *L)
{
   l_dataset *u = luaL_checkudata(L, 1, DDPM_DATASET_MT);
   lua_pushboolean(L, u->d == NULL);
   return 1;
}

static int l_len(lua_State *L)
{
   return l_size(L);
}

static int l_tostring(lua_State *L)
{
   l_dataset *u = luaL_checkudata(L, 1, DDPM_DATASET_MT);
   if (!u->d) lua_pushstring(L, "[ddpm.Dataset (freed)]");
   else lua_pushfstring(L, "[ddpm.Dataset %d x %d x %d x %d u8%s]", (int)u->d->N, u->d->C, u->d->H,
                        u->d->W, u->d->labels ? ", labels" : "");
   return 1;
}

/* save_grid(path, x [N,C,H,W], nrow = 8, padding = 2, pad_value = 0) */
static int l_save_grid(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   ddpm_tensor *x = l_checktensor(L, 2);
   char buf[96];
   if (x->ndim != 4 || (x->size[1] != 1 && x->size[1] != 3) || x->size[0] < 1 ||
       x->size[0] > (1 << 24) || x->size[2] < 1 || x->size[3] < 1 ||
       x->size[2] > DDPM_PNG_MAX_SIDE || x->size[3] > DDPM_PNG_MAX_SIDE)
      luaL_argerror(L, 2, lua_pushfstring(L, "expected [N,1,H,W] or [N,3,H,W] with N >= 1, got %s",
                                          ddpm_tensor_shape_str(x, buf, sizeof buf)));
   int nrow = lua_isnoneornil(L, 3) ? 8 : (int)check_int_range(L, 3, 1, 1 << 20, "nrow");
   int padding = lua_isnoneornil(L, 4) ? 2 : (int)check_int_range(L, 4, 0, 1024, "padding");
   double pad_value = luaL_optnumber(L, 5, 0.0);
   luaL_argcheck(L, pad_value >= 0 && pad_value <= 1, 5, "pad_value must be in [0, 1] (0 black, 1 white)");

   ddpm_tensor *c = NULL;
   if (!ddpm_tensor_is_contiguous(x)) {
      c = ddpm_tensor_clone(x);
      l_check_ptr(L, c, "save_grid");
   }
   int rc = ddpm_png_write_grid(path, ddpm_tensor_data(c ? c : x), (int)x->size[0], (int)x->size[1],
                                (int)x->size[2], (int)x->size[3], nrow, padding, (float)pad_value);
   ddpm_tensor_release(c);
   l_check(L, rc, "save_grid");
   return 0;
}

void l_data_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"size", l_size}, {"shape", l_shape}, {"label", l_label}, {"has_labels", l_has_labels},
      {"batch", l_batch}, {"permutation", l_permutation}, {"free", l_free},
      {"is_freed", l_is_freed}, {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"dataset_idx", l_dataset_idx}, {"dataset_cifar", l_dataset_cifar},
      {"dataset_png_dir", l_dataset_png_dir}, {"save_grid", l_save_grid}, {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_DATASET_MT);
   lua_pushcfunction(L, l_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_pushcfunction(L, l_len);
   lua_setfield(L, -2, "__len");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   for (const luaL_Reg *f = fns; f->name; f++) {
      lua_pushcfunction(L, f->func);
      lua_setfield(L, -2, f->name);
   }
}
