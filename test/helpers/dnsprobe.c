// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dnsprobe: a pod's own DNS lookup, then connects to what it was told, with
 * nothing in between; for the kernel tests of meshgate's DNS reader.
 *
 * Build: cc -O2 -Wall -Werror -o build/dnsprobe test/helpers/dnsprobe.c
 *
 *   dnsprobe [--cgroup DIR] [--netns PATH] resolve --server ADDR --port P --name NAME
 *            [--type A|AAAA] [--connect-port N] [--timeout-ms N]
 *       one UDP query, one answer; then a TCP connect() to every A/AAAA in it.
 *       Prints {"rcode":N,"answers":["a",...],"connects":[{"addr":"a","ok":b,"error":"EPERM"|null}]}
 *   dnsprobe [--cgroup DIR] [--netns PATH] wait --port P [--timeout-ms N]
 *       binds 127.0.0.1:P (UDP), prints {"bound":P}, waits for one datagram,
 *       prints {"received":BYTES} (0 on timeout). Nothing was ever sent from it.
 *
 * Exit status: 0 when the mode ran, 1 when a global option failed, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probeplace.h"

#define MAX_ANSWERS 64

static void die_usage(const char *why)
{
	fprintf(stderr, "dnsprobe: %s\n", why);
	exit(2);
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1;
}

/* Skips a (possibly compressed) name; returns the offset after it, or -1. */
static int skip_name(const unsigned char *m, int len, int off)
{
	while (off < len) {
		unsigned char c = m[off];

		if (c == 0)
			return off + 1;
		if ((c & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : -1;
		off += 1 + c;
	}
	return -1;
}

static int encode_name(const char *name, unsigned char *out, int cap)
{
	int n = 0;
	const char *p = name;

	while (*p) {
		const char *dot = strchr(p, '.');
		int l = dot ? (int)(dot - p) : (int)strlen(p);

		if (l == 0 || l > 63 || n + l + 2 >= cap)
			return -1;
		out[n++] = (unsigned char)l;
		memcpy(out + n, p, (size_t)l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	return n;
}

static int resolve(int argc, char **argv)
{
	const char *server = NULL, *name = NULL;
	int port = 0, qtype = 1, connect_port = 443, timeout_ms = 2000, i;
	unsigned char q[512], r[4096];
	char answers[MAX_ANSWERS][INET6_ADDRSTRLEN];
	int nanswers = 0, n, fd, family, off, an, rcode;
	struct sockaddr_storage ss = {};
	socklen_t sslen;
	unsigned short id;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			die_usage("option without value");
		if (!strcmp(a, "--server"))
			server = v;
		else if (!strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--name"))
			name = v;
		else if (!strcmp(a, "--type"))
			qtype = !strcmp(v, "AAAA") ? 28 : 1;
		else if (!strcmp(a, "--connect-port"))
			connect_port = atoi(v);
		else if (!strcmp(a, "--timeout-ms"))
			timeout_ms = atoi(v);
		else
			die_usage("unknown resolve option");
		i++;
	}
	if (!server || !name || port <= 0)
		die_usage("resolve needs --server, --port and --name");
	family = strchr(server, ':') ? AF_INET6 : AF_INET;
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		if (inet_pton(AF_INET, server, &s4->sin_addr) != 1)
			die_usage("bad --server");
		sslen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		if (inet_pton(AF_INET6, server, &s6->sin6_addr) != 1)
			die_usage("bad --server");
		sslen = sizeof(*s6);
	}
	srand((unsigned)(time(NULL) ^ getpid()));
	id = (unsigned short)rand();
	memset(q, 0, 12);
	q[0] = id >> 8;
	q[1] = id & 0xff;
	q[2] = 0x01; /* RD */
	q[5] = 1;    /* QDCOUNT */
	n = encode_name(name, q + 12, (int)sizeof(q) - 16);
	if (n < 0)
		die_usage("bad --name");
	n += 12;
	q[n++] = 0;
	q[n++] = (unsigned char)qtype;
	q[n++] = 0;
	q[n++] = 1;

	fd = socket(family, SOCK_DGRAM, 0);
	if (fd < 0 || sendto(fd, q, (size_t)n, 0, (struct sockaddr *)&ss, sslen) != n) {
		printf("{\"rcode\":-1,\"error\":\"%s\",\"answers\":[],\"connects\":[]}\n", strerror(errno));
		return 0;
	}
	n = -1;
	while (wait_readable(fd, timeout_ms)) {
		n = (int)recv(fd, r, sizeof(r), 0);
		if (n >= 12 && r[0] == (id >> 8) && r[1] == (id & 0xff))
			break;
		n = -1;
	}
	close(fd);
	if (n < 12) {
		printf("{\"rcode\":-1,\"error\":\"no answer\",\"answers\":[],\"connects\":[]}\n");
		return 0;
	}
	rcode = r[3] & 0x0f;
	an = (r[6] << 8) | r[7];
	off = skip_name(r, n, 12);
	off = off < 0 ? -1 : off + 4;
	for (i = 0; i < an && off > 0 && off < n; i++) {
		int type, rdlen;

		off = skip_name(r, n, off);
		if (off < 0 || off + 10 > n)
			break;
		type = (r[off] << 8) | r[off + 1];
		rdlen = (r[off + 8] << 8) | r[off + 9];
		off += 10;
		if (off + rdlen > n)
			break;
		if (nanswers < MAX_ANSWERS && ((type == 1 && rdlen == 4) || (type == 28 && rdlen == 16)))
			inet_ntop(type == 1 ? AF_INET : AF_INET6, r + off, answers[nanswers++], INET6_ADDRSTRLEN);
		off += rdlen;
	}

	/* At once: the kernel must have learned the address before recv() returned. */
	printf("{\"rcode\":%d,\"answers\":[", rcode);
	for (i = 0; i < nanswers; i++)
		printf("%s\"%s\"", i ? "," : "", answers[i]);
	printf("],\"connects\":[");
	for (i = 0; i < nanswers; i++) {
		struct sockaddr_storage d = {};
		int v6 = strchr(answers[i], ':') != NULL, ok, err = 0;
		int c = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);

		if (v6) {
			struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&d;

			d6->sin6_family = AF_INET6;
			d6->sin6_port = htons((unsigned short)connect_port);
			inet_pton(AF_INET6, answers[i], &d6->sin6_addr);
		} else {
			struct sockaddr_in *d4 = (struct sockaddr_in *)&d;

			d4->sin_family = AF_INET;
			d4->sin_port = htons((unsigned short)connect_port);
			inet_pton(AF_INET, answers[i], &d4->sin_addr);
		}
		ok = connect(c, (struct sockaddr *)&d, v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) == 0;
		if (!ok)
			err = errno;
		close(c);
		printf("%s{\"addr\":\"%s\",\"ok\":%s,\"error\":%s%s%s}", i ? "," : "", answers[i], ok ? "true" : "false",
		       ok ? "" : "\"", ok ? "null" : (err == EPERM ? "EPERM" : strerror(err)), ok ? "" : "\"");
	}
	printf("]}\n");
	return 0;
}

static int wait_mode(int argc, char **argv)
{
	int port = 0, timeout_ms = 2000, i, fd, n = 0;
	struct sockaddr_in a = { .sin_family = AF_INET };
	unsigned char buf[4096];

	for (i = 0; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout-ms"))
			timeout_ms = atoi(argv[i + 1]);
		else
			die_usage("unknown wait option");
	}
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(0x7f000001);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		fprintf(stderr, "dnsprobe: bind: %s\n", strerror(errno));
		return 1;
	}
	printf("{\"bound\":%d}\n", port);
	fflush(stdout);
	if (wait_readable(fd, timeout_ms))
		n = (int)recv(fd, buf, sizeof(buf), 0);
	printf("{\"received\":%d}\n", n < 0 ? 0 : n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *netns = NULL;
	int i = 1;

	while (i + 1 < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--cgroup"))
			cgroup = argv[i + 1];
		else if (!strcmp(argv[i], "--netns"))
			netns = argv[i + 1];
		else
			die_usage("unknown global option");
		i += 2;
	}
	if (i >= argc)
		die_usage("usage: dnsprobe [--cgroup DIR] [--netns PATH] resolve|wait OPTIONS");
	probe_enter("dnsprobe", cgroup, netns);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[i], "resolve"))
		return resolve(argc - i - 1, argv + i + 1);
	if (!strcmp(argv[i], "wait"))
		return wait_mode(argc - i - 1, argv + i + 1);
	die_usage("unknown mode");
	return 2;
}
