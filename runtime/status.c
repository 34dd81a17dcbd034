/*
 * status.c — the thread-local error message, thread count and interrupt flag.
 * The only global mutable state of the runtime lives here.
 */
#include "ddpm.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#ifdef _OPENMP
#include <omp.h>
#endif

extern void openblas_set_num_threads(int num_threads);

static _Thread_local char errbuf[1024];
static volatile sig_atomic_t interrupt_flag;
static int num_threads = 1;

const char *ddpm_errmsg(void) { return errbuf; }

void ddpm_clearerr(void) { errbuf[0] = '\0'; }

int ddpm_seterr(int rc, const char *fmt, ...)
{
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(errbuf, sizeof errbuf, fmt, ap);
   va_end(ap);
   return rc;
}

void ddpm_set_num_threads(int n)
{
   if (n < 1) n = 1;
   num_threads = n;
#ifdef _OPENMP
   omp_set_num_threads(n);
#endif
   openblas_set_num_threads(n);
}

int ddpm_get_num_threads(void) { return num_threads; }

void ddpm_interrupt_set(void) { interrupt_flag = 1; }
void ddpm_interrupt_clear(void) { interrupt_flag = 0; }
int  ddpm_interrupted(void) { return interrupt_flag != 0; }
