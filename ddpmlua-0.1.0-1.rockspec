-- LuaRocks package: the Lua library `ddpm` with `ddpm.core` built as a C
-- module, for plain LuaJIT (`luajit -e "require 'ddpm'"`). The ddpmlua host
-- (REPL, Ctrl-C, history commands) comes from `make install` instead.
--   luarocks make ddpmlua-0.1.0-1.rockspec [--tree DIR]
rockspec_format = "3.0"
package = "ddpmlua"
version = "0.1.0-1"
source = {url = "git+file://."}
description = {
   summary = "Denoising Diffusion Probabilistic Models: a C runtime driven from LuaJIT",
   detailed = "Float32 tensors, the DDPM U-Net with forward and backward passes, Adam with EMA, " ..
              "the diffusion math and samplers, datasets and an SQLite run history.",
}
dependencies = {"lua == 5.1"}   -- LuaJIT
build = {
   type = "make",
   build_target = "module",
   build_variables = {},
   install_target = "install-module",
   install_variables = {LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)"},
}
