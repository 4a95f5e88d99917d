/* The few C++ runtime hooks TFLM's virtual classes need, so no libstdc++ is linked:
 * TFLM never allocates with `new`, so deleting destructors must never run. */
#include <stddef.h>
#include <stdlib.h>

void __cxa_pure_virtual(void) { abort(); }
void _ZdlPv(void *p) { (void)p; abort(); }               /* operator delete(void*) */
void _ZdlPvj(void *p, size_t n) { (void)p; (void)n; abort(); } /* operator delete(void*, size_t) */
void *__dso_handle = 0;

/* newlib's exit() runs __libc_fini_array, which calls _fini (crti/crtn are not linked). */
void _init(void) {}
void _fini(void) {}
