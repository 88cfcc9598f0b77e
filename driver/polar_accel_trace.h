/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * polar_accel tracepoints: a job's submission and its completion.
 *   echo 1 > /sys/kernel/tracing/events/polar_accel/enable
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM polar_accel

#if !defined(__POLAR_ACCEL_TRACE_H__) || defined(TRACE_HEADER_MULTI_READ)
#define __POLAR_ACCEL_TRACE_H__

#include <linux/tracepoint.h>

TRACE_EVENT(polar_job_submit,
	    TP_PROTO(u64 seqno, u32 queue, u32 num_cmds),
	    TP_ARGS(seqno, queue, num_cmds),
	    TP_STRUCT__entry(__field(u64, seqno)
			     __field(u32, queue)
			     __field(u32, num_cmds)),
	    TP_fast_assign(__entry->seqno = seqno;
			   __entry->queue = queue;
			   __entry->num_cmds = num_cmds;),
	    TP_printk("seqno=%llu queue=%u cmds=%u", __entry->seqno,
		      __entry->queue, __entry->num_cmds)
);

TRACE_EVENT(polar_job_complete,
	    TP_PROTO(u64 seqno, u32 queue, int status, u16 cmd_status),
	    TP_ARGS(seqno, queue, status, cmd_status),
	    TP_STRUCT__entry(__field(u64, seqno)
			     __field(u32, queue)
			     __field(int, status)
			     __field(u16, cmd_status)),
	    TP_fast_assign(__entry->seqno = seqno;
			   __entry->queue = queue;
			   __entry->status = status;
			   __entry->cmd_status = cmd_status;),
	    TP_printk("seqno=%llu queue=%u status=%d device_status=%u",
		      __entry->seqno, __entry->queue, __entry->status,
		      __entry->cmd_status)
);

#endif /* __POLAR_ACCEL_TRACE_H__ */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE polar_accel_trace
#include <trace/define_trace.h>
