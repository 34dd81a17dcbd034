/* l_io.c — placeholder until the io bindings land. */
#include "bind.h"
void l_io_register(lua_State *L) { (void)L; }
