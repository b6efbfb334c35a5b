// The tests of ep_nccl_tests.inc (ep::NcclTransport under ep::DeviceEp), GPU only: a binary of
// its own, since it needs libnccl at run time. Exits 77 without a GPU.
#include "backend_gpu.hpp"
#include "ep_nccl_tests.inc"
