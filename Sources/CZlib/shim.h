#ifndef DURUS_CZLIB_SHIM_H
#define DURUS_CZLIB_SHIM_H
#include <zlib.h>
#endif
