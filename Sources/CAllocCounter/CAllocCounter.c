// Allocation counter for psp-bench: glibc-only malloc interposition.
//
// Defining malloc & co. in the main executable makes the dynamic linker bind every
// shared object's references (libswiftCore's swift_slowAlloc included) to these
// definitions, since the executable comes first in symbol lookup order. Each one bumps a
// relaxed atomic counter and forwards to glibc's real allocator through its exported
// __libc_* entry points, so no dlsym (which itself allocates) is needed.
// Only psp-bench may link this target: it changes malloc for the whole process.

#include "CAllocCounter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

// Relaxed: the benchmark reads the counter on the thread that allocates; no ordering needed.
// The lock-prefixed add costs a few ns per allocation; a load+store variant measured the
// same to within 1%, so the timings of allocating paths are not inflated by counting.
static _Atomic uint64_t allocations;

static inline void count_one(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

uint64_t alloc_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }

void alloc_counter_escape(const void *pointer) { (void)pointer; }

void *malloc(size_t size) { count_one(); return __libc_malloc(size); }

// Frees are not counted: the figure of interest is allocations per frame.
void free(void *ptr) { __libc_free(ptr); }

void *calloc(size_t n, size_t size) { count_one(); return __libc_calloc(n, size); }

// realloc(p, 0) frees and realloc(NULL, n) allocates; both count as one call, like a malloc.
void *realloc(void *ptr, size_t size) { count_one(); return __libc_realloc(ptr, size); }

void *memalign(size_t alignment, size_t size) { count_one(); return __libc_memalign(alignment, size); }

void *aligned_alloc(size_t alignment, size_t size) { count_one(); return __libc_memalign(alignment, size); }

void *valloc(size_t size) { count_one(); return __libc_valloc(size); }

void *pvalloc(size_t size) { count_one(); return __libc_pvalloc(size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    // POSIX: a power of two and a multiple of sizeof(void *), else EINVAL without allocating.
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_one();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}
