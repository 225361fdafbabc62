// Deliberately breaks the layering: model code reaching into the CPU backend's
// private headers. The build must refuse it (see tests/CMakeLists.txt).
#include "backend/cpu/cpu_kernels.h"
