/* l_unet.c — placeholder until the unet bindings land. */
#include "bind.h"
void l_unet_register(lua_State *L) { (void)L; }
