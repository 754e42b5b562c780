// Everything CLibev offers is a static inline function in include/CLibev.h;
// SwiftPM needs one source file to build the target.
#include "CLibev.h"
