// The recommendation example compiled by nvcc (see recommend.cpp).
#include "recommend.cpp"
