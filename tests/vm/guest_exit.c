// SPDX-License-Identifier: MIT
/*
 * guest-exit CODE: ends the VM with a verdict. Writing CODE to QEMU's
 * isa-debug-exit port (0xf4) makes QEMU exit with status (CODE << 1) | 1,
 * so the host can tell "tests passed" (1) from "tests failed" (3) and from
 * a VM that died without reporting (anything else).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

#define DEBUG_EXIT_PORT 0xf4

int main(int argc, char **argv)
{
	unsigned int code = argc > 1 ? (unsigned int)atoi(argv[1]) : 0;

	if (ioperm(DEBUG_EXIT_PORT, 4, 1)) {
		perror("guest-exit: ioperm");
		return 1;
	}
	outl(code, DEBUG_EXIT_PORT);
	fprintf(stderr, "guest-exit: isa-debug-exit is not present\n");
	return 1;
}
