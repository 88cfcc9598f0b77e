#include "trace/trace-hw_misc_polar_cim.h"
