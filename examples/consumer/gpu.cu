#include "consumer_kernel.cuh"
int main() { return run_consumer("consumer_gpu"); }
