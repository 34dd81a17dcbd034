/*
 * l_inception.c — FID and Inception Score pieces for Lua (runtime/inception.c,
 * and frechet.c for the .npz reference statistics); lib/ddpm/fid.lua builds
 * the user-facing functions on them.
 *
 *   core.inception_load(path) -> ddpm.Inception      (safetensors, pytorch-fid names)
 *   m:forward(x) -> features [N,2048], logits [N,1008]
 *        x: a ddpm.Tensor [N,3,H,W] with values in [0,1] (any strides)
 *   m:free()
 *   core.inception_score(logits [N,K] [, splits = 10]) -> mean, std
 *   core.fid_ref_load(path) -> ddpm.GaussStats, n_known
 *        .npz with mu [D] and sigma [D,D] (and optionally n), as published
 *   core.fid_ref_save(g, path)                         .npz: mu, sigma, n (float64)
 *
 * A published .npz carries no sample count: its statistics come back with
 * n = 2 and the co-moment equal to sigma (so g:cov() is sigma exactly) and
 * n_known = false; merging such statistics with others is meaningless.
 */
#include "bind.h"
#include "ddpm/frechet.h"
#include "ddpm/inception.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DDPM_INCEPTION_MT "ddpm.Inception"
#define GAUSS_MT "ddpm.GaussStats"   /* registered by l_lenet.c */

typedef struct l_inception { ddpm_inception *m; } l_inception;
/* The layout of l_lenet.c's GaussStats userdata. */
typedef struct l_gauss_ud { ddpm_gauss *g; } l_gauss_ud;

static ddpm_inception *check_model(lua_State *L, int idx)
{
   l_inception *u = luaL_testudata(L, idx, DDPM_INCEPTION_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.Inception expected, got %s", luaL_typename(L, idx)));
   if (!u->m) luaL_argerror(L, idx, "the Inception network was freed (m:free()) and cannot be used");
   return u->m;
}

static ddpm_gauss *check_gauss(lua_State *L, int idx)
{
   l_gauss_ud *u = luaL_testudata(L, idx, GAUSS_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.GaussStats expected, got %s", luaL_typename(L, idx)));
   if (!u->g) luaL_argerror(L, idx, "the statistics were freed (g:free()) and cannot be used");
   return u->g;
}

static int l_inception_load(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   l_inception *u = lua_newuserdata(L, sizeof *u);
   u->m = NULL;
   luaL_getmetatable(L, DDPM_INCEPTION_MT);
   lua_setmetatable(L, -2);
   ddpm_st_file *f = ddpm_st_open(path);
   l_check_ptr(L, f, "inception_load");
   u->m = ddpm_inception_load_st(f);
   ddpm_st_close(f);
   if (!u->m) l_check_ptr(L, NULL, lua_pushfstring(L, "inception_load: %s", path));
   return 1;
}

static float *new_matrix(lua_State *L, int64_t a, int64_t b)
{
   int64_t size[2] = {a, b};
   ddpm_tensor *t = ddpm_tensor_new(2, size);
   l_check_ptr(L, t, "inception forward");
   l_pushtensor(L, t);
   l_track(L, t);
   return ddpm_tensor_data(t);
}

static int l_inception_forward(lua_State *L)
{
   ddpm_inception *m = check_model(L, 1);
   ddpm_tensor *x = l_checktensor(L, 2);
   char s[128];
   if (x->ndim != 4 || x->size[0] < 1 || x->size[1] != 3 || x->size[2] < 1 || x->size[3] < 1
       || x->size[2] > 4096 || x->size[3] > 4096)
      return luaL_error(L, "inception forward: expected RGB images [N,3,H,W] (N >= 1, "
                        "1 <= H, W <= 4096), got %s", ddpm_tensor_shape_str(x, s, sizeof s));
   if (x->size[0] > INT32_MAX) return luaL_error(L, "inception forward: too many images");
   const float *p = ddpm_tensor_data(x);
   if (!ddpm_tensor_is_contiguous(x)) {
      ddpm_tensor *c = ddpm_tensor_clone(x);
      l_check_ptr(L, c, "inception forward");
      l_pushtensor(L, c);
      l_track(L, c);
      p = ddpm_tensor_data(c);
      lua_replace(L, 2);
   }
   const int N = (int)x->size[0];
   float *feat = new_matrix(L, N, DDPM_INCEPTION_FEATURES);
   float *logits = new_matrix(L, N, DDPM_INCEPTION_CLASSES);
   int rc = ddpm_inception_forward(m, feat, logits, p, N, (int)x->size[2], (int)x->size[3]);
   if (rc == DDPM_EINTR) return luaL_error(L, "interrupted");
   l_check(L, rc, "inception forward");
   return 2;
}

static int l_inception_free(lua_State *L)
{
   l_inception *u = luaL_checkudata(L, 1, DDPM_INCEPTION_MT);
   ddpm_inception_free(u->m);
   u->m = NULL;
   return 0;
}

static int l_inception_tostring(lua_State *L)
{
   l_inception *u = luaL_checkudata(L, 1, DDPM_INCEPTION_MT);
   lua_pushstring(L, u->m ? "[ddpm.Inception FID Inception-v3 (2015-12-05 graph): 2048 features, 1008 logits]"
                          : "[ddpm.Inception (freed)]");
   return 1;
}

static int l_inception_score(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   const int splits = (int)luaL_optinteger(L, 2, 10);
   char s[128];
   if (t->ndim != 2 || t->size[1] < 2)
      return luaL_error(L, "inception_score: expected logits [N,K], got %s",
                        ddpm_tensor_shape_str(t, s, sizeof s));
   luaL_argcheck(L, splits >= 1, 2, "splits must be >= 1");
   const float *p = ddpm_tensor_data(t);
   if (!ddpm_tensor_is_contiguous(t)) {
      ddpm_tensor *c = ddpm_tensor_clone(t);
      l_check_ptr(L, c, "inception_score");
      l_pushtensor(L, c);
      p = ddpm_tensor_data(c);
   }
   double mean, sd;
   l_check(L, ddpm_inception_score(&mean, &sd, p, t->size[0], (int)t->size[1], splits),
           "inception_score");
   lua_pushnumber(L, mean);
   lua_pushnumber(L, sd);
   return 2;
}

static int l_fid_ref_load(lua_State *L)
{
   const char *path = luaL_checkstring(L, 1);
   l_gauss_ud *u = lua_newuserdata(L, sizeof *u);
   u->g = NULL;
   luaL_getmetatable(L, GAUSS_MT);
   lua_setmetatable(L, -2);
   int has_n = 0;
   u->g = ddpm_gauss_load_npz(path, &has_n);
   l_check_ptr(L, u->g, "fid_ref_load");
   lua_pushboolean(L, has_n);
   return 2;
}

static int l_fid_ref_save(lua_State *L)
{
   ddpm_gauss *g = check_gauss(L, 1);
   const char *path = luaL_checkstring(L, 2);
   l_check(L, ddpm_gauss_save_npz(g, path), "fid_ref_save");
   return 0;
}

void l_inception_register(lua_State *L)
{
   luaL_newmetatable(L, DDPM_INCEPTION_MT);
   lua_newtable(L);
   static const luaL_Reg methods[] = {
      {"forward", l_inception_forward}, {"free", l_inception_free}, {NULL, NULL}
   };
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pushcfunction(L, l_inception_free);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_inception_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_pop(L, 1);
   static const luaL_Reg fns[] = {
      {"inception_load", l_inception_load}, {"inception_score", l_inception_score},
      {"fid_ref_load", l_fid_ref_load}, {"fid_ref_save", l_fid_ref_save}, {NULL, NULL}
   };
   luaL_register(L, NULL, fns);
}
