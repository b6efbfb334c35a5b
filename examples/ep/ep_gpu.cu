// ep on the GPU: the same example (ep.cpp) compiled by nvcc; --executor gpu (the default where a
// device exists) runs ep::DeviceEp with the ranks as threads sharing the GPU.
#include "ep.cpp"
