/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where a test probe runs (sockprobe, sidedoor, dnsprobe): it joins a cgroup
 * (by writing its pid to cgroup.procs), then enters a network namespace (a
 * /run/netns path). Each is optional. A failure exits 1 with one line naming
 * the probe, the path and the error. Include after defining _GNU_SOURCE.
 */
#ifndef MESHGATE_PROBEPLACE_H
#define MESHGATE_PROBEPLACE_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void probe_enter(const char *probe, const char *cgroup, const char *netns)
{
	if (cgroup) {
		char path[4096], pid[32];
		int fd, n;

		snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (fd < 0 || write(fd, pid, (size_t)n) != n) {
			fprintf(stderr, "%s: joining cgroup %s: %s\n", probe, path, strerror(errno));
			exit(1);
		}
		close(fd);
	}
	if (netns) {
		int fd = open(netns, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			fprintf(stderr, "%s: entering netns %s: %s\n", probe, netns, strerror(errno));
			exit(1);
		}
		close(fd);
	}
}

#endif /* MESHGATE_PROBEPLACE_H */
