/*
 * l_unet.c — the ddpm.UNet userdata: construction from a Lua config table,
 * forward/backward on tensors, named parameter views, save/load.
 * Shapes are checked here against the model's config before any C call.
 */
#include "bind.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct l_unet {
   ddpm_unet *m;
   int N, H, W;          /* shape of the last forward (for backward's check) */
} l_unet;

static l_unet *check_unet(lua_State *L, int idx)
{
   l_unet *u = luaL_testudata(L, idx, DDPM_UNET_MT);
   if (!u) luaL_argerror(L, idx, lua_pushfstring(L, "ddpm.UNet expected, got %s",
                                                 luaL_typename(L, idx)));
   if (!u->m) luaL_argerror(L, idx, "model was freed");
   return u;
}

static int opt_int_field(lua_State *L, int t, const char *k, int def)
{
   lua_getfield(L, t, k);
   int v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "unet: option '%s' must be a number, got %s", k, luaL_typename(L, -1));
      double d = lua_tonumber(L, -1);
      if (d != floor(d) || fabs(d) > 1e9)
         luaL_error(L, "unet: option '%s' must be an integer, got %g", k, d);
      v = (int)d;
   }
   lua_pop(L, 1);
   return v;
}

static double opt_num_field(lua_State *L, int t, const char *k, double def)
{
   lua_getfield(L, t, k);
   double v = def;
   if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "unet: option '%s' must be a number, got %s", k, luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
   }
   lua_pop(L, 1);
   return v;
}

/* Reads an integer list field; returns its length or -1 when absent. */
static int int_list_field(lua_State *L, int t, const char *k, int *out, int max)
{
   lua_getfield(L, t, k);
   if (lua_isnil(L, -1)) { lua_pop(L, 1); return -1; }
   if (!lua_istable(L, -1))
      luaL_error(L, "unet: option '%s' must be a list of integers, got %s", k, luaL_typename(L, -1));
   int n = (int)lua_objlen(L, -1);
   if (n > max) luaL_error(L, "unet: option '%s' has %d entries (at most %d)", k, n, max);
   for (int i = 0; i < n; i++) {
      lua_rawgeti(L, -1, i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
         luaL_error(L, "unet: %s[%d] must be a number, got %s", k, i + 1, luaL_typename(L, -1));
      out[i] = (int)lua_tonumber(L, -1);
      lua_pop(L, 1);
   }
   lua_pop(L, 1);
   return n;
}

/* unet_new(cfg, seed) */
static int l_unet_new(lua_State *L)
{
   luaL_checktype(L, 1, LUA_TTABLE);
   double seed = luaL_optnumber(L, 2, 0);
   luaL_argcheck(L, seed >= 0 && seed == floor(seed), 2, "seed must be a non-negative integer");
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   c.ch = opt_int_field(L, 1, "ch", c.ch);
   int n = int_list_field(L, 1, "ch_mult", c.ch_mult, DDPM_UNET_MAX_LEVELS);
   if (n >= 0) c.num_levels = n;
   c.num_res_blocks = opt_int_field(L, 1, "num_res_blocks", c.num_res_blocks);
   n = int_list_field(L, 1, "attn_resolutions", c.attn_res, DDPM_UNET_MAX_LEVELS);
   if (n >= 0) c.num_attn_res = n;
   c.dropout = (float)opt_num_field(L, 1, "dropout", c.dropout);
   c.in_ch = opt_int_field(L, 1, "in_ch", c.in_ch);
   c.out_ch = opt_int_field(L, 1, "out_ch", c.out_ch);
   c.resolution = opt_int_field(L, 1, "resolution", c.resolution);
   c.groups = opt_int_field(L, 1, "groups", c.groups);
   c.eps = (float)opt_num_field(L, 1, "eps", c.eps);
   l_unet *u = lua_newuserdata(L, sizeof *u);
   memset(u, 0, sizeof *u);
   luaL_getmetatable(L, DDPM_UNET_MT);
   lua_setmetatable(L, -2);
   u->m = ddpm_unet_new(&c, (uint64_t)seed);
   l_check_ptr(L, u->m, NULL);
   return 1;
}

static int l_unet_gc(lua_State *L)
{
   l_unet *u = luaL_checkudata(L, 1, DDPM_UNET_MT);
   ddpm_unet_free(u->m);
   u->m = NULL;
   return 0;
}

static int l_unet_free(lua_State *L)
{
   check_unet(L, 1);
   return l_unet_gc(L);
}

static int l_unet_num_params(lua_State *L)
{
   lua_pushnumber(L, (double)ddpm_unet_num_params(check_unet(L, 1)->m));
   return 1;
}

static int l_unet_num_tensors(lua_State *L)
{
   lua_pushinteger(L, ddpm_unet_num_tensors(check_unet(L, 1)->m));
   return 1;
}

static int l_unet_param_names(lua_State *L)
{
   ddpm_unet *m = check_unet(L, 1)->m;
   int n = ddpm_unet_num_tensors(m);
   lua_createtable(L, n, 0);
   for (int i = 0; i < n; i++) {
      lua_pushstring(L, ddpm_unet_param(m, i)->name);
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

/* param(name or 1-based index [, grad]) -> tensor view */
static int l_unet_param(lua_State *L)
{
   ddpm_unet *m = check_unet(L, 1)->m;
   ddpm_buffer which = lua_toboolean(L, 3) ? DDPM_GRADS : DDPM_PARAMS;
   int i;
   if (lua_type(L, 2) == LUA_TNUMBER) {
      i = (int)lua_tointeger(L, 2) - 1;
   } else {
      const char *name = luaL_checkstring(L, 2);
      i = ddpm_unet_find_param(m, name);
      if (i < 0) return luaL_error(L, "unet: no parameter named '%s'", name);
   }
   ddpm_tensor *t = ddpm_unet_param_tensor(m, i, which);
   l_check_ptr(L, t, NULL);
   l_pushtensor(L, t);
   return 1;
}

/* param_info() -> array of {name=, offset= (0-based, floats), numel=, shape={...}} */
static int l_unet_param_info(lua_State *L)
{
   ddpm_unet *m = check_unet(L, 1)->m;
   int n = ddpm_unet_num_tensors(m);
   lua_createtable(L, n, 0);
   for (int i = 0; i < n; i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      lua_createtable(L, 0, 4);
      lua_pushstring(L, p->name);
      lua_setfield(L, -2, "name");
      lua_pushnumber(L, (double)p->offset);
      lua_setfield(L, -2, "offset");
      lua_pushnumber(L, (double)p->numel);
      lua_setfield(L, -2, "numel");
      lua_createtable(L, p->ndim, 0);
      for (int d = 0; d < p->ndim; d++) {
         lua_pushnumber(L, (double)p->shape[d]);
         lua_rawseti(L, -2, d + 1);
      }
      lua_setfield(L, -2, "shape");
      lua_rawseti(L, -2, i + 1);
   }
   return 1;
}

static int l_unet_flat(lua_State *L)
{
   ddpm_unet *m = check_unet(L, 1)->m;
   ddpm_tensor *t = ddpm_unet_flat_tensor(m, lua_toboolean(L, 2) ? DDPM_GRADS : DDPM_PARAMS);
   l_check_ptr(L, t, NULL);
   l_pushtensor(L, t);
   return 1;
}

/* Reads timesteps (tensor of N values, or a table of N numbers) into buf. */
static void read_timesteps(lua_State *L, int idx, int N, float *buf)
{
   if (lua_istable(L, idx)) {
      int n = (int)lua_objlen(L, idx);
      if (n != N) luaL_error(L, "unet forward: %d timesteps given for a batch of %d", n, N);
      for (int i = 0; i < N; i++) {
         lua_rawgeti(L, idx, i + 1);
         if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "unet forward: timestep %d is a %s, expected a number", i + 1,
                       luaL_typename(L, -1));
         buf[i] = (float)lua_tonumber(L, -1);
         lua_pop(L, 1);
      }
      return;
   }
   if (lua_type(L, idx) == LUA_TNUMBER) {     /* one timestep for the whole batch */
      for (int i = 0; i < N; i++) buf[i] = (float)lua_tonumber(L, idx);
      return;
   }
   ddpm_tensor *t = l_checktensor(L, idx);
   if (ddpm_tensor_numel(t) != N) {
      char s[128];
      luaL_error(L, "unet forward: timesteps %s do not hold one value per example (batch %d)",
                 ddpm_tensor_shape_str(t, s, sizeof s), N);
   }
   ddpm_tensor view = *t;
   int64_t sz = N;
   if (!ddpm_tensor_is_contiguous(&view)) {
      for (int i = 0; i < N; i++) {
         int64_t ix[DDPM_MAX_DIMS] = {0};
         ix[t->ndim - 1] = i;   /* non-contiguous only for 1-D strided views here */
         buf[i] = *ddpm_tensor_ptr(t, ix);
      }
      return;
   }
   (void)sz;
   memcpy(buf, ddpm_tensor_data(t), (size_t)N * sizeof(float));
}

/* forward(x [N,in_ch,H,W], t) -> out [N,out_ch,H,W] */
static int l_unet_forward(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   ddpm_tensor *x = l_checktensor(L, 2);
   const ddpm_unet_config *c = ddpm_unet_get_config(u->m);
   char s[128];
   if (x->ndim != 4 || x->size[1] != c->in_ch)
      return luaL_error(L, "unet forward: expected input [N,%d,H,W], got %s", c->in_ch,
                        ddpm_tensor_shape_str(x, s, sizeof s));
   int N = (int)x->size[0], H = (int)x->size[2], W = (int)x->size[3];
   if (N < 1 || N > 1 << 20) return luaL_error(L, "unet forward: batch size %d", N);
   if (lua_isnoneornil(L, 3)) return luaL_argerror(L, 3, "timesteps expected (tensor, table or number)");
   float tstack[256], *tb = tstack;
   ddpm_tensor *tt = NULL;
   if (N > 256) {
      tt = ddpm_tensor_new_1d(N);
      l_check_ptr(L, tt, NULL);
      l_pushtensor(L, tt);      /* freed by the GC if an error follows */
      tb = ddpm_tensor_data(tt);
   }
   read_timesteps(L, 3, N, tb);
   int64_t osz[4] = {N, c->out_ch, H, W};
   ddpm_tensor *out = ddpm_tensor_new(4, osz);
   l_check_ptr(L, out, "unet forward");
   ddpm_tensor *xc = ddpm_tensor_is_contiguous(x) ? NULL : ddpm_tensor_clone(x);
   int rc = ddpm_unet_forward(u->m, ddpm_tensor_data(out), ddpm_tensor_data(xc ? xc : x), tb, N, H, W);
   ddpm_tensor_release(xc);
   if (rc != DDPM_OK) {
      ddpm_tensor_release(out);
      l_check(L, rc, NULL);
   }
   u->N = N; u->H = H; u->W = W;
   l_pushtensor(L, out);
   return 1;
}

/* backward(dout) -> dx; parameter gradients accumulate. */
static int l_unet_backward(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   ddpm_tensor *dy = l_checktensor(L, 2);
   const ddpm_unet_config *c = ddpm_unet_get_config(u->m);
   char s[128];
   if (u->N == 0) return luaL_error(L, "unet backward: call forward first");
   if (dy->ndim != 4 || dy->size[0] != u->N || dy->size[1] != c->out_ch || dy->size[2] != u->H ||
       dy->size[3] != u->W)
      return luaL_error(L, "unet backward: expected gradient [%d,%d,%d,%d] (the last output's shape), got %s",
                        u->N, c->out_ch, u->H, u->W, ddpm_tensor_shape_str(dy, s, sizeof s));
   ddpm_tensor *dx = ddpm_tensor_new_4d(u->N, c->in_ch, u->H, u->W);
   l_check_ptr(L, dx, "unet backward");
   ddpm_tensor *dc = ddpm_tensor_is_contiguous(dy) ? NULL : ddpm_tensor_clone(dy);
   int rc = ddpm_unet_backward(u->m, ddpm_tensor_data(dx), ddpm_tensor_data(dc ? dc : dy));
   ddpm_tensor_release(dc);
   if (rc != DDPM_OK) {
      ddpm_tensor_release(dx);
      l_check(L, rc, NULL);
   }
   l_pushtensor(L, dx);
   return 1;
}

static int l_unet_zero_grad(lua_State *L)
{
   ddpm_unet_zero_grad(check_unet(L, 1)->m);
   return 0;
}

static int l_unet_set_training(lua_State *L)
{
   ddpm_unet_set_training(check_unet(L, 1)->m, lua_toboolean(L, 2));
   return 0;
}

static int l_unet_set_grad_enabled(lua_State *L)
{
   ddpm_unet_set_grad_enabled(check_unet(L, 1)->m, lua_toboolean(L, 2));
   return 0;
}

static int l_unet_set_dropout_seed(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   double s = luaL_checknumber(L, 2);
   luaL_argcheck(L, s >= 0 && s == floor(s), 2, "seed must be a non-negative integer");
   double first = luaL_optnumber(L, 3, 0);
   luaL_argcheck(L, first >= 0 && first == floor(first) && first < 9007199254740992.0, 3,
                 "first image index must be a non-negative integer");
   ddpm_unet_set_dropout_seed(u->m, (uint64_t)s, (uint64_t)first);
   return 0;
}

/* u:set_precision('float32' | 'bf16' [, min_channels]): a Lua error where
   bf16 is not available */
static int l_unet_set_precision(lua_State *L)
{
   static const char *const names[] = {"float32", "bf16", NULL};
   l_unet *u = check_unet(L, 1);
   int p = luaL_checkoption(L, 2, NULL, names);
   if (!lua_isnoneornil(L, 3)) {
      lua_Number c = luaL_checknumber(L, 3);
      luaL_argcheck(L, c >= 2 && c <= 1 << 20 && c == floor(c), 3, "min_channels must be an integer >= 2");
      l_check(L, ddpm_unet_set_bf16_min_channels(u->m, (int)c), "set_precision");
   }
   l_check(L, ddpm_unet_set_precision(u->m, p == 1 ? DDPM_BF16 : DDPM_FLOAT32), "set_precision");
   return 0;
}

static int l_unet_precision(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   lua_pushstring(L, ddpm_unet_precision(u->m) == DDPM_BF16 ? "bf16" : "float32");
   return 1;
}

static int l_unet_save(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   const char *path = luaL_checkstring(L, 2);
   l_check(L, ddpm_unet_save(u->m, path), "unet save");
   return 0;
}

/* load(path [, prefix [, strict]]) */
static int l_unet_load(lua_State *L)
{
   l_unet *u = check_unet(L, 1);
   const char *path = luaL_checkstring(L, 2);
   const char *prefix = luaL_optstring(L, 3, "");
   ddpm_load_mode mode = lua_isnoneornil(L, 4) || lua_toboolean(L, 4) ? DDPM_LOAD_STRICT
                                                                      : DDPM_LOAD_LENIENT;
   ddpm_st_file *f = ddpm_st_open(path);
   l_check_ptr(L, f, "unet load");
   int rc = ddpm_unet_load_st(u->m, f, prefix, mode);
   ddpm_st_close(f);
   l_check(L, rc, path);
   return 0;
}

static int l_unet_config(lua_State *L)
{
   const ddpm_unet_config *c = ddpm_unet_get_config(check_unet(L, 1)->m);
   lua_newtable(L);
#define SETI(k, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, k))
   SETI("ch", c->ch);
   lua_newtable(L);
   for (int i = 0; i < c->num_levels; i++) { lua_pushnumber(L, c->ch_mult[i]); lua_rawseti(L, -2, i + 1); }
   lua_setfield(L, -2, "ch_mult");
   SETI("num_res_blocks", c->num_res_blocks);
   lua_newtable(L);
   for (int i = 0; i < c->num_attn_res; i++) { lua_pushnumber(L, c->attn_res[i]); lua_rawseti(L, -2, i + 1); }
   lua_setfield(L, -2, "attn_resolutions");
   SETI("dropout", (double)c->dropout);
   SETI("in_ch", c->in_ch);
   SETI("out_ch", c->out_ch);
   SETI("resolution", c->resolution);
   SETI("groups", c->groups);
   SETI("eps", (double)c->eps);
#undef SETI
   return 1;
}

static int l_unet_workspace_bytes(lua_State *L)
{
   lua_pushnumber(L, (double)ddpm_unet_workspace_bytes(check_unet(L, 1)->m));
   return 1;
}

static int l_unet_tostring(lua_State *L)
{
   l_unet *u = luaL_checkudata(L, 1, DDPM_UNET_MT);
   if (!u->m) lua_pushstring(L, "[ddpm.UNet (freed)]");
   else lua_pushfstring(L, "[ddpm.UNet %d tensors, %f parameters]", ddpm_unet_num_tensors(u->m),
                        (double)ddpm_unet_num_params(u->m));
   return 1;
}

void l_unet_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"forward", l_unet_forward}, {"backward", l_unet_backward},
      {"num_params", l_unet_num_params}, {"num_tensors", l_unet_num_tensors},
      {"param_names", l_unet_param_names}, {"param_info", l_unet_param_info}, {"param", l_unet_param}, {"flat", l_unet_flat},
      {"zero_grad", l_unet_zero_grad}, {"set_training", l_unet_set_training},
      {"set_grad_enabled", l_unet_set_grad_enabled}, {"set_dropout_seed", l_unet_set_dropout_seed},
      {"save", l_unet_save}, {"load", l_unet_load}, {"config", l_unet_config},
      {"workspace_bytes", l_unet_workspace_bytes}, {"free", l_unet_free},
      {"set_precision", l_unet_set_precision}, {"precision", l_unet_precision},
      {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_UNET_MT);
   lua_pushcfunction(L, l_unet_gc);
   lua_setfield(L, -2, "__gc");
   lua_pushcfunction(L, l_unet_tostring);
   lua_setfield(L, -2, "__tostring");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   lua_pushcfunction(L, l_unet_new);
   lua_setfield(L, -2, "unet_new");
}
