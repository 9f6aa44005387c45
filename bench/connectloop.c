// SPDX-License-Identifier: Apache-2.0
/*
 * connectloop: the C side of meshgate's benchmarks (bench/run.ts drives it).
 *
 * Build: cc -O2 -Wall -Werror -o build/connectloop bench/connectloop.c
 *
 *   connectloop [--netns PATH] [--cgroup DIR] loop --addr A --port P --count N
 *               [--batches B] [--timeout-ms T]
 *       B batches of N IPv4 TCP connects. Each iteration: socket(), then (not
 *       timed) SO_LINGER 0 and SO_SNDTIMEO, then connect() and close(). Every
 *       connect() is timed alone with CLOCK_MONOTONIC, so the figure is the
 *       decision plus the handshake on loopback, without the harness. Prints one
 *       JSON line: per batch, the median and mean of connect() and the mean of
 *       socket()+connect()+close(); errno counts.
 *   connectloop [--netns PATH] sink --port P [--port P...]
 *       Listens on 0.0.0.0:P (TCP) and accepts and closes, as cheaply as
 *       possible, so the loop's connects complete and the accept queue never
 *       fills. Prints {"listening":true} once; runs until killed.
 *   connectloop [--netns PATH] [--cgroup DIR] watch --addr A --port P
 *               [--interval-us U] [--timeout-ms T]
 *       For propagation: reads "deny" or "pass" lines on stdin. For each, it
 *       prints "armed" and then connects every U microseconds until the verdict
 *       (EPERM = deny, anything else = pass) is the one asked for, and prints
 *       "flipped <CLOCK_MONOTONIC ns> <attempts>" (or "timeout").
 *
 * --cpu N pins the process to one CPU (sched_setaffinity): the bench puts the
 * sink and the loop on different CPUs, so the loop's timing does not depend on
 * where the scheduler happened to wake the listener.
 *
 * Every mode dies with its parent (PR_SET_PDEATHSIG), so an interrupted bench
 * leaves no process behind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 8

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "connectloop: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void __attribute__((noreturn)) usage(const char *msg)
{
	fprintf(stderr, "connectloop: %s\n"
		"global options: --netns PATH, --cgroup DIR, --cpu N\n"
		"usage: connectloop [--netns PATH] [--cgroup DIR] loop --addr A --port P --count N [--batches B] [--timeout-ms T]\n"
		"       connectloop [--netns PATH] sink --port P [--port P...]\n"
		"       connectloop [--netns PATH] [--cgroup DIR] watch --addr A --port P [--interval-us U] [--timeout-ms T]\n",
		msg);
	exit(2);
}

static long num(const char *name, const char *v, long lo, long hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "connectloop: %s: expected an integer in [%ld, %ld], got '%s'\n", name, lo, hi, v);
		exit(2);
	}
	return n;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (write(fd, pid, (size_t)n) != n)
		die(path);
	close(fd);
}

static void join_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die(path);
	if (setns(fd, CLONE_NEWNET) != 0)
		die("setns");
	close(fd);
}

struct opts {
	const char *mode, *addr;
	long ports[MAX_PORTS];
	int nports;
	long count, batches, timeout_ms, interval_us;
	struct sockaddr_in dst;
};

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENETUNREACH: return "ENETUNREACH";
	case ECONNRESET: return "ECONNRESET";
	case EINTR: return "EINTR";
	default: return NULL;
	}
}

/* ------------------------------------------------------------------ */

static int run_loop(const struct opts *o)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tv = { .tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000 };
	int64_t *calls = calloc((size_t)o->count, sizeof(int64_t));
	int64_t *med = calloc((size_t)o->batches, sizeof(int64_t));
	int64_t *mean = calloc((size_t)o->batches, sizeof(int64_t));
	int64_t *total = calloc((size_t)o->batches, sizeof(int64_t));
	long errs[4096] = { 0 };
	long ok = 0, b, k;
	int first = 1, e;

	if (!calls || !med || !mean || !total)
		die("calloc");
	for (b = 0; b < o->batches; b++) {
		int64_t sum = 0, sum_total = 0;

		for (k = 0; k < o->count; k++) {
			int64_t t0, t1, t2, t3, t4;
			int fd, err = 0;

			t0 = now_ns();
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			t1 = now_ns();
			if (fd < 0)
				die("socket");
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			t2 = now_ns();
			if (connect(fd, (const struct sockaddr *)&o->dst, sizeof(o->dst)) != 0)
				err = errno == EINPROGRESS ? ETIMEDOUT : errno;
			t3 = now_ns();
			close(fd);
			t4 = now_ns();
			calls[k] = t3 - t2;
			sum += t3 - t2;
			sum_total += (t1 - t0) + (t4 - t2);
			if (err == 0)
				ok++;
			else if (err > 0 && err < 4096)
				errs[err]++;
		}
		qsort(calls, (size_t)o->count, sizeof(int64_t), cmp_i64);
		med[b] = o->count % 2 ? calls[o->count / 2] : (calls[o->count / 2 - 1] + calls[o->count / 2]) / 2;
		mean[b] = sum / o->count;
		total[b] = sum_total / o->count;
	}
	printf("{\"count\":%ld,\"batches\":%ld,\"connect_median_ns\":[", o->count, o->batches);
	for (b = 0; b < o->batches; b++)
		printf("%s%lld", b ? "," : "", (long long)med[b]);
	printf("],\"connect_mean_ns\":[");
	for (b = 0; b < o->batches; b++)
		printf("%s%lld", b ? "," : "", (long long)mean[b]);
	printf("],\"total_mean_ns\":[");
	for (b = 0; b < o->batches; b++)
		printf("%s%lld", b ? "," : "", (long long)total[b]);
	printf("],\"errors\":{");
	for (e = 1; e < 4096; e++) {
		const char *name;

		if (!errs[e])
			continue;
		name = errname(e);
		if (name)
			printf("%s\"%s\":%ld", first ? "" : ",", name, errs[e]);
		else
			printf("%s\"E%d\":%ld", first ? "" : ",", e, errs[e]);
		first = 0;
	}
	printf("},\"ok\":%ld}\n", ok);
	fflush(stdout);
	return 0;
}

/* ------------------------------------------------------------------ */

static int run_sink(const struct opts *o)
{
	struct pollfd pfd[MAX_PORTS];
	int one = 1, i;

	for (i = 0; i < o->nports; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->ports[i]) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			die("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
			die("bind");
		if (listen(fd, 4096) != 0)
			die("listen");
		pfd[i].fd = fd;
		pfd[i].events = POLLIN;
	}
	printf("{\"listening\":true}\n");
	fflush(stdout);
	for (;;) {
		if (poll(pfd, (nfds_t)o->nports, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (i = 0; i < o->nports; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				int c = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);

				if (c < 0)
					break;
				close(c);
			}
		}
	}
}

/* ------------------------------------------------------------------ */

/* 1 when the kernel denied (EPERM), 0 otherwise. */
static int probe_denied(const struct opts *o)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), denied;

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	denied = connect(fd, (const struct sockaddr *)&o->dst, sizeof(o->dst)) != 0 && errno == EPERM;
	close(fd);
	return denied;
}

static int run_watch(const struct opts *o)
{
	char line[64];
	struct timespec pause = { .tv_sec = 0, .tv_nsec = o->interval_us * 1000 };

	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		int want_deny;
		long attempts = 0;
		int64_t deadline;

		if (!strncmp(line, "deny", 4))
			want_deny = 1;
		else if (!strncmp(line, "pass", 4))
			want_deny = 0;
		else
			usage("watch: stdin lines must be deny or pass");
		if (probe_denied(o) == want_deny) {
			printf("already\n");
			fflush(stdout);
			continue;
		}
		printf("armed\n");
		fflush(stdout);
		deadline = now_ns() + o->timeout_ms * 1000000LL;
		for (;;) {
			int64_t t;

			attempts++;
			if (probe_denied(o) == want_deny) {
				t = now_ns();
				printf("flipped %lld %ld\n", (long long)t, attempts);
				break;
			}
			if (now_ns() > deadline) {
				printf("timeout\n");
				break;
			}
			nanosleep(&pause, NULL);
		}
		fflush(stdout);
	}
	return 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct opts o = { .count = 0, .batches = 5, .timeout_ms = 2000, .interval_us = 200 };
	const char *netns = NULL, *cgroup = NULL, *port_arg = NULL;
	long cpu = -1;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1; /* the parent is already gone */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strncmp(a, "--", 2) != 0) {
			if (o.mode)
				usage("more than one mode given");
			o.mode = a;
			continue;
		}
		if (!v)
			usage("an option needs a value");
		i++;
		if (!strcmp(a, "--netns"))
			netns = v;
		else if (!strcmp(a, "--cgroup"))
			cgroup = v;
		else if (!strcmp(a, "--addr"))
			o.addr = v;
		else if (!strcmp(a, "--port")) {
			if (o.nports == MAX_PORTS)
				usage("too many --port");
			o.ports[o.nports++] = num("--port", v, 1, 65535);
			port_arg = v;
		} else if (!strcmp(a, "--count"))
			o.count = num("--count", v, 1, 10000000);
		else if (!strcmp(a, "--batches"))
			o.batches = num("--batches", v, 1, 1000);
		else if (!strcmp(a, "--timeout-ms"))
			o.timeout_ms = num("--timeout-ms", v, 1, 600000);
		else if (!strcmp(a, "--cpu"))
			cpu = num("--cpu", v, 0, CPU_SETSIZE - 1);
		else if (!strcmp(a, "--interval-us"))
			o.interval_us = num("--interval-us", v, 0, 999999);
		else
			usage("unknown option");
	}
	if (!o.mode)
		usage("no mode given");
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET((int)cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			die("sched_setaffinity");
	}
	if (cgroup)
		join_cgroup(cgroup);
	if (netns)
		join_netns(netns);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(o.mode, "sink")) {
		if (!o.nports)
			usage("sink needs --port");
		return run_sink(&o);
	}
	if (!o.addr || o.nports != 1 || !port_arg)
		usage("loop and watch need --addr and one --port");
	o.dst.sin_family = AF_INET;
	o.dst.sin_port = htons((uint16_t)o.ports[0]);
	if (inet_pton(AF_INET, o.addr, &o.dst.sin_addr) != 1)
		usage("--addr must be an IPv4 address");
	if (!strcmp(o.mode, "loop")) {
		if (!o.count)
			usage("loop needs --count");
		return run_loop(&o);
	}
	if (!strcmp(o.mode, "watch"))
		return run_watch(&o);
	usage("unknown mode");
}
