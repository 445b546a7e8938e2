#include "exec_child.h"
