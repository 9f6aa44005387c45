// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockprobe: the socket tool the kernel tests use to observe what meshgate's
 * eBPF cgroup hooks decided (pass, redirect, deny = EPERM).
 *
 * Build: cc -O2 -Wall -Werror -o build/sockprobe test/helpers/sockprobe.c
 * (no extra libraries; io_uring is driven by raw syscalls).
 *
 * Usage (global options may appear anywhere on the command line and are
 * applied in this order before any socket is created:
 * --cgroup DIR, --netns PATH, --uid N):
 *
 *   sockprobe connect --family 4|6|mapped --proto tcp|udp|mptcp --addr A --port P
 *             [--v6only 0|1] [--timeout-ms N] [--tfo | --io-uring]
 *             [--send TEXT] [--read]
 *   sockprobe sendto  --family 4|6|mapped --addr A --port P [--proto udp]
 *             [--v6only 0|1] [--data TEXT] [--read] [--timeout-ms N]
 *   sockprobe listen  --family 4|6 --proto tcp|udp --addr A --port P
 *             [--banner TEXT] [--count N] [--dual-stack] [--max-ms N]
 *   sockprobe loop    --family 4|6 [--proto tcp|mptcp] --addr A --port P --count N
 *             [--batches B] [--timeout-ms N]
 *   sockprobe batch   [--timeout-ms N]
 *             reads "tcp|udp|sendto 4|6|mapped ADDR PORT" lines on stdin and
 *             tries each (a TCP or UDP connect(), or an unconnected UDP
 *             sendto()), printing one JSON line per input line:
 *             {"i":N,"ok":...,"errno":...,"error":...,"peer":...}
 *
 * connect/sendto/loop print exactly one JSON line; listen prints
 * {"listening":...} and then one line per connection/datagram served.
 * Exit status: 0 when the mode ran (a failing socket call is data, not an
 * error), 1 when a global option (cgroup, netns, uid) could not be applied,
 * 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/io_uring.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "probeplace.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#define SP_SO_ORIGINAL_DST 80 /* SO_ORIGINAL_DST == IP6T_SO_ORIGINAL_DST */
#define SP_SOL_IP 0
#define SP_SOL_IPV6 41

#define READ_MAX 4096

/* ------------------------------------------------------------------ */
/* small growable string buffer + JSON                                 */

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			fputs("sockprobe: out of memory\n", stderr);
			exit(1);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	sb_putn(b, tmp, (size_t)n);
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need, i;
	uint32_t cp;

	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return need;
}

/*
 * A JSON string of n bytes at s (null when s is NULL). Valid UTF-8 passes
 * through; a byte that is not part of valid UTF-8 becomes \u00XX.
 */
static void sb_json_strn(struct sb *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	if (!s) {
		sb_puts(b, "null");
		return;
	}
	sb_putn(b, "\"", 1);
	while (i < n) {
		unsigned char c = u[i];

		if (c == '"') {
			sb_puts(b, "\\\"");
		} else if (c == '\\') {
			sb_puts(b, "\\\\");
		} else if (c == '\n') {
			sb_puts(b, "\\n");
		} else if (c == '\r') {
			sb_puts(b, "\\r");
		} else if (c == '\t') {
			sb_puts(b, "\\t");
		} else if (c == '\b') {
			sb_puts(b, "\\b");
		} else if (c == '\f') {
			sb_puts(b, "\\f");
		} else if (c < 0x20 || c == 0x7F) {
			sb_printf(b, "\\u%04x", c);
		} else if (c < 0x80) {
			sb_putn(b, (const char *)&u[i], 1);
		} else {
			size_t l = utf8_len(u + i, n - i);

			if (l) {
				sb_putn(b, (const char *)&u[i], l);
				i += l;
				continue;
			}
			sb_printf(b, "\\u%04x", c);
		}
		i++;
	}
	sb_putn(b, "\"", 1);
}

static void sb_json_str(struct sb *b, const char *s)
{
	sb_json_strn(b, s, s ? strlen(s) : 0);
}

/* ------------------------------------------------------------------ */
/* errno names                                                         */

static const struct {
	int no;
	const char *name;
} errnames[] = {
	{ EPERM, "EPERM" },
	{ EACCES, "EACCES" },
	{ ECONNREFUSED, "ECONNREFUSED" },
	{ ETIMEDOUT, "ETIMEDOUT" },
	{ ENETUNREACH, "ENETUNREACH" },
	{ EHOSTUNREACH, "EHOSTUNREACH" },
	{ EINVAL, "EINVAL" },
	{ EAFNOSUPPORT, "EAFNOSUPPORT" },
	{ EPROTONOSUPPORT, "EPROTONOSUPPORT" },
	{ EINPROGRESS, "EINPROGRESS" },
	{ EADDRNOTAVAIL, "EADDRNOTAVAIL" },
	{ EADDRINUSE, "EADDRINUSE" },
	{ ECONNRESET, "ECONNRESET" },
	{ ECONNABORTED, "ECONNABORTED" },
	{ EOPNOTSUPP, "EOPNOTSUPP" },
	{ ENOENT, "ENOENT" },
	{ EAGAIN, "EAGAIN" },
	{ EPIPE, "EPIPE" },
	{ ENOTCONN, "ENOTCONN" },
	{ EISCONN, "EISCONN" },
	{ EALREADY, "EALREADY" },
	{ ENOPROTOOPT, "ENOPROTOOPT" },
	{ ENOBUFS, "ENOBUFS" },
	{ ENOMEM, "ENOMEM" },
	{ EMFILE, "EMFILE" },
	{ EMSGSIZE, "EMSGSIZE" },
	{ ENETDOWN, "ENETDOWN" },
	{ ECANCELED, "ECANCELED" },
	{ EINTR, "EINTR" },
	{ EBADF, "EBADF" },
	{ EFAULT, "EFAULT" },
	{ ENOSYS, "ENOSYS" },
	{ ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT" },
	{ EPROTOTYPE, "EPROTOTYPE" },
};

static const char *errname(int no, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].no == no)
			return errnames[i].name;
	snprintf(buf, len, "E%d", no);
	return buf;
}

/* ------------------------------------------------------------------ */
/* time                                                                */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000LL;
}

static int remaining_ms(int64_t deadline)
{
	int64_t r = deadline - now_ms();

	if (r < 0)
		return 0;
	if (r > 0x7fffffff)
		return 0x7fffffff;
	return (int)r;
}

/* 1 ready, 0 deadline passed, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, remaining_ms(deadline));

		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
		if (remaining_ms(deadline) == 0)
			return 0;
	}
}

static void set_timeo(int fd, int opt, long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return;
	fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

/* ------------------------------------------------------------------ */
/* addresses                                                           */

/* "a.b.c.d:port" or "[v6]:port"; 0 on success. */
static int fmt_sa(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN + 1];

	if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)ss;

		if (!inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a)))
			return -1;
		snprintf(out, outlen, "%s:%u", a, ntohs(s->sin_port));
		return 0;
	}
	if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)ss;

		if (!inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a)))
			return -1;
		if (s->sin6_scope_id)
			snprintf(out, outlen, "[%s%%%u]:%u", a, s->sin6_scope_id, ntohs(s->sin6_port));
		else
			snprintf(out, outlen, "[%s]:%u", a, ntohs(s->sin6_port));
		return 0;
	}
	return -1;
}

/* Appends the JSON string of the address, or null. */
static void sb_sa(struct sb *b, int have, const struct sockaddr_storage *ss, socklen_t len)
{
	char buf[INET6_ADDRSTRLEN + 32];

	if (have && fmt_sa(ss, len, buf, sizeof(buf)) == 0)
		sb_json_str(b, buf);
	else
		sb_puts(b, "null");
}

/*
 * Builds the destination for family 4, 6 or 'm' (v4-mapped: an IPv4 address,
 * or an IPv6 literal, for an AF_INET6 socket). 0 on success.
 */
static int make_addr(int family, const char *addr, long port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	struct in_addr v4;

	memset(ss, 0, sizeof(*ss));
	if (family == 'm' && inet_pton(AF_INET, addr, &v4) == 1) {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], &v4, 4);
		*len = sizeof(*s6);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family == 4 ? AF_INET : AF_INET6;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(addr, NULL, &hints, &res) != 0 || !res)
		return -1;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	return 0;
}

static int is_v4_or_mapped(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return 1;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

/* ------------------------------------------------------------------ */
/* options                                                             */

enum { M_CONNECT = 1, M_SENDTO = 2, M_LISTEN = 4, M_LOOP = 8, M_BATCH = 16, M_ALL = 31 };
enum { P_NONE = 0, P_TCP, P_UDP, P_MPTCP };

struct opts {
	int mode;
	const char *cgroup, *netns;
	long uid;
	int has_uid;
	int family; /* 4, 6, 'm', 0 = unset */
	int proto;
	const char *addr;
	long port;
	int has_port;
	int v6only; /* -1: leave the system default */
	long timeout_ms;
	int tfo, io_uring, read, dual_stack;
	const char *send, *data, *banner;
	long count;
	int has_count;
	long batches;
	long max_ms;
	struct sockaddr_storage dst; /* --addr/--port, parsed for the family */
	socklen_t dlen;
};

static const char usage_text[] =
	"usage: sockprobe [--cgroup DIR] [--netns PATH] [--uid N] MODE OPTIONS\n"
	"  connect --family 4|6|mapped --proto tcp|udp|mptcp --addr A --port P\n"
	"          [--v6only 0|1] [--timeout-ms N] [--tfo | --io-uring] [--send TEXT] [--read]\n"
	"  sendto  --family 4|6|mapped --addr A --port P [--proto udp] [--v6only 0|1]\n"
	"          [--data TEXT] [--read] [--timeout-ms N]\n"
	"  listen  --family 4|6 --proto tcp|udp --addr A --port P [--banner TEXT]\n"
	"          [--count N] [--dual-stack] [--max-ms N]\n"
	"  loop    --family 4|6 [--proto tcp|mptcp] --addr A --port P --count N\n"
	"          [--batches B] [--timeout-ms N]\n"
	"  batch   [--timeout-ms N]   (stdin: \"tcp|udp|sendto 4|6|mapped ADDR PORT\" lines)\n";

static void __attribute__((noreturn)) usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fputs("sockprobe: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs(usage_text, stderr);
	exit(2);
}

static long parse_num(const char *name, const char *v, long lo, long hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		usage("%s: expected an integer in [%ld, %ld], got '%s'", name, lo, hi, v);
	return n;
}

enum {
	O_CGROUP, O_NETNS, O_UID, O_FAMILY, O_PROTO, O_ADDR, O_PORT, O_V6ONLY, O_TIMEOUT,
	O_TFO, O_IOURING, O_SEND, O_READ, O_DATA, O_BANNER, O_COUNT, O_DUALSTACK,
	O_BATCHES, O_MAXMS, O_NUM
};

static const struct {
	const char *name;
	int has_val;
	int modes;
} optdefs[O_NUM] = {
	[O_CGROUP] = { "--cgroup", 1, M_ALL },
	[O_NETNS] = { "--netns", 1, M_ALL },
	[O_UID] = { "--uid", 1, M_ALL },
	[O_FAMILY] = { "--family", 1, M_ALL },
	[O_PROTO] = { "--proto", 1, M_ALL },
	[O_ADDR] = { "--addr", 1, M_ALL },
	[O_PORT] = { "--port", 1, M_ALL },
	[O_V6ONLY] = { "--v6only", 1, M_CONNECT | M_SENDTO },
	[O_TIMEOUT] = { "--timeout-ms", 1, M_CONNECT | M_SENDTO | M_LOOP | M_BATCH },
	[O_TFO] = { "--tfo", 0, M_CONNECT },
	[O_IOURING] = { "--io-uring", 0, M_CONNECT },
	[O_SEND] = { "--send", 1, M_CONNECT },
	[O_READ] = { "--read", 0, M_CONNECT | M_SENDTO },
	[O_DATA] = { "--data", 1, M_SENDTO },
	[O_BANNER] = { "--banner", 1, M_LISTEN },
	[O_COUNT] = { "--count", 1, M_LISTEN | M_LOOP },
	[O_DUALSTACK] = { "--dual-stack", 0, M_LISTEN },
	[O_BATCHES] = { "--batches", 1, M_LOOP },
	[O_MAXMS] = { "--max-ms", 1, M_LISTEN },
};

static void parse_args(int argc, char **argv, struct opts *o)
{
	const char *vals[O_NUM] = { 0 };
	int seen[O_NUM] = { 0 };
	const char *mode = NULL;
	int i, k;

	memset(o, 0, sizeof(*o));
	o->v6only = -1;
	o->timeout_ms = 2000;
	o->batches = 5;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *eq, *val = NULL;
		size_t nlen;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0) {
			if (mode)
				usage("unexpected argument '%s'", a);
			mode = a;
			continue;
		}
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (k = 0; k < O_NUM; k++)
			if (strlen(optdefs[k].name) == nlen && !strncmp(optdefs[k].name, a, nlen))
				break;
		if (k == O_NUM)
			usage("unknown option '%s'", a);
		if (optdefs[k].has_val) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				usage("%s needs a value", optdefs[k].name);
		} else if (eq) {
			usage("%s takes no value", optdefs[k].name);
		}
		if (seen[k])
			usage("%s given twice", optdefs[k].name);
		seen[k] = 1;
		vals[k] = val;
	}

	if (!mode)
		usage("no mode given");
	if (!strcmp(mode, "connect"))
		o->mode = M_CONNECT;
	else if (!strcmp(mode, "sendto"))
		o->mode = M_SENDTO;
	else if (!strcmp(mode, "listen"))
		o->mode = M_LISTEN;
	else if (!strcmp(mode, "loop"))
		o->mode = M_LOOP;
	else if (!strcmp(mode, "batch"))
		o->mode = M_BATCH;
	else
		usage("unknown mode '%s'", mode);

	for (k = 0; k < O_NUM; k++)
		if (seen[k] && !(optdefs[k].modes & o->mode))
			usage("%s is not valid for mode %s", optdefs[k].name, mode);

	o->cgroup = vals[O_CGROUP];
	o->netns = vals[O_NETNS];
	if (seen[O_UID]) {
		o->has_uid = 1;
		o->uid = parse_num("--uid", vals[O_UID], 0, 0x7fffffffL);
	}
	if (seen[O_FAMILY]) {
		const char *f = vals[O_FAMILY];

		if (!strcmp(f, "4"))
			o->family = 4;
		else if (!strcmp(f, "6"))
			o->family = 6;
		else if (!strcmp(f, "mapped") && (o->mode & (M_CONNECT | M_SENDTO)))
			o->family = 'm';
		else
			usage("bad --family '%s'", f);
	}
	if (seen[O_PROTO]) {
		const char *p = vals[O_PROTO];

		if (!strcmp(p, "tcp"))
			o->proto = P_TCP;
		else if (!strcmp(p, "udp"))
			o->proto = P_UDP;
		else if (!strcmp(p, "mptcp"))
			o->proto = P_MPTCP;
		else
			usage("bad --proto '%s'", p);
	}
	o->addr = vals[O_ADDR];
	if (seen[O_PORT]) {
		o->has_port = 1;
		o->port = parse_num("--port", vals[O_PORT], 0, 65535);
	}
	if (seen[O_V6ONLY])
		o->v6only = (int)parse_num("--v6only", vals[O_V6ONLY], 0, 1);
	if (seen[O_TIMEOUT])
		o->timeout_ms = parse_num("--timeout-ms", vals[O_TIMEOUT], 1, 3600000);
	o->tfo = seen[O_TFO];
	o->io_uring = seen[O_IOURING];
	o->read = seen[O_READ];
	o->dual_stack = seen[O_DUALSTACK];
	o->send = vals[O_SEND];
	o->data = vals[O_DATA];
	o->banner = seen[O_BANNER] ? vals[O_BANNER] : "sockprobe";
	if (seen[O_COUNT]) {
		o->has_count = 1;
		o->count = parse_num("--count", vals[O_COUNT], 1, 100000000);
	}
	if (seen[O_BATCHES])
		o->batches = parse_num("--batches", vals[O_BATCHES], 1, 10000);
	if (seen[O_MAXMS])
		o->max_ms = parse_num("--max-ms", vals[O_MAXMS], 1, 0x7fffffffL);

	/* batch reads its destinations from stdin */
	if (o->mode == M_BATCH) {
		if (seen[O_FAMILY] || seen[O_PROTO] || seen[O_ADDR] || seen[O_PORT])
			usage("batch takes its destinations on stdin");
		return;
	}

	/* per-mode requirements */
	if (!o->family)
		usage("--family is required");
	if (!o->addr)
		usage("--addr is required");
	if (!o->has_port)
		usage("--port is required");
	switch (o->mode) {
	case M_CONNECT:
		if (!o->proto)
			usage("--proto is required");
		if (o->tfo && o->io_uring)
			usage("--tfo and --io-uring are exclusive");
		if (o->tfo && o->proto == P_UDP)
			usage("--tfo needs a stream protocol");
		break;
	case M_SENDTO:
		if (o->proto && o->proto != P_UDP)
			usage("sendto is UDP only");
		o->proto = P_UDP;
		break;
	case M_LISTEN:
		if (o->proto != P_TCP && o->proto != P_UDP)
			usage("listen needs --proto tcp|udp");
		if (o->dual_stack && o->family != 6)
			usage("--dual-stack needs --family 6");
		break;
	case M_LOOP:
		if (!o->proto)
			o->proto = P_TCP;
		if (o->proto != P_TCP && o->proto != P_MPTCP)
			usage("loop needs --proto tcp (or mptcp)");
		if (!o->has_count)
			usage("loop needs --count");
		break;
	}
	if (o->mode != M_LISTEN && o->port == 0)
		usage("--port must be 1..65535");
	if (make_addr(o->family, o->addr, o->port, &o->dst, &o->dlen) != 0)
		usage("bad --addr '%s' for --family %s", o->addr, vals[O_FAMILY]);
}

/* ------------------------------------------------------------------ */
/* global options                                                      */

static void apply_globals(const struct opts *o)
{
	probe_enter("sockprobe", o->cgroup, o->netns);
	if (o->has_uid) {
		gid_t g = (gid_t)o->uid;

		/* Drop supplementary groups (root's) too; fails harmlessly when not root. */
		if (setgroups(1, &g) != 0 && errno != EPERM) {
			fprintf(stderr, "sockprobe: setgroups: %s\n", strerror(errno));
			exit(1);
		}
		if (setgid((gid_t)o->uid) != 0) {
			fprintf(stderr, "sockprobe: setgid %ld: %s\n", o->uid, strerror(errno));
			exit(1);
		}
		if (setuid((uid_t)o->uid) != 0) {
			fprintf(stderr, "sockprobe: setuid %ld: %s\n", o->uid, strerror(errno));
			exit(1);
		}
	}
}

/* ------------------------------------------------------------------ */
/* result JSON for connect/sendto                                      */

struct result {
	int ok;
	int err;
	const char *stage;
	int have_local, have_peer;
	struct sockaddr_storage local, peer;
	socklen_t local_len, peer_len;
	int have_reply;
	char reply[READ_MAX];
	size_t reply_len;
};

static void print_result(const struct result *r)
{
	struct sb b = { 0 };
	char eb[32];

	sb_printf(&b, "{\"ok\":%s,\"errno\":%d,\"error\":", r->ok ? "true" : "false", r->ok ? 0 : r->err);
	if (r->ok)
		sb_puts(&b, "null");
	else
		sb_json_str(&b, errname(r->err, eb, sizeof(eb)));
	sb_puts(&b, ",\"stage\":");
	sb_json_str(&b, r->stage);
	sb_puts(&b, ",\"local\":");
	sb_sa(&b, r->have_local, &r->local, r->local_len);
	sb_puts(&b, ",\"peer\":");
	sb_sa(&b, r->have_peer, &r->peer, r->peer_len);
	sb_puts(&b, ",\"reply\":");
	if (r->have_reply)
		sb_json_strn(&b, r->reply, r->reply_len);
	else
		sb_puts(&b, "null");
	sb_puts(&b, "}\n");
	fputs(b.p, stdout);
	fflush(stdout);
	free(b.p);
}

static void capture_names(int fd, struct result *r)
{
	r->local_len = sizeof(r->local);
	r->have_local = getsockname(fd, (struct sockaddr *)&r->local, &r->local_len) == 0;
	r->peer_len = sizeof(r->peer);
	r->have_peer = getpeername(fd, (struct sockaddr *)&r->peer, &r->peer_len) == 0;
}

/* ------------------------------------------------------------------ */
/* io_uring connect (raw syscalls)                                     */

static int sys_io_uring_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

/*
 * Connects fd through one IORING_OP_CONNECT. Returns 0 or a positive errno
 * (the CQE's -res, or ETIMEDOUT). *setup_failed is set when the ring itself
 * could not be built (then the errno is io_uring's, not the connect's).
 */
static int uring_connect(int fd, const struct sockaddr *sa, socklen_t salen, long timeout_ms, int *setup_failed)
{
	struct io_uring_params p;
	void *sq_ptr = MAP_FAILED, *cq_ptr = MAP_FAILED;
	struct io_uring_sqe *sqes = MAP_FAILED;
	size_t sq_sz, cq_sz, sqes_sz;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
	unsigned tail, head, idx;
	int64_t deadline;
	int rfd, ret, err = 0;

	*setup_failed = 0;
	memset(&p, 0, sizeof(p));
	rfd = sys_io_uring_setup(4, &p);
	if (rfd < 0) {
		*setup_failed = 1;
		return errno;
	}
	sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (cq_sz > sq_sz)
			sq_sz = cq_sz;
		cq_sz = sq_sz;
	}
	sq_ptr = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, IORING_OFF_SQ_RING);
	if (sq_ptr == MAP_FAILED)
		goto setup_err;
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		cq_ptr = sq_ptr;
	} else {
		cq_ptr = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, IORING_OFF_CQ_RING);
		if (cq_ptr == MAP_FAILED)
			goto setup_err;
	}
	sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
	sqes = mmap(NULL, sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, IORING_OFF_SQES);
	if (sqes == MAP_FAILED)
		goto setup_err;

	sq_tail = (unsigned *)((char *)sq_ptr + p.sq_off.tail);
	sq_mask = (unsigned *)((char *)sq_ptr + p.sq_off.ring_mask);
	sq_array = (unsigned *)((char *)sq_ptr + p.sq_off.array);
	cq_head = (unsigned *)((char *)cq_ptr + p.cq_off.head);
	cq_tail = (unsigned *)((char *)cq_ptr + p.cq_off.tail);
	cq_mask = (unsigned *)((char *)cq_ptr + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)((char *)cq_ptr + p.cq_off.cqes);

	tail = *sq_tail;
	idx = tail & *sq_mask;
	memset(&sqes[idx], 0, sizeof(sqes[idx]));
	sqes[idx].opcode = IORING_OP_CONNECT;
	sqes[idx].fd = fd;
	sqes[idx].addr = (uint64_t)(uintptr_t)sa;
	sqes[idx].off = salen;
	sqes[idx].user_data = 0x5350; /* "SP" */
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);

	do {
		ret = sys_io_uring_enter(rfd, 1, 0, 0);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		err = errno;
		goto out;
	}
	if (ret != 1) {
		err = EAGAIN;
		goto out;
	}

	deadline = now_ms() + timeout_ms;
	for (;;) {
		head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
		if (head != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
			struct io_uring_cqe *c = &cqes[head & *cq_mask];

			err = c->res < 0 ? -c->res : 0;
			__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
			break;
		}
		ret = wait_fd(rfd, POLLIN, deadline);
		if (ret == 0) {
			err = ETIMEDOUT;
			break;
		}
		if (ret < 0) {
			err = errno;
			break;
		}
	}
	goto out;

setup_err:
	*setup_failed = 1;
	err = errno;
out:
	if (sqes != MAP_FAILED)
		munmap(sqes, p.sq_entries * sizeof(struct io_uring_sqe));
	if (cq_ptr != MAP_FAILED && cq_ptr != sq_ptr)
		munmap(cq_ptr, cq_sz);
	if (sq_ptr != MAP_FAILED)
		munmap(sq_ptr, sq_sz);
	close(rfd); /* cancels a connect still in flight */
	return err;
}

/* ------------------------------------------------------------------ */
/* connect mode                                                        */

/* Plain connect with a poll-bounded wait. 0 or a positive errno. */
static int timed_connect(int fd, const struct sockaddr *sa, socklen_t salen, long timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	socklen_t l;
	int r, e;

	set_nonblock(fd, 1);
	if (connect(fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r == 0)
		return ETIMEDOUT;
	if (r < 0)
		return errno;
	e = 0;
	l = sizeof(e);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
		return errno;
	return e;
}

/* Sends all of buf within the deadline. 0 or a positive errno. */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		n = wait_fd(fd, POLLOUT, deadline);
		if (n == 0)
			return ETIMEDOUT;
		if (n < 0)
			return errno;
	}
	return 0;
}

/*
 * Stream: read until EOF, READ_MAX bytes or the deadline. Datagram: one
 * recv. Fills r->reply. 0 or a positive errno; an error or timeout after
 * some bytes arrived is not a failure (the bytes are the answer).
 */
static int read_reply(int fd, int stream, int64_t deadline, struct result *r)
{
	r->have_reply = 1;
	r->reply_len = 0;
	while (r->reply_len < READ_MAX) {
		ssize_t n = recv(fd, r->reply + r->reply_len, READ_MAX - r->reply_len, MSG_DONTWAIT);
		int w;

		if (n > 0) {
			r->reply_len += (size_t)n;
			if (!stream)
				return 0;
			continue;
		}
		if (n == 0)
			return 0; /* EOF (or an empty datagram) */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return r->reply_len ? 0 : errno;
		w = wait_fd(fd, POLLIN, deadline);
		if (w == 0)
			return r->reply_len ? 0 : ETIMEDOUT;
		if (w < 0)
			return r->reply_len ? 0 : errno;
	}
	return 0;
}

static int run_connect(const struct opts *o)
{
	struct result r;
	struct sockaddr_storage dst = o->dst;
	socklen_t dlen = o->dlen;
	int domain, type, protocol, fd, err = 0;
	const char *payload = o->send;

	memset(&r, 0, sizeof(r));
	domain = o->family == 4 ? AF_INET : AF_INET6;
	type = o->proto == P_UDP ? SOCK_DGRAM : SOCK_STREAM;
	protocol = o->proto == P_MPTCP ? IPPROTO_MPTCP : 0;

	r.stage = "socket";
	fd = socket(domain, type | SOCK_CLOEXEC, protocol);
	if (fd < 0) {
		r.err = errno;
		print_result(&r);
		return 0;
	}
	if (domain == AF_INET6 && o->v6only >= 0 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &o->v6only, sizeof(o->v6only)) != 0) {
		r.err = errno;
		print_result(&r);
		close(fd);
		return 0;
	}

	r.stage = "connect";
	if (o->tfo) {
		const char *d = payload ? payload : "x";
		size_t dl = strlen(d);
		ssize_t n;

		int64_t t0 = now_ms();

		set_timeo(fd, SO_SNDTIMEO, o->timeout_ms);
		n = sendto(fd, d, dl, MSG_FASTOPEN | MSG_NOSIGNAL, (struct sockaddr *)&dst, dlen);
		if (n < 0) {
			err = errno;
			/* A blocking TFO sendto whose SO_SNDTIMEO ran out says EINPROGRESS/EAGAIN. */
			if ((err == EINPROGRESS || err == EAGAIN) && now_ms() - t0 >= o->timeout_ms - 5)
				err = ETIMEDOUT;
		}
		else if (payload && (size_t)n < dl)
			payload = d + n; /* the rest goes in the send stage */
		else
			payload = NULL; /* all of --send (or the default "x") went with the SYN */
	} else if (o->io_uring) {
		int setup_failed;

		err = uring_connect(fd, (struct sockaddr *)&dst, dlen, o->timeout_ms, &setup_failed);
		if (setup_failed)
			r.stage = "io_uring";
	} else {
		err = timed_connect(fd, (struct sockaddr *)&dst, dlen, o->timeout_ms);
	}
	capture_names(fd, &r);
	if (err) {
		r.err = err;
		print_result(&r);
		close(fd);
		return 0;
	}
	set_nonblock(fd, 1);

	if (payload && *payload) {
		r.stage = "send";
		err = send_all(fd, payload, strlen(payload), now_ms() + o->timeout_ms);
		if (err) {
			r.err = err;
			if (!r.have_peer)
				capture_names(fd, &r);
			print_result(&r);
			close(fd);
			return 0;
		}
	} else if (o->tfo && o->send) {
		r.stage = "send"; /* the payload went in the SYN */
	}
	if (o->read) {
		r.stage = "read";
		err = read_reply(fd, type == SOCK_STREAM, now_ms() + o->timeout_ms, &r);
		if (err)
			r.err = err;
	}
	if (!r.have_peer || !r.have_local) {
		struct result t;

		capture_names(fd, &t);
		if (!r.have_local && t.have_local) {
			r.have_local = 1;
			r.local = t.local;
			r.local_len = t.local_len;
		}
		if (!r.have_peer && t.have_peer) {
			r.have_peer = 1;
			r.peer = t.peer;
			r.peer_len = t.peer_len;
		}
	}
	r.ok = err == 0;
	print_result(&r);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* sendto mode                                                         */

static int run_sendto(const struct opts *o)
{
	struct result r;
	struct sockaddr_storage dst = o->dst;
	socklen_t dlen = o->dlen;
	const char *d = o->data ? o->data : "x";
	int domain, fd, err = 0;
	ssize_t n;

	memset(&r, 0, sizeof(r));
	domain = o->family == 4 ? AF_INET : AF_INET6;

	r.stage = "socket";
	fd = socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r.err = errno;
		print_result(&r);
		return 0;
	}
	if (domain == AF_INET6 && o->v6only >= 0 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &o->v6only, sizeof(o->v6only)) != 0) {
		r.err = errno;
		print_result(&r);
		close(fd);
		return 0;
	}
	set_nonblock(fd, 1);

	r.stage = "sendto";
	do {
		n = sendto(fd, d, strlen(d), MSG_NOSIGNAL, (struct sockaddr *)&dst, dlen);
	} while (n < 0 && errno == EINTR);
	r.local_len = sizeof(r.local);
	r.have_local = getsockname(fd, (struct sockaddr *)&r.local, &r.local_len) == 0;
	if (n < 0) {
		r.err = errno;
		print_result(&r);
		close(fd);
		return 0;
	}

	if (o->read) {
		int64_t deadline = now_ms() + o->timeout_ms;

		r.stage = "read";
		r.have_reply = 1;
		for (;;) {
			int w;

			r.peer_len = sizeof(r.peer);
			n = recvfrom(fd, r.reply, READ_MAX, 0, (struct sockaddr *)&r.peer, &r.peer_len);
			if (n >= 0) {
				r.reply_len = (size_t)n;
				r.have_peer = 1;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				err = errno;
				break;
			}
			w = wait_fd(fd, POLLIN, deadline);
			if (w == 0) {
				err = ETIMEDOUT;
				break;
			}
			if (w < 0) {
				err = errno;
				break;
			}
		}
	}
	r.err = err;
	r.ok = err == 0;
	print_result(&r);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* listen mode                                                         */

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void print_listen_fail(const char *stage, int e)
{
	char eb[32];
	struct sb b = { 0 };

	sb_printf(&b, "{\"listening\":false,\"errno\":%d,\"error\":", e);
	sb_json_str(&b, errname(e, eb, sizeof(eb)));
	sb_puts(&b, ",\"stage\":");
	sb_json_str(&b, stage);
	sb_puts(&b, "}\n");
	fputs(b.p, stdout);
	fflush(stdout);
	free(b.p);
}

/* Tries one getsockopt(level, SO_ORIGINAL_DST); 0 on success. */
static int try_origdst(int fd, int level, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	*len = sizeof(*ss);
	return getsockopt(fd, level, SP_SO_ORIGINAL_DST, ss, len);
}

static void serve_tcp_conn(int cfd, const struct sockaddr_storage *peer, socklen_t plen, const char *banner)
{
	struct sockaddr_storage local, od;
	socklen_t llen = sizeof(local), odlen = 0;
	const char *od_level = NULL;
	int have_local, first, second, i;
	struct sb b = { 0 };
	char drain[4096];

	have_local = getsockname(cfd, (struct sockaddr *)&local, &llen) == 0;

	if (is_v4_or_mapped(peer)) {
		first = SP_SOL_IP;
		second = SP_SOL_IPV6;
	} else {
		first = SP_SOL_IPV6;
		second = SP_SOL_IP;
	}
	if (try_origdst(cfd, first, &od, &odlen) == 0)
		od_level = first == SP_SOL_IP ? "ip" : "ipv6";
	else if (try_origdst(cfd, second, &od, &odlen) == 0)
		od_level = second == SP_SOL_IP ? "ip" : "ipv6";

	sb_puts(&b, "{\"server\":");
	sb_json_str(&b, banner);
	sb_puts(&b, ",\"origdst\":");
	if (od_level) {
		char buf[INET6_ADDRSTRLEN + 32];

		if (fmt_sa(&od, odlen, buf, sizeof(buf)) != 0)
			snprintf(buf, sizeof(buf), "family:%u/len:%u", (unsigned)od.ss_family, (unsigned)odlen);
		sb_json_str(&b, buf);
	} else {
		sb_puts(&b, "null");
	}
	sb_puts(&b, ",\"origdst_level\":");
	sb_json_str(&b, od_level);
	sb_puts(&b, ",\"peer\":");
	sb_sa(&b, 1, peer, plen);
	sb_puts(&b, ",\"local\":");
	sb_sa(&b, have_local, &local, llen);
	sb_puts(&b, "}\n");

	/* Non-blocking: never wait on the client. */
	(void)send_all(cfd, b.p, b.len, now_ms() + 1000);
	shutdown(cfd, SHUT_WR);
	/* Drop what the client already sent (no waiting) so close() sends FIN, not RST. */
	for (i = 0; i < 16; i++)
		if (recv(cfd, drain, sizeof(drain), MSG_DONTWAIT) <= 0)
			break;
	close(cfd);
	fputs(b.p, stdout);
	fflush(stdout);
	free(b.p);
}

static void serve_udp_dgram(int fd, int family, const char *banner)
{
	struct sockaddr_storage peer;
	char buf[65536];
	char cbuf[256];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh;
	struct cmsghdr *cm;
	struct in_pktinfo pi4;
	struct in6_pktinfo pi6;
	int have4 = 0, have6 = 0;
	struct sb b = { 0 };
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &peer;
	mh.msg_namelen = sizeof(peer);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	if (n < 0)
		return;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			memcpy(&pi4, CMSG_DATA(cm), sizeof(pi4));
			have4 = 1;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			memcpy(&pi6, CMSG_DATA(cm), sizeof(pi6));
			have6 = 1;
		}
	}

	sb_puts(&b, "{\"server\":");
	sb_json_str(&b, banner);
	sb_puts(&b, ",\"peer\":");
	sb_sa(&b, 1, &peer, mh.msg_namelen);
	sb_puts(&b, "}");

	/* Reply from the address the datagram was sent to (wildcard binds). */
	{
		struct iovec riov = { .iov_base = b.p, .iov_len = b.len };
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} rc;
		struct msghdr rm;
		ssize_t s = -1;

		memset(&rm, 0, sizeof(rm));
		memset(&rc, 0, sizeof(rc));
		rm.msg_name = &peer;
		rm.msg_namelen = mh.msg_namelen;
		rm.msg_iov = &riov;
		rm.msg_iovlen = 1;
		if (family == AF_INET && have4) {
			struct in_pktinfo out = { 0 };

			out.ipi_spec_dst = pi4.ipi_addr;
			rm.msg_control = rc.buf;
			rm.msg_controllen = CMSG_SPACE(sizeof(out));
			cm = CMSG_FIRSTHDR(&rm);
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(out));
			memcpy(CMSG_DATA(cm), &out, sizeof(out));
		} else if (family == AF_INET6 && have6) {
			struct in6_pktinfo out = { 0 };

			out.ipi6_addr = pi6.ipi6_addr;
			out.ipi6_ifindex = pi6.ipi6_ifindex;
			rm.msg_control = rc.buf;
			rm.msg_controllen = CMSG_SPACE(sizeof(out));
			cm = CMSG_FIRSTHDR(&rm);
			cm->cmsg_level = IPPROTO_IPV6;
			cm->cmsg_type = IPV6_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(out));
			memcpy(CMSG_DATA(cm), &out, sizeof(out));
		}
		if (rm.msg_control)
			s = sendmsg(fd, &rm, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (s < 0)
			sendto(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&peer, mh.msg_namelen);
	}
	sb_puts(&b, "\n");
	fputs(b.p, stdout);
	fflush(stdout);
	free(b.p);
}

static int run_listen(const struct opts *o)
{
	struct sockaddr_storage addr = o->dst, bound;
	socklen_t alen = o->dlen, blen = sizeof(bound);
	int domain = o->family == 4 ? AF_INET : AF_INET6;
	int udp = o->proto == P_UDP;
	int fd, one = 1, zero = 0;
	long served = 0;
	int64_t end = o->max_ms ? now_ms() + o->max_ms : 0;
	struct sigaction sa;
	sigset_t block, waitmask;


	/* SIGTERM/SIGINT only interrupt ppoll(): no lost wakeups, clean exit 0. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	fd = socket(domain, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		print_listen_fail("socket", errno);
		return 0;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (domain == AF_INET6 && o->dual_stack &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) {
		print_listen_fail("socket", errno);
		return 0;
	}
	if (udp) {
		if (domain == AF_INET)
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&addr, alen) != 0) {
		print_listen_fail("bind", errno);
		return 0;
	}
	if (!udp) {
		int qlen = 16;

		/* Server side of TCP Fast Open, so --tfo clients get cookies and SYN
		 * data when net.ipv4.tcp_fastopen has the server bit; harmless otherwise. */
		setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
	}
	if (!udp && listen(fd, 4096) != 0) {
		print_listen_fail("listen", errno);
		return 0;
	}
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
		print_listen_fail("getsockname", errno);
		return 0;
	}
	printf("{\"listening\":true,\"port\":%u}\n",
	       ntohs(domain == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
				       : ((struct sockaddr_in6 *)&bound)->sin6_port));
	fflush(stdout);

	while (!stop_flag && (!o->has_count || served < o->count)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		int r;

		if (end) {
			int64_t left = end - now_ms();

			if (left <= 0)
				break;
			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000L;
			tsp = &ts;
		}
		r = ppoll(&p, 1, tsp, &waitmask);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("sockprobe: ppoll");
			break;
		}
		if (r == 0)
			continue;
		if (udp) {
			serve_udp_dgram(fd, domain, o->banner);
			served++;
		} else {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (cfd < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
				    errno == ECONNABORTED)
					continue;
				perror("sockprobe: accept");
				usleep(10000); /* e.g. EMFILE: do not spin */
				continue;
			}
			serve_tcp_conn(cfd, &peer, plen, o->banner);
			served++;
		}
	}
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* loop mode                                                           */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int run_loop(const struct opts *o)
{
	struct sockaddr_storage dst = o->dst;
	socklen_t dlen = o->dlen;
	int domain = o->family == 4 ? AF_INET : AF_INET6;
	int protocol = o->proto == P_MPTCP ? IPPROTO_MPTCP : 0;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tv = { .tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000 };
	struct {
		int no;
		long n;
	} errs[64];
	int nerrs = 0, i;
	int64_t *means, *sorted, median;
	long ok = 0, b, k;
	struct sb out = { 0 };
	char eb[32];

	means = calloc((size_t)o->batches, sizeof(*means));
	sorted = calloc((size_t)o->batches, sizeof(*sorted));
	if (!means || !sorted) {
		fputs("sockprobe: out of memory\n", stderr);
		return 1;
	}

	for (b = 0; b < o->batches; b++) {
		int64_t total = 0;

		for (k = 0; k < o->count; k++) {
			int64_t t0, t1, t2, t3;
			int fd, e = 0;

			t0 = now_ns();
			fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, protocol);
			t1 = now_ns();
			if (fd < 0) {
				e = errno;
				t2 = t3 = 0;
			} else {
				/* Setup outside the measured window. */
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
				t2 = now_ns();
				if (connect(fd, (struct sockaddr *)&dst, dlen) != 0)
					e = errno == EINPROGRESS ? ETIMEDOUT : errno;
				close(fd);
				t3 = now_ns();
			}
			total += (t1 - t0) + (t3 - t2);
			if (!e) {
				ok++;
			} else {
				for (i = 0; i < nerrs; i++)
					if (errs[i].no == e)
						break;
				if (i == nerrs && nerrs < (int)(sizeof(errs) / sizeof(errs[0]))) {
					errs[nerrs].no = e;
					errs[nerrs].n = 0;
					nerrs++;
				}
				if (i < nerrs)
					errs[i].n++;
			}
		}
		means[b] = total / o->count;
	}

	memcpy(sorted, means, (size_t)o->batches * sizeof(*sorted));
	qsort(sorted, (size_t)o->batches, sizeof(*sorted), cmp_i64);
	if (o->batches % 2)
		median = sorted[o->batches / 2];
	else
		median = (sorted[o->batches / 2 - 1] + sorted[o->batches / 2]) / 2;

	sb_printf(&out, "{\"count\":%ld,\"batches\":%ld,\"ns_per_connect\":[", o->count, o->batches);
	for (b = 0; b < o->batches; b++)
		sb_printf(&out, "%s%lld", b ? "," : "", (long long)means[b]);
	sb_printf(&out, "],\"median_ns\":%lld,\"errors\":{", (long long)median);
	for (i = 0; i < nerrs; i++) {
		sb_puts(&out, i ? "," : "");
		sb_json_str(&out, errname(errs[i].no, eb, sizeof(eb)));
		sb_printf(&out, ":%ld", errs[i].n);
	}
	sb_printf(&out, "},\"ok\":%ld}\n", ok);
	fputs(out.p, stdout);
	fflush(stdout);
	free(out.p);
	free(means);
	free(sorted);
	return 0;
}

/* ------------------------------------------------------------------ */
/* batch mode                                                          */

/* One destination of a batch: 0 or a positive errno; the peer after a connect. */
static int batch_one(const char *op, int family, const struct sockaddr_storage *dst, socklen_t dlen,
		     long timeout_ms, struct result *r)
{
	int domain = family == 4 ? AF_INET : AF_INET6;
	int stream = !strcmp(op, "tcp");
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int fd, err = 0;

	fd = socket(domain, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (!strcmp(op, "sendto")) {
		set_nonblock(fd, 1);
		if (sendto(fd, "x", 1, MSG_NOSIGNAL, (const struct sockaddr *)dst, dlen) < 0)
			err = errno;
	} else {
		if (stream)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		err = timed_connect(fd, (const struct sockaddr *)dst, dlen, timeout_ms);
		capture_names(fd, r);
	}
	close(fd);
	return err;
}

static int run_batch(const struct opts *o)
{
	char line[512], eb[32];
	long i = 0;

	while (fgets(line, sizeof(line), stdin)) {
		char op[16], fam[16], addr[128];
		long port;
		int family;
		struct sockaddr_storage dst;
		socklen_t dlen;
		struct result r;
		struct sb b = { 0 };

		memset(&r, 0, sizeof(r));
		if (sscanf(line, "%15s %15s %127s %ld", op, fam, addr, &port) != 4 ||
		    (strcmp(op, "tcp") && strcmp(op, "udp") && strcmp(op, "sendto")) ||
		    port < 1 || port > 65535) {
			fprintf(stderr, "sockprobe: batch line %ld is not \"tcp|udp|sendto 4|6|mapped ADDR PORT\"\n", i);
			return 2;
		}
		family = !strcmp(fam, "4") ? 4 : !strcmp(fam, "6") ? 6 : !strcmp(fam, "mapped") ? 'm' : 0;
		if (!family || make_addr(family, addr, port, &dst, &dlen) != 0) {
			fprintf(stderr, "sockprobe: batch line %ld: bad address '%s' for family %s\n", i, addr, fam);
			return 2;
		}
		r.err = batch_one(op, family, &dst, dlen, o->timeout_ms, &r);
		sb_printf(&b, "{\"i\":%ld,\"ok\":%s,\"errno\":%d,\"error\":", i, r.err ? "false" : "true", r.err);
		if (r.err)
			sb_json_str(&b, errname(r.err, eb, sizeof(eb)));
		else
			sb_puts(&b, "null");
		sb_puts(&b, ",\"peer\":");
		sb_sa(&b, r.have_peer, &r.peer, r.peer_len);
		sb_puts(&b, "}\n");
		fputs(b.p, stdout);
		fflush(stdout);
		free(b.p);
		i++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct opts o;

	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv, &o);
	apply_globals(&o);
	switch (o.mode) {
	case M_CONNECT:
		return run_connect(&o);
	case M_SENDTO:
		return run_sendto(&o);
	case M_LISTEN:
		return run_listen(&o);
	case M_LOOP:
		return run_loop(&o);
	case M_BATCH:
		return run_batch(&o);
	}
	return 2;
}
