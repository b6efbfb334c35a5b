// The demo compiled by nvcc (see demo.cpp).
#include "demo.cpp"
