/*
 * l_optim.c — Adam, gradient clipping and EMA over flat tensors.
 *   core.adam(n, {beta1=, beta2=, eps=, weight_decay=}) -> ddpm.Adam
 *   adam:step(params, grads, lr [, {grad_scale=, ema=, ema_decay=, zero_grads=}]);
 *   adam:m(), adam:v() (tensor views),
 *   adam:t(), adam:set_t(k)
 *   core.clip_grad_norm(g, max_norm) -> norm before clipping
 *   core.l2_norm(t), core.ema_update(ema, w, decay), core.all_finite(t)
 */
#include "bind.h"

#include <math.h>

#define DDPM_ADAM_MT "ddpm.Adam"

typedef struct l_adam { ddpm_adam *a; } l_adam;

static ddpm_adam *check_adam(lua_State *L, int idx)
{
   l_adam *u = luaL_checkudata(L, idx, DDPM_ADAM_MT);
   if (!u->a) luaL_argerror(L, idx, "optimiser was freed");
   return u->a;
}

/* A contiguous tensor of exactly n elements. */
static float *flat_arg(lua_State *L, int idx, int64_t n, const char *what)
{
   ddpm_tensor *t = l_checktensor(L, idx);
   if (!ddpm_tensor_is_contiguous(t)) luaL_error(L, "%s: tensor must be contiguous", what);
   if (n >= 0 && ddpm_tensor_numel(t) != n)
      luaL_error(L, "%s: expected %d elements, got %d", what, (int)n, (int)ddpm_tensor_numel(t));
   return ddpm_tensor_data(t);
}

static double opt_field(lua_State *L, int t, const char *k, double def)
{
   if (lua_isnoneornil(L, t)) return def;
   lua_getfield(L, t, k);
   double v = luaL_optnumber(L, -1, def);
   lua_pop(L, 1);
   return v;
}

static int l_adam_new(lua_State *L)
{
   double n = luaL_checknumber(L, 1);
   luaL_argcheck(L, n >= 1 && n == floor(n), 1, "parameter count must be a positive integer");
   if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
   double b1 = opt_field(L, 2, "beta1", 0.9), b2 = opt_field(L, 2, "beta2", 0.999);
   double eps = opt_field(L, 2, "eps", 1e-8), wd = opt_field(L, 2, "weight_decay", 0);
   l_adam *u = lua_newuserdata(L, sizeof *u);
   u->a = NULL;
   luaL_getmetatable(L, DDPM_ADAM_MT);
   lua_setmetatable(L, -2);
   u->a = ddpm_adam_new((int64_t)n, b1, b2, eps, wd);
   l_check_ptr(L, u->a, NULL);
   return 1;
}

static int l_adam_gc(lua_State *L)
{
   l_adam *u = luaL_checkudata(L, 1, DDPM_ADAM_MT);
   ddpm_adam_free(u->a);
   u->a = NULL;
   return 0;
}

/* adam:step(params, grads, lr [, {grad_scale =, ema =, ema_decay =,
   zero_grads =}]): with the options, the clip's scale, the EMA update and
   the next step's zero_grad run in the same pass over the buffers as Adam
   (ddpm_adam_step_ex), with the bits of the separate calls. */
static int l_adam_step(lua_State *L)
{
   ddpm_adam *a = check_adam(L, 1);
   float *w = flat_arg(L, 2, a->n, "adam:step params");
   float *g = flat_arg(L, 3, a->n, "adam:step grads");
   double lr = luaL_checknumber(L, 4);
   if (lua_isnoneornil(L, 5)) {
      l_check(L, ddpm_adam_step(a, w, g, lr), "adam:step");
      return 0;
   }
   luaL_checktype(L, 5, LUA_TTABLE);
   ddpm_adam_pass p = { 0.0f, NULL, 0.0, DDPM_GRADS_KEEP };
   p.grad_scale = (float)opt_field(L, 5, "grad_scale", 0);
   lua_getfield(L, 5, "ema");
   if (!lua_isnil(L, -1)) {
      p.ema = flat_arg(L, lua_gettop(L), a->n, "adam:step ema");
      p.ema_decay = opt_field(L, 5, "ema_decay", -1);
      if (!(p.ema_decay >= 0 && p.ema_decay <= 1))
         luaL_error(L, "adam:step: ema_decay must be in [0,1] with ema");
   }
   lua_pop(L, 1);
   lua_getfield(L, 5, "zero_grads");
   if (lua_toboolean(L, -1)) p.grads = DDPM_GRADS_ZERO;
   lua_pop(L, 1);
   l_check(L, ddpm_adam_step_ex(a, w, g, lr, &p), "adam:step");
   return 0;
}

static int l_adam_m(lua_State *L)
{
   ddpm_tensor *t = ddpm_tensor_view_of(check_adam(L, 1)->m);
   l_check_ptr(L, t, NULL);
   l_pushtensor(L, t);
   return 1;
}

static int l_adam_v(lua_State *L)
{
   ddpm_tensor *t = ddpm_tensor_view_of(check_adam(L, 1)->v);
   l_check_ptr(L, t, NULL);
   l_pushtensor(L, t);
   return 1;
}

static int l_adam_t(lua_State *L)
{
   lua_pushnumber(L, (double)check_adam(L, 1)->t);
   return 1;
}

static int l_adam_set_t(lua_State *L)
{
   ddpm_adam *a = check_adam(L, 1);
   double t = luaL_checknumber(L, 2);
   luaL_argcheck(L, t >= 0 && t == floor(t), 2, "step count must be a non-negative integer");
   a->t = (int64_t)t;
   return 0;
}

static int l_clip_grad_norm(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   float *g = flat_arg(L, 1, -1, "clip_grad_norm");
   double mx = luaL_checknumber(L, 2);
   lua_pushnumber(L, ddpm_clip_grad_norm(g, ddpm_tensor_numel(t), mx));
   return 1;
}

static int l_l2_norm(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   float *x = flat_arg(L, 1, -1, "l2_norm");
   lua_pushnumber(L, ddpm_l2_norm(x, ddpm_tensor_numel(t)));
   return 1;
}

static int l_ema_update(lua_State *L)
{
   ddpm_tensor *e = l_checktensor(L, 1);
   float *ema = flat_arg(L, 1, -1, "ema_update");
   float *w = flat_arg(L, 2, ddpm_tensor_numel(e), "ema_update weights");
   double d = luaL_checknumber(L, 3);
   luaL_argcheck(L, d >= 0 && d <= 1, 3, "decay must be in [0,1]");
   ddpm_ema_update(ema, w, ddpm_tensor_numel(e), d);
   return 0;
}

static int l_all_finite(lua_State *L)
{
   ddpm_tensor *t = l_checktensor(L, 1);
   float *x = flat_arg(L, 1, -1, "all_finite");
   lua_pushboolean(L, ddpm_all_finite(x, ddpm_tensor_numel(t)));
   return 1;
}

void l_optim_register(lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"step", l_adam_step}, {"m", l_adam_m}, {"v", l_adam_v}, {"t", l_adam_t},
      {"set_t", l_adam_set_t}, {"free", l_adam_gc}, {NULL, NULL}
   };
   static const luaL_Reg fns[] = {
      {"adam", l_adam_new}, {"clip_grad_norm", l_clip_grad_norm}, {"l2_norm", l_l2_norm},
      {"ema_update", l_ema_update}, {"all_finite", l_all_finite}, {NULL, NULL}
   };
   luaL_newmetatable(L, DDPM_ADAM_MT);
   lua_pushcfunction(L, l_adam_gc);
   lua_setfield(L, -2, "__gc");
   lua_newtable(L);
   luaL_register(L, NULL, methods);
   lua_setfield(L, -2, "__index");
   lua_pop(L, 1);
   luaL_register(L, NULL, fns);
}
