/*
 * fuzz_config.c — the JSON decoder of lib/ddpm/json.lua, which reads the
 * config and metadata strings that files carry: a checkpoint's "config" and
 * "ddpmlua.unet_config" metadata (ddpm.load_unet, checkpoint.load) and the
 * run rows' argv/env JSON. It runs in LuaJIT, so the C harness hosts a Lua
 * state and calls json.decode on each input under pcall.
 *
 * Bad text must be a Lua error with a message "json: <what> at byte <k>",
 * never another kind of error (a message from deep inside Lua names neither
 * what nor where); text it accepts must re-encode to JSON that decodes and
 * re-encodes to the same text (the canonical form configs are compared and
 * hashed by).
 *
 * libFuzzer's coverage sees only C, so a line hook feeds it the Lua side:
 * each (previous line, line) pair executed in json.lua bumps one of the
 * extra counters libFuzzer reads from the __libfuzzer_extra_counters
 * section (the replay build ignores them).
 */
#include "fuzz.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef DDPM_LUA_DIR
#define DDPM_LUA_DIR "lib"
#endif

static lua_State *L;

#define LUA_EDGES 8192
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t lua_edges[LUA_EDGES];
static int last_line;

static void line_hook(lua_State *Ls, lua_Debug *ar)
{
   (void)Ls;
   unsigned k = ((unsigned)last_line * 7919u + (unsigned)ar->currentline) % LUA_EDGES;
   if (lua_edges[k] < 255) lua_edges[k]++;
   last_line = ar->currentline;
}

static const char *check_chunk =
   "local json, s = ...\n"
   "local ok, v = pcall(json.decode, s)\n"
   "if not ok then\n"
   "   if type(v) ~= 'string' or not v:match('^json: .+ at byte %d+$') then\n"
   "      return 'bad error: ' .. tostring(v)\n"
   "   end\n"
   "   return nil\n"
   "end\n"
   "local e1 = json.encode(v)\n"
   "local ok2, v2 = pcall(json.decode, e1)\n"
   "if not ok2 then return 'its own encoding ' .. e1 .. ' does not decode: ' .. tostring(v2) end\n"
   "local e2 = json.encode(v2)\n"
   "if e1 ~= e2 then return 'encoding not stable: ' .. e1 .. ' then ' .. e2 end\n"
   "return nil\n";

static void setup(void)
{
   L = luaL_newstate();
   FUZZ_ASSERT(L);
   luaL_openlibs(L);
   if (luaL_loadfile(L, DDPM_LUA_DIR "/ddpm/json.lua") != 0 || lua_pcall(L, 0, 1, 0) != 0) {
      fprintf(stderr, "fuzz_config: %s\n", lua_tostring(L, -1));
      abort();
   }
   lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.json");
   FUZZ_ASSERT(luaL_loadstring(L, check_chunk) == 0);
   lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.check");
   lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   if (!L) setup();
   last_line = 0;
   lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.check");
   lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.json");
   lua_pushlstring(L, (const char *)data, size);
   if (lua_pcall(L, 2, 1, 0) != 0) {
      fprintf(stderr, "fuzz_config: the check itself failed: %s\n", lua_tostring(L, -1));
      abort();
   }
   if (!lua_isnil(L, -1)) {
      fprintf(stderr, "fuzz_config: %s\n", lua_tostring(L, -1));
      abort();
   }
   lua_settop(L, 0);
   return 0;
}
