/*
 * bind.h — shared helpers of the Lua bindings (the only C that sees lua_State).
 */
#ifndef DDPM_BIND_H
#define DDPM_BIND_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "ddpm.h"

#define DDPM_TENSOR_MT "ddpm.Tensor"
#define DDPM_UNET_MT   "ddpm.UNet"

/* The built-in module `require 'ddpm.core'`. */
int luaopen_ddpm_core(lua_State *L);

/* Per-file registration, called by luaopen_ddpm_core with the module table on top. */
void l_tensor_register(lua_State *L);
void l_unet_register(lua_State *L);
void l_io_register(lua_State *L);
void l_optim_register(lua_State *L);
void l_data_register(lua_State *L);
void l_runlog_register(lua_State *L);
void l_diffusion_register(lua_State *L);
void l_plot_register(lua_State *L);
void l_lenet_register(lua_State *L);
void l_gauss_register(lua_State *L);
void l_tsampler_register(lua_State *L);
void l_dist_register(lua_State *L);
void l_inception_register(lua_State *L);

/* Tensor userdata: holds one reference; NULL after t:free(). */
typedef struct l_tensor { ddpm_tensor *t; } l_tensor;

/* Checks arg idx is a live ddpm.Tensor; raises a Lua error otherwise. */
ddpm_tensor *l_checktensor(lua_State *L, int idx);
/* Pushes a new userdata that takes over the caller's reference to t. */
void l_pushtensor(lua_State *L, ddpm_tensor *t);
/* Counts a new tensor's bytes and runs a full GC past a threshold: big
   tensors are invisible to Lua's own accounting. */
void l_track(lua_State *L, const ddpm_tensor *t);
/* The one way a binding raises a runtime error: "<what>: <ddpm_errmsg()>"
   when rc != DDPM_OK (what NULL: the message alone, for messages that
   already name the call). Release what the binding made before calling. */
void l_check(lua_State *L, int rc, const char *what);
/* (l_io.c) The same for a constructor's result: raises "<what>:
   <ddpm_errmsg()>" when p is NULL; returns p. */
void *l_check_ptr(lua_State *L, void *p, const char *what);

/* (l_io.c) A new float tensor [a] or [a,b] (ndim 1 or 2) pushed on the stack,
   owned by Lua from here; its data. */
float *l_new_tensor(lua_State *L, int ndim, int64_t a, int64_t b, const char *what);
/* (l_io.c) An optional {key = string} table at idx into parallel arrays of
   at most 32, sorted by key (a file written from the same values then comes
   out byte for byte the same); the count. */
int l_read_metadata(lua_State *L, int idx, const char **keys, const char **vals, const char *what);
/* (l_io.c) Pushes a safetensors file's metadata as a {key = value} table. */
void l_push_metadata(lua_State *L, const ddpm_st_file *f);

#endif
