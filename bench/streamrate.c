// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * streamrate: how fast a socket in a cgroup receives, for the DNS reader's
 * ingress cost (bench/dnsReader.ts). The receiver joins --cgroup (so the
 * cgroup's cgroup_skb/ingress programs see every packet it gets); the sender
 * stays outside. Both run in --netns, over 127.0.0.1.
 *
 *   streamrate --netns PATH --cgroup DIR --mode tcp|udp --ms N [--port P] [--cpu-recv C --cpu-send C]
 *
 * Prints {"mode":"tcp","bytes":B,"packets":N,"seconds":S}: what the receiver got.
 * tcp: one bulk stream of 64 KiB writes. udp: 64-byte datagrams, as fast as the sender can.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (fd < 0 || write(fd, pid, (size_t)n) != n) {
		perror("streamrate: join cgroup");
		exit(1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *cgroup = NULL, *mode = "tcp";
	int ms = 1000, port = 5201, cpu_recv = -1, cpu_send = -1, i, fd, ready[2];
	struct sockaddr_in a = { .sin_family = AF_INET };
	static char buf[65536];
	pid_t child;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--netns"))
			netns = argv[i + 1];
		else if (!strcmp(argv[i], "--cgroup"))
			cgroup = argv[i + 1];
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else if (!strcmp(argv[i], "--ms"))
			ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--cpu-recv"))
			cpu_recv = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--cpu-send"))
			cpu_send = atoi(argv[i + 1]);
	}
	if (!netns || !cgroup) {
		fprintf(stderr, "usage: streamrate --netns PATH --cgroup DIR --mode tcp|udp --ms N\n");
		return 2;
	}
	fd = open(netns, O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		perror("streamrate: setns");
		return 1;
	}
	close(fd);
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(0x7f000001);
	if (pipe(ready) != 0)
		return 1;
	child = fork();
	if (child == 0) {
		/* receiver, in the cgroup */
		int tcp = !strcmp(mode, "tcp"), s, c, one = 1;
		unsigned long long bytes = 0, packets = 0;
		double start = 0, end;

		join_cgroup(cgroup);
		pin(cpu_recv);
		s = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || (tcp && listen(s, 1) != 0)) {
			perror("streamrate: bind");
			_exit(1);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		c = tcp ? accept(s, NULL, NULL) : s;
		for (;;) {
			struct pollfd p = { .fd = c, .events = POLLIN };
			ssize_t n;

			if (poll(&p, 1, 500) != 1)
				break;
			n = recv(c, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			if (!start)
				start = now();
			bytes += (unsigned long long)n;
			packets++;
		}
		end = now() - 0.5; /* the last poll timed out */
		printf("{\"mode\":\"%s\",\"bytes\":%llu,\"packets\":%llu,\"seconds\":%.4f}\n", mode, bytes, packets, end - start);
		fflush(stdout);
		_exit(0);
	}
	{
		char c;
		int tcp = !strcmp(mode, "tcp"), s;
		double stop;

		if (read(ready[0], &c, 1) != 1)
			return 1;
		pin(cpu_send);
		s = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
			perror("streamrate: connect");
			kill(child, SIGKILL);
			return 1;
		}
		stop = now() + ms / 1000.0;
		while (now() < stop) {
			int k;

			for (k = 0; k < 64; k++) {
				if (send(s, buf, tcp ? sizeof(buf) : 64, 0) < 0 && errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED)
					break;
			}
		}
		close(s);
		waitpid(child, NULL, 0);
	}
	return 0;
}
