#ifndef SNAPFS_CFUSE3_SHIM_H
#define SNAPFS_CFUSE3_SHIM_H
/* 3.12: the multi-threaded loop takes a fuse_loop_config from fuse_loop_cfg_create(), which sets max_threads. */
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#endif
