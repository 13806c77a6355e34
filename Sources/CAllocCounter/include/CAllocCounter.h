#ifndef CALLOCCOUNTER_H
#define CALLOCCOUNTER_H

#include <stdint.h>

/// Heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign,
/// valloc, pvalloc) made by any code in the process since it started, Swift runtime included.
/// Counting works because this target defines those functions in the executable, which
/// interposes them over glibc's for every shared object (see CAllocCounter.c).
uint64_t alloc_count(void);

/// Does nothing, out of the optimiser's sight (a separate C translation unit, no LTO):
/// passing a pointer here makes the pointee escape, so its allocation cannot be elided.
void alloc_counter_escape(const void *pointer);

#endif
