/*
 * l_core.c — luaopen_ddpm_core: gathers every binding file into one module.
 */
#include "bind.h"

static int l_set_num_threads(lua_State *L)
{
   int n = (int)luaL_checkinteger(L, 1);
   luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count must be in 1..1024");
   ddpm_set_num_threads(n);
   return 0;
}

static int l_get_num_threads(lua_State *L)
{
   lua_pushinteger(L, ddpm_get_num_threads());
   return 1;
}

int luaopen_ddpm_core(lua_State *L)
{
   static const luaL_Reg fns[] = {
      {"set_num_threads", l_set_num_threads},
      {"get_num_threads", l_get_num_threads},
      {NULL, NULL}
   };
   lua_newtable(L);
   luaL_register(L, NULL, fns);
   l_tensor_register(L);
   l_unet_register(L);
   l_io_register(L);
   l_optim_register(L);
   l_data_register(L);
   l_runlog_register(L);
   l_diffusion_register(L);
   return 1;
}
