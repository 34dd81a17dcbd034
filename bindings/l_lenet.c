/*
 * l_lenet.c — the FD-LeNet classifier for Lua (runtime/lenet.c); its feature
 * statistics and the Fréchet distance are bound in l_gauss.c.
 *
 *   core.lenet_new(seed) -> ddpm.LeNet
 *   core.lenet_load(path) -> ddpm.LeNet, {metadata}
 *   m:forward(x) -> logits [N,10], features [N,84]    (keeps activations)
 *   m:train_step(x, labels) -> mean loss, correct     (gradients accumulate)
 *   m:predict(x) -> logits, features                  (chunked, no gradients)
 *   m:features(x) -> features [N,84]
 *   m:evaluate(x, labels) -> correct, mean loss
 *   m:zero_grad(), m:flat(grad) -> 1-D view, m:param(name|index [, grad]),
 *   m:param_names(), m:num_params(), m:params_sha256(),
 *   m:save(path [, {key = string}]), m:load(path) -> {metadata}, m:free()
 *
 *   core.sha256_file(path) -> hex, bytes
 *
 * x is a ddpm.Tensor [N,1,28,28] (any strides); labels a table or 1-D tensor
 * of N integers in 0..9. Every argument is checked before the runtime runs.
 */
#include "bind.h"
#include "ddpm/lenet.h"
#include "ddpm/sha256.h"

#include <math.h>
#include <string.h>

#define DDPM_LENET_MT "ddpm.LeNet"

typedef struct l_lenet { ddpm_lenet *m; } l_lenet;

static ddpm_lenet *check_lenet(lua_State *L, int idx)
{
   l_lenet *u = luaL_testudata(L, idx, DDPM_LENET_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.LeNet expected, got %s", luaL_typename(L, idx)));
   if (!u->m) luaL_argerror(L, idx, "the LeNet was freed (m:free()) and cannot be used");
   return u->m;
}

static l_lenet *push_lenet_ud(lua_State *L)
{
   l_lenet *u = lua_newuserdata(L, sizeof *u);
   u->m = NULL;
   luaL_getmetatable(L, DDPM_LENET_MT);
   lua_setmetatable(L, -2);
   return u;
}

/* x [N,1,28,28] at idx; returns the data of a contiguous copy kept on the
   stack (pushed) when x is strided, or x's own data (nothing pushed). */
static const float *check_images(lua_State *L, int idx, int64_t *N, const char *what)
{
   ddpm_tensor *x = l_checktensor(L, idx);
   if (x->ndim != 4 || x->size[1] != 1 || x->size[2] != DDPM_LENET_SIZE || x->size[3] != DDPM_LENET_SIZE ||
       x->size[0] < 1) {
      char s[128];
      luaL_error(L, "%s: expected images [N,1,28,28] with N >= 1, got %s", what,
                 ddpm_tensor_shape_str(x, s, sizeof s));
   }
   *N = x->size[0];
   if (ddpm_tensor_is_contiguous(x)) return ddpm_tensor_data(x);
   ddpm_tensor *c = ddpm_tensor_clone(x);
   l_check_ptr(L, c, what);
   l_pushtensor(L, c);
   l_track(L, c);
   return ddpm_tensor_data(c);
}

/* labels at idx (table or 1-D tensor of n integers 0..9) into a userdata
   buffer pushed on the stack. */
static int *check_labels(lua_State *L, int idx, int64_t n, const char *what)
{
   int64_t got;
   ddpm_tensor *t = NULL;
   if (lua_istable(L, idx)) got = (int64_t)lua_objlen(L, idx);
   else {
      t = l_checktensor(L, idx);
      if (t->ndim != 1) luaL_argerror(L, idx, "labels must be a table or a 1-D tensor");
      got = t->size[0];
   }
   if (got != n) luaL_error(L, "%s: %d labels for %d images", what, (int)got, (int)n);
   int *lab = lua_newuserdata(L, (size_t)n * sizeof *lab);
   for (int64_t i = 0; i < n; i++) {
      double v;
      if (t) v = t->storage->data[t->offset + i * t->stride[0]];
      else {
         lua_rawgeti(L, idx, (int)(i + 1));
         if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: label %d is a %s, expected an integer in 0..9", what, (int)(i + 1),
                       luaL_typename(L, -1));
         v = lua_tonumber(L, -1);
         lua_pop(L, 1);
      }
      if (v != floor(v) || v < 0 || v > 9)
         luaL_error(L, "%s: label %d = %f is not an integer in 0..9", what, (int)(i + 1), v);
      lab[i] = (int)v;
   }
   return lab;
}

/* ------------------------------------------------------------ LeNet */

static int l_lenet_new(lua_State *L)
{
   double s = luaL_optnumber(L, 1, 0);
   luaL_argcheck(L, s >= 0 && s == floor(s) && s < 9007199254740992.0, 1, "seed must be an integer in [0, 2^53)");
   l_lenet *u = push_lenet_ud(L);
   u->m = ddpm_lenet_new((uint64_t)s);
   l_check_ptr(L, u->m, "lenet_new");
   return 1;
}

/* Loads path into m; pushes the metadata table. */
static void load_into(lua_State *L, ddpm_lenet *m, const char *path)
{
   ddpm_st_file *f = ddpm_st_open(path);
   l_check_ptr(L, f, "lenet load");
   int rc = ddpm_lenet_load_st(m, f);
   if (rc != DDPM_OK) {
      ddpm_st_close(f);
      l_check(L, rc, lua_pushfstring(L, "lenet load: %s", path));
   }
   l_push_metadata(L, f);
   ddpm_st_close(f);
}

static int l_lenet_load_new(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   l_lenet *u = push_lenet_ud(L);
   u->m = ddpm_lenet_new(0);
   l_check_ptr(L, u->m, "lenet_load");
   load_into(L, u->m, path);
   return 2;
}

static int l_lenet_load(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   load_into(L, m, luaL_checkstring(L, 2));
   return 1;
}

static int l_lenet_save(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   const char *path = luaL_checkstring(L, 2);
   const char *keys[32], *vals[32];
   int n = l_read_metadata(L, 3, keys, vals, "lenet save");
   l_check(L, ddpm_lenet_save(m, path, n, keys, vals), "lenet save");
   return 0;
}

static int l_lenet_gc(lua_State *L)
{
   l_lenet *u = luaL_checkudata(L, 1, DDPM_LENET_MT);
   ddpm_lenet_free(u->m);
   u->m = NULL;
   return 0;
}

static int l_lenet_free(lua_State *L)
{
   check_lenet(L, 1);
   return l_lenet_gc(L);
}

static int l_lenet_forward(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int64_t N;
   const float *x = check_images(L, 2, &N, "lenet forward");
   luaL_argcheck(L, N <= (1 << 16), 2, "a training batch is at most 65536 images (predict takes any N)");
   float *lg = l_new_tensor(L, 2, N, DDPM_LENET_CLASSES, "lenet forward");
   float *ft = l_new_tensor(L, 2, N, DDPM_LENET_FEATURES, "lenet forward");
   l_check(L, ddpm_lenet_forward(m, lg, ft, x, (int)N), "lenet forward");
   return 2;
}

static int l_lenet_train_step(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int64_t N;
   const float *x = check_images(L, 2, &N, "lenet train_step");
   luaL_argcheck(L, N <= (1 << 16), 2, "a training batch is at most 65536 images");
   int *lab = check_labels(L, 3, N, "lenet train_step");
   double loss;
   int correct;
   l_check(L, ddpm_lenet_train_step(m, &loss, &correct, x, lab, (int)N), "lenet train_step");
   lua_pushnumber(L, loss);
   lua_pushinteger(L, correct);
   return 2;
}

static int l_lenet_predict(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int64_t N;
   const float *x = check_images(L, 2, &N, "lenet predict");
   float *lg = l_new_tensor(L, 2, N, DDPM_LENET_CLASSES, "lenet predict");
   float *ft = l_new_tensor(L, 2, N, DDPM_LENET_FEATURES, "lenet predict");
   l_check(L, ddpm_lenet_predict(m, lg, ft, x, N), "lenet predict");
   return 2;
}

static int l_lenet_features(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int64_t N;
   const float *x = check_images(L, 2, &N, "lenet features");
   float *ft = l_new_tensor(L, 2, N, DDPM_LENET_FEATURES, "lenet features");
   l_check(L, ddpm_lenet_predict(m, NULL, ft, x, N), "lenet features");
   return 1;
}

static int l_lenet_evaluate(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int64_t N;
   const float *x = check_images(L, 2, &N, "lenet evaluate");
   int *lab = check_labels(L, 3, N, "lenet evaluate");
   float *lg = l_new_tensor(L, 2, N, DDPM_LENET_CLASSES, "lenet evaluate");   /* scratch */
   int64_t correct;
   double loss;
   l_check(L, ddpm_lenet_evaluate(m, &correct, &loss, lg, x, lab, N), "lenet evaluate");
   lua_pushnumber(L, (double)correct);
   lua_pushnumber(L, loss);
   return 2;
}

static int l_lenet_zero_grad(lua_State *L)
{
   ddpm_lenet_zero_grad(check_lenet(L, 1));
   return 0;
}

static int l_lenet_flat(lua_State *L)
{
   ddpm_tensor *t = ddpm_lenet_flat_tensor(check_lenet(L, 1),
                                            lua_toboolean(L, 2) ? DDPM_GRADS : DDPM_PARAMS);
   l_check_ptr(L, t, "lenet flat");
   l_pushtensor(L, t);
   return 1;
}

static int l_lenet_param(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   int i;
   if (lua_type(L, 2) == LUA_TNUMBER) {
      double v = lua_tonumber(L, 2);
      luaL_argcheck(L, v == floor(v) && v >= 1 && v <= DDPM_LENET_TENSORS, 2, "index must be in 1..10");
      i = (int)v - 1;
   } else {
      const char *name = luaL_checkstring(L, 2);
      i = ddpm_lenet_find_param(m, name);
      if (i < 0) return luaL_error(L, "lenet: no parameter named '%s'", name);
   }
   ddpm_tensor *t = ddpm_lenet_param_tensor(m, i, lua_toboolean(L, 3) ? DDPM_GRADS : DDPM_PARAMS);
   l_check_ptr(L, t, "lenet param");
   l_pushtensor(L, t);
   return 1;
}

static int l_lenet_param_names(lua_State *L)
{
   ddpm_lenet *m = check_lenet(L, 1);
   lua_createtable(L, DDPM_LENET_TENSORS, 0);
   for (int i = 0; i < DDPM_LENET_TENSORS; i++) {
      lua_pushstring(L, ddpm_lenet_param(m, i)->name);
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

static int l_lenet_num_params(lua_State *L)
{
   lua_pushnumber(L, (double)ddpm_lenet_num_params(check_lenet(L, 1)));
   return 1;
}

static int l_lenet_params_sha256(lua_State *L)
{
   char hex[65];
   ddpm_lenet_params_sha256(check_lenet(L, 1), hex);
   lua_pushstring(L, hex);
   return 1;
}

static int l_lenet_tostring(lua_State *L)
{
   l_lenet *u = luaL_checkudata(L, 1, DDPM_LENET_MT);
   if (!u->m) lua_pushstring(L, "[ddpm.LeNet (freed)]");
   else lua_pushfstring(L, "[ddpm.LeNet 1x28x28 -> 84 features -> 10 classes: %d params]",
                        (int)ddpm_lenet_num_params(u->m));
   return 1;
}

static int l_sha256_file(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   char hex[65];
   int64_t bytes = 0;
   l_check(L, ddpm_sha256_file(path, hex, &bytes), "sha256_file");
   lua_pushstring(L, hex);
   lua_pushnumber(L, (double)bytes);
   return 2;
}

void l_lenet_register(lua_State *L)
{
   static const luaL_Reg lenet_methods[] = {
      {"forward", l_lenet_forward}, {"train_step", l_lenet_train_step},
      {"predict", l_lenet_predict}, {"features", l_lenet_features},
      {"evaluate", l_lenet_evaluate}, {"zero_grad", l_lenet_zero_grad}, {"flat", l_lenet_flat},
      {"param", l_lenet_param}, {"param_names", l_lenet_param_names},
      {"num_params", l_lenet_num_params}, {"params_sha256", l_lenet_params_sha256},
      {"save", l_lenet_save}, {"load", l_lenet_load}, {"free", l_lenet_free}, {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"lenet_new", l_lenet_new}, {"lenet_load", l_lenet_load_new},
      {"sha256_file", l_sha256_file}, {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_LENET_MT);
   lua_pushcfunction(L, l_lenet_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_lenet_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_newtable(L);
   luaL_register(L, NULL, lenet_methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   luaL_register(L, NULL, fns);
}
