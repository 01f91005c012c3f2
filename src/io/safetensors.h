/* safetensors.h - internal test seam of the safetensors writer. */
#ifndef GEN_IO_SAFETENSORS_H
#define GEN_IO_SAFETENSORS_H

#include "gen/io.h"

/* Makes the next gen_st_save fail, as if the disk were full, once it has
 * written `bytes` bytes of the temporary file (-1: off). Tests only. */
void gen_st_fail_write_after(int64_t bytes);

#endif
