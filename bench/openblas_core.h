/* SPDX-License-Identifier: MIT */
/*
 * openblas_core.h - a fair OpenBLAS baseline for the host benchmarks.
 *
 * OpenBLAS 0.3.21 (Debian bookworm) does not recognise newer CPU models
 * and falls back to its generic SSE3 ("Prescott") kernels, several times
 * slower than the sgemm this CPU can run: a baseline that flatters our
 * kernels. When OpenBLAS picked such a fallback and OPENBLAS_CORETYPE is
 * unset, bench_openblas_best_core() re-runs the program with the core
 * whose kernels were written for this CPU's vector units. OpenBLAS reads
 * the variable when it is loaded, hence the re-exec. The benches check
 * OpenBLAS's results, so a core that computed wrongly would show.
 */
#ifndef BENCH_OPENBLAS_CORE_H
#define BENCH_OPENBLAS_CORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

static inline void bench_openblas_best_core(char **argv)
{
	static const char *const fallback[] = {
		"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
		"Atom", "Sandybridge",
	};
	const char *got = openblas_get_corename(), *want = NULL;
	size_t k;
	int generic = 0;

	if (getenv("OPENBLAS_CORETYPE") || !got)
		return;
	for (k = 0; k < sizeof(fallback) / sizeof(fallback[0]); k++)
		generic |= !strcasecmp(got, fallback[k]);
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512dq"))
		want = "SkylakeX";
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		want = "Haswell";
	if (!generic || !want)
		return;
	printf("# OpenBLAS chose its %s kernels on this CPU; measuring it with "
	       "OPENBLAS_CORETYPE=%s\n", got, want);
	fflush(stdout);
	setenv("OPENBLAS_CORETYPE", want, 1);
	execv("/proc/self/exe", argv);
	perror("re-exec with OPENBLAS_CORETYPE");
}

#endif /* BENCH_OPENBLAS_CORE_H */
