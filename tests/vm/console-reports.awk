# SPDX-License-Identifier: MIT
# console-reports.awk -v out=FILE: reads a guest's serial console as it
# streams (run-vm.sh), passes every line through, and counts the kernel's
# reports by kind. FILE gets one kind=<n> line per kind, then one
# "report <kind> during <test>: <first line>" per report (the first 20 of
# each kind). A kind's count is the number of reports, not of lines: a
# report's own "Call Trace:" is part of it, and so is a WARN() banner
# ("WARNING: CPU: ...") within 3 lines of another report (ODEBUG's or
# DEBUG_LOCKS_WARN_ON's).
#
# kasan          BUG: KASAN: ...
# lockdep        lockdep's reports (circular or recursive locking, lock
#                inversion, bad unlock, invalid wait context, ...); lockdep
#                turns itself off after its first report, so more than one
#                is rare
# atomic_sleep   BUG: sleeping function called from invalid context,
#                BUG: scheduling while atomic
# debug_objects  ODEBUG: (DEBUG_OBJECTS: a timer, work or rcu_head misused)
# kmemleak       unreferenced objects in the kmemleak report that the
#                guest's /init prints after its kmemleak scan
# dropped        printk messages the console never got (a burst larger
#                than the ring buffer): the counts above may be short
# warning        any other oops, BUG, WARNING, panic, UBSAN report, hung
#                task, or a call trace outside a report above
function report(kind, line) {
	if (line ~ /WARNING: CPU: / && NR - last_report <= 3)
		return
	n[kind]++
	if (n[kind] <= 20) {
		sub(/^\[ *[0-9.]+\] /, "", line)
		first[++nfirst] = kind " during " test ": " line
	}
	last_report = NR
}

BEGIN {
	test = "boot"
	split("kasan lockdep atomic_sleep debug_objects kmemleak dropped warning",
	      kinds, " ")
	for (k in kinds)
		n[kinds[k]] = 0
	last_report = -1000
}

{
	print
	fflush()
}

# The stock kernel's /init reprints its ring buffer's problems at the end;
# those lines were counted when the kernel printed them.
/^vm: kernel log shows a problem:/ { reprint = 1; next }
reprint && /^vm: (FAIL|status)/ { reprint = 0 }
reprint { next }

/^vm: running / { test = $3; next }
/^# +RUN +/ { test = $3; next }
/^(ok|not ok) [0-9]+ / { next }

/BUG: KASAN: / { report("kasan", $0); next }
/BUG: sleeping function called from invalid context|BUG: scheduling while atomic/ {
	report("atomic_sleep", $0); next
}
/WARNING: (possible circular locking|possible recursive locking|inconsistent lock state|possible irq lock inversion|suspicious RCU usage|bad unlock balance|held lock freed|lock held when returning|Nested lock was not taken|bad contention)|lock order detected|BUG: (MAX_LOCKDEP|MAX_STACK_TRACE|held lock freed|lock held when returning|Invalid wait context|looking up invalid subclass)|Invalid wait context|INFO: trying to register non-static key|DEBUG_LOCKS_WARN_ON|at kernel\/locking\/lockdep\.c/ {
	report("lockdep", $0); next
}
/ODEBUG: / { report("debug_objects", $0); next }
/^unreferenced object 0x/ { report("kmemleak", $0); next }
/printk messages dropped/ { report("dropped", $0); next }
/Call Trace/ {
	if (NR - last_report > 80)
		report("warning", $0)
	next
}
/Oops|BUG:|WARNING:|general protection|Kernel panic|UBSAN|blocked for more than/ {
	report("warning", $0); next
}

END {
	printf "" >out
	for (k = 1; k in kinds; k++)
		printf "%s=%d\n", kinds[k], n[kinds[k]] >>out
	for (i = 1; i <= nfirst; i++)
		printf "report %s\n", first[i] >>out
	close(out)
}
