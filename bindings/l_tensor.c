/* l_tensor.c — placeholder until the tensor bindings land. */
#include "bind.h"
void l_tensor_register(lua_State *L) { (void)L; }
