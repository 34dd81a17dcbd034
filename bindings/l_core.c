/*
 * l_core.c — luaopen_ddpm_core: gathers every binding file into one module.
 */
#include "bind.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

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

/* Wall-clock seconds (os.clock is CPU time, which threads inflate). */
static int l_time(lua_State *L)
{
   struct timeval tv;
   gettimeofday(&tv, NULL);
   lua_pushnumber(L, (double)tv.tv_sec + tv.tv_usec * 1e-6);
   return 1;
}

static int l_isatty(lua_State *L)
{
   lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 2)));
   return 1;
}

/* Columns of the terminal on fd (default stderr), or nil. */
static int l_term_width(lua_State *L)
{
   struct winsize ws;
   if (ioctl((int)luaL_optinteger(L, 1, 2), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      lua_pushinteger(L, ws.ws_col);
      return 1;
   }
   return 0;
}

/* cwd() -> the process's working directory (absolute), for storing the
   paths a run names so that they resolve from any folder. */
static int l_cwd(lua_State *L)
{
   char buf[PATH_MAX];
   if (!getcwd(buf, sizeof buf)) return luaL_error(L, "cwd: %s", strerror(errno));
   lua_pushstring(L, buf);
   return 1;
}

/* mix_seed(seed, stream) -> ddpm_rng_mix_seed's seed, cut to 53 bits so
   that a Lua number holds it exactly. */
static int l_mix_seed(lua_State *L)
{
   double s = luaL_checknumber(L, 1), k = luaL_checknumber(L, 2);
   luaL_argcheck(L, s >= 0 && s == floor(s) && s < 9007199254740992.0, 1, "seed must be an integer in [0, 2^53)");
   luaL_argcheck(L, k >= 0 && k == floor(k) && k < 9007199254740992.0, 2, "stream must be an integer in [0, 2^53)");
   uint64_t z = ddpm_rng_mix_seed((uint64_t)s, (uint64_t)k);
   lua_pushnumber(L, (double)(z & ((1ull << 53) - 1)));
   return 1;
}

/* randint(n, hi, seed [, counter]) -> table of n integers uniform in [0, hi),
   next counter. */
static int l_randint(lua_State *L)
{
   double n = luaL_checknumber(L, 1), hi = luaL_checknumber(L, 2), s = luaL_checknumber(L, 3);
   double c = luaL_optnumber(L, 4, 0);
   luaL_argcheck(L, n >= 0 && n == floor(n) && n <= 1e8, 1, "count must be a non-negative integer");
   luaL_argcheck(L, hi >= 1 && hi == floor(hi) && hi <= 4294967295.0, 2, "upper bound must be in 1..2^32-1");
   luaL_argcheck(L, s >= 0 && s == floor(s), 3, "seed must be a non-negative integer");
   luaL_argcheck(L, c >= 0 && c == floor(c), 4, "counter must be a non-negative integer");
   ddpm_rng r = {(uint64_t)s, (uint64_t)c};
   lua_createtable(L, (int)n, 0);
   for (int i = 0; i < (int)n; i++) {
      lua_pushnumber(L, ddpm_rng_below(&r, (uint32_t)hi));
      lua_rawseti(L, -2, i + 1);
   }
   lua_pushnumber(L, (double)r.counter);
   return 2;
}

int luaopen_ddpm_core(lua_State *L)
{
   /* Tensors of 1 MB and more get their own mapping, so freeing one returns
      its memory to the system at once. glibc's default threshold adapts
      upwards after the first big free and then keeps freed tensors in the
      heap, where fragmentation held 550 MB for a loop over 1.5 MB
      temporaries. Nothing on a hot path allocates, so the mmap costs
      nothing there. */
   mallopt(M_MMAP_THRESHOLD, 1 << 20);
   static const luaL_Reg fns[] = {
      {"set_num_threads", l_set_num_threads},
      {"get_num_threads", l_get_num_threads},
      {"time", l_time}, {"isatty", l_isatty}, {"term_width", l_term_width},
      {"cwd", l_cwd},
      {"mix_seed", l_mix_seed}, {"randint", l_randint},
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
   l_plot_register(L);
   l_lenet_register(L);
   l_gauss_register(L);
   l_tsampler_register(L);
   l_dist_register(L);
   l_inception_register(L);
   return 1;
}
