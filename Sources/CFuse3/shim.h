#ifndef SNAPFS_CFUSE3_SHIM_H
#define SNAPFS_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>
#endif
