// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * streamer: the throughput benchmark's traffic (bench/throughput.ts).
 *
 * Build: cc -O2 -Wall -Werror -o build/streamer bench/streamer.c
 *
 *   streamer [--netns PATH] [--cgroup DIR] [--cpu N] MODE ...
 *   sink tcp|udp PORT            listen on [::]:PORT (dual-stack); print "ready";
 *                                read and discard until killed
 *   send tcp ADDR PORT BYTES     one TCP stream of BYTES bytes (64 KiB writes),
 *                                then wait for the sink to close: all delivered
 *   send udp ADDR PORT SIZE N    N datagrams of SIZE bytes on a connected socket
 *
 * send prints {"bytes":B,"packets":P,"ns":T} (the wall time of the transfer).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "streamer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int sink(int udp, int port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT };
	int fd = socket(AF_INET6, udp ? SOCK_DGRAM : SOCK_STREAM, 0), zero = 0, one = 1, big = 8 << 20;
	static char buf[1 << 16];

	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("bind");
	if (!udp && listen(fd, 16) != 0)
		die("listen");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (udp) {
			recv(fd, buf, sizeof(buf), 0);
			continue;
		}
		int c = accept(fd, NULL, NULL);

		if (c < 0)
			continue;
		while (read(c, buf, sizeof(buf)) > 0)
			;
		close(c);
	}
}

static int send_stream(int udp, const char *addr, int port, long long amount, int size)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	static char buf[1 << 16];
	long long sent = 0, packets = 0, t0;

	if (fd < 0)
		die("socket");
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "streamer: bad address %s\n", addr);
		return 2;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("connect");
	memset(buf, 'x', sizeof(buf));
	t0 = now_ns();
	if (udp) {
		while (packets < amount) {
			if (send(fd, buf, (size_t)size, 0) < 0) {
				if (errno == ENOBUFS || errno == EAGAIN)
					continue;
				die("send");
			}
			packets++;
			sent += size;
		}
	} else {
		while (sent < amount) {
			size_t n = amount - sent < (long long)sizeof(buf) ? (size_t)(amount - sent) : sizeof(buf);
			ssize_t w = write(fd, buf, n);

			if (w < 0)
				die("write");
			sent += w;
			packets++;
		}
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	printf("{\"bytes\":%lld,\"packets\":%lld,\"ns\":%lld}\n", sent, packets, now_ns() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i + 1 < argc && !strncmp(argv[i], "--", 2)) {
		if (!strcmp(argv[i], "--netns")) {
			int fd = open(argv[i + 1], O_RDONLY | O_CLOEXEC);

			if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
				die("setns");
			close(fd);
		} else if (!strcmp(argv[i], "--cgroup")) {
			char path[4096];
			FILE *f;

			snprintf(path, sizeof(path), "%s/cgroup.procs", argv[i + 1]);
			f = fopen(path, "w");
			if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
				die("join cgroup");
		} else if (!strcmp(argv[i], "--cpu")) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(atoi(argv[i + 1]), &set);
			sched_setaffinity(0, sizeof(set), &set);
		} else {
			fprintf(stderr, "streamer: unknown option %s\n", argv[i]);
			return 2;
		}
		i += 2;
	}
	if (argc - i == 3 && !strcmp(argv[i], "sink"))
		return sink(!strcmp(argv[i + 1], "udp"), atoi(argv[i + 2]));
	if (argc - i == 5 && !strcmp(argv[i], "send") && !strcmp(argv[i + 1], "tcp"))
		return send_stream(0, argv[i + 2], atoi(argv[i + 3]), atoll(argv[i + 4]), 0);
	if (argc - i == 6 && !strcmp(argv[i], "send") && !strcmp(argv[i + 1], "udp"))
		return send_stream(1, argv[i + 2], atoi(argv[i + 3]), atoll(argv[i + 5]), atoi(argv[i + 4]));
	fprintf(stderr, "streamer: see the comment at the top of bench/streamer.c for usage\n");
	return 2;
}
