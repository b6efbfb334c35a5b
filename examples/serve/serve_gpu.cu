// serve on the GPU: the same example (serve.cpp) compiled by nvcc; --executor gpu (the default
// where a device exists) runs the layer on it with one CUDA graph per bucket.
#include "serve.cpp"
