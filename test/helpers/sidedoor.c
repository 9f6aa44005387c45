// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sidedoor: tries one way around the socket hooks from inside a pod, or
 * watches a veth for packets addressed to a host. The side-door kernel tests
 * (test/kernel/sidedoors.test.ts) run the attempt in the pod's cgroup and
 * netns and the sniffer in the far netns, and assert on both.
 *
 * Build: cc -O2 -Wall -Werror -o build/sidedoor test/helpers/sidedoor.c
 *
 *   sidedoor [--cgroup DIR] [--netns PATH] MODE ARGS...
 *   sniff IFACE MS ADDR...     count IP packets on IFACE addressed to ADDR (its
 *                              destination, or a hop of a source route), for MS
 *                              ms (or until SIGTERM); prints {"ready":true}, then
 *                              {"frames":N,"counts":{"ADDR":n,...}}
 *   ping 4|6 ADDR              ICMP echo from a ping socket (SOCK_DGRAM)
 *   ping-again 4|6 ADDR        ping, then (after a line on stdin) once more on the
 *                              same socket: one result line each
 *   rawping 4|6 ADDR           ICMP echo from a raw socket (SOCK_RAW)
 *   hdrincl 4|6 ROUTE DST PORT [HOP]
 *                              a UDP packet built by hand (IPPROTO_RAW), IP
 *                              destination DST, sent to ROUTE; HOP adds an IPv4
 *                              LSRR option or an IPv6 segment routing header;
 *                              "frag" instead of HOP makes an IPv4 non-first fragment
 *   udp 4|6 ADDR PORT [VIA]    a datagram; VIA selects the extra:
 *       lsrr-sockopt:HOP       setsockopt(IP_OPTIONS) loose source route via HOP
 *       lsrr-cmsg:HOP          the same route as IP_RETOPTS ancillary data
 *       rthdr-sockopt:HOP      setsockopt(IPV6_RTHDR) segment routing header via HOP
 *       rthdr-cmsg:HOP         IPV6_RTHDR type 2 ancillary data holding HOP
 *                              (EINVAL unless the kernel has CONFIG_IPV6_MIP6)
 *       sendmmsg:N             N datagrams in one sendmmsg()
 *   tcp-lsrr ADDR PORT HOP     setsockopt(IP_OPTIONS) LSRR via HOP, then connect
 *   mptcp ADDR PORT MS         an MPTCP connection held MS ms, sending now and then
 *   mptcp-listen ADDR PORT MS  an MPTCP server: prints {"listening":true}, then
 *                              accepts and drains connections for MS ms
 *   udp-serve 4|6 PORT STEP... a UDP server: socket A bound to PORT (IPv6: dual
 *                              stack), socket B unbound; prints {"ready":true},
 *                              then runs the steps in order, one result line each:
 *       recv                   wait (at most 5 s) for a datagram on A; its source
 *                              becomes the peer (printed as "peer")
 *       a | b                  sendto() the peer from socket A or from socket B
 *       a-to:ADDR,PORT         sendto() ADDR:PORT (IPv4) from socket A
 *       spoof:SRC,SPORT,DST    a raw IPv4 UDP packet from SRC:SPORT to DST:PORT
 *                              (IP_HDRINCL: the source is not checked)
 *       sleep:MS               sleep MS ms
 *   udp-from 4|6 SPORT ADDR PORT WAITMS
 *                              a datagram from source port SPORT (a client with
 *                              a fixed port), then wait WAITMS ms for an answer:
 *                              stage "answered" or "unanswered"
 *   moved tcp|udp ADDR PORT DIR
 *                              an IPv4 socket created in --cgroup, connected (and
 *                              written to) after the process moved to cgroup DIR
 *
 * Every attempt prints one JSON line {"ok":..,"errno":..,"stage":..,"sent":..}
 * and exits 0; exit 1 when a global option fails, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probeplace.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#define MAX_MATCH 8

static void __attribute__((noreturn)) usage(const char *why)
{
	fprintf(stderr, "sidedoor: %s (see the comment at the top of test/helpers/sidedoor.c)\n", why);
	exit(2);
}

static void report(int ok, int err, const char *stage, int sent)
{
	printf("{\"ok\":%s,\"errno\":%d,\"stage\":\"%s\",\"sent\":%d}\n", ok ? "true" : "false", ok ? 0 : err, stage, sent);
}

static int family_of(const char *f)
{
	if (!strcmp(f, "4"))
		return AF_INET;
	if (!strcmp(f, "6"))
		return AF_INET6;
	usage("family must be 4 or 6");
}

static socklen_t sockaddr_of(int family, const char *addr, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &s->sin_addr) != 1)
			usage("bad IPv4 address");
		return sizeof(*s);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
		usage("bad IPv6 address");
	return sizeof(*s6);
}

/* ---------------------------------------------------------------- sniff */

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int has_at(const unsigned char *p, size_t from, size_t to, size_t len, const unsigned char *a, int alen)
{
	size_t off;

	for (off = from; off + (size_t)alen <= to && off + (size_t)alen <= len; off++)
		if (!memcmp(p + off, a, (size_t)alen))
			return 1;
	return 0;
}

/*
 * A packet is addressed to A when A is its IP destination, or a hop of a
 * source route: anywhere in the IPv4 options or the IPv6 extension headers.
 * A carried elsewhere (a reply's source, an MPTCP ADD_ADDR option naming it)
 * sends nothing to A.
 */
static int addressed_to(const unsigned char *ip, size_t len, const unsigned char *a, int alen)
{
	if (len >= 20 && (ip[0] >> 4) == 4 && alen == 4) {
		size_t ihl = (size_t)(ip[0] & 15) * 4;

		return has_at(ip, 16, 20, len, a, alen) || has_at(ip, 20, ihl, len, a, alen);
	}
	if (len >= 40 && (ip[0] >> 4) == 6 && alen == 16) {
		size_t off = 40;
		unsigned char nh = ip[6];
		int k;

		if (has_at(ip, 24, 40, len, a, alen))
			return 1;
		for (k = 0; k < 8 && (nh == 0 || nh == 43 || nh == 44 || nh == 60) && off + 2 <= len; k++) {
			size_t hl = nh == 44 ? 8 : ((size_t)ip[off + 1] + 1) * 8;

			if (has_at(ip, off, off + hl, len, a, alen))
				return 1;
			nh = ip[off];
			off += hl;
		}
	}
	return 0;
}

static int sniff(int argc, char **argv)
{
	unsigned char want[MAX_MATCH][16];
	int wlen[MAX_MATCH], counts[MAX_MATCH] = { 0 }, n = argc - 2, frames = 0, i, fd;
	struct sockaddr_ll sll = { 0 };
	unsigned char buf[2048];
	struct timespec t0, t;
	long ms;

	if (argc < 3 || n > MAX_MATCH)
		usage("sniff IFACE MS ADDR...");
	ms = atol(argv[1]);
	for (i = 0; i < n; i++) {
		if (inet_pton(AF_INET, argv[i + 2], want[i]) == 1)
			wlen[i] = 4;
		else if (inet_pton(AF_INET6, argv[i + 2], want[i]) == 1)
			wlen[i] = 16;
		else
			usage("bad address to match");
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0) {
		perror("sidedoor: AF_PACKET socket");
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(argv[0]);
	if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
		perror("sidedoor: bind to the interface");
		return 1;
	}
	signal(SIGTERM, on_term);
	printf("{\"ready\":true}\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t len;
		long el;

		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= ms)
			break;
		if (poll(&p, 1, (int)(ms - el < 50 ? ms - el : 50)) <= 0)
			continue;
		len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (len < 14)
			continue;
		frames++;
		for (i = 0; i < n; i++)
			if (addressed_to(buf + 14, (size_t)len - 14, want[i], wlen[i]))
				counts[i]++;
	}
	printf("{\"frames\":%d,\"counts\":{", frames);
	for (i = 0; i < n; i++)
		printf("%s\"%s\":%d", i ? "," : "", argv[i + 2], counts[i]);
	printf("}}\n");
	return 0;
}

/* ---------------------------------------------------------------- ICMP */

/* One echo request on fd, and its answer within 500 ms; prints the result line. */
static void echo_once(int fd, int family, const char *addr, int raw)
{
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(family, addr, 0, &ss);
	unsigned char pkt[64] = { 0 }, reply[256];
	struct pollfd p;

	/* type 8 (echo request) for ICMP, 128 for ICMPv6; the kernel fills id and checksum of ping sockets. */
	pkt[0] = family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
	memcpy(pkt + 8, "meshgate", 8);
	if (raw && family == AF_INET) {
		uint32_t sum = 0;
		int i;

		for (i = 0; i < (int)sizeof(pkt); i += 2)
			sum += (uint32_t)(pkt[i] << 8 | pkt[i + 1]);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		pkt[2] = (unsigned char)(~sum >> 8);
		pkt[3] = (unsigned char)~sum;
	}
	if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss, sl) < 0) {
		report(0, errno, "sendto", 0);
		return;
	}
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 500) == 1 && recv(fd, reply, sizeof(reply), 0) > 0)
		report(1, 0, "reply", 1);
	else
		report(0, ETIMEDOUT, "reply", 1);
}

/* ping, rawping; with `again`, a second echo on the same socket after a line on stdin. */
static int ping(int family, const char *addr, int raw, int again)
{
	int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	int fd = socket(family, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC, proto);
	char line[16];

	if (fd < 0) {
		report(0, errno, "socket", 0);
		return 0;
	}
	echo_once(fd, family, addr, raw);
	if (again && fgets(line, sizeof(line), stdin))
		echo_once(fd, family, addr, raw);
	return 0;
}

/* ---------------------------------------------------------------- source routes */

static int lsrr_option(const char *hop, unsigned char *opt)
{
	/* NOP, LSRR len 7 ptr 4, one hop: 8 bytes, as ip(7) describes. */
	opt[0] = IPOPT_NOP;
	opt[1] = IPOPT_LSRR;
	opt[2] = 7;
	opt[3] = 4;
	return inet_pton(AF_INET, hop, opt + 4) == 1 ? 8 : -1;
}

/* A type 4 (segment routing) header: segments [FINAL, HOP], HOP visited first. */
static int srh_option(const char *final, const char *hop, unsigned char *rh)
{
	memset(rh, 0, 40);
	rh[1] = 4;   /* (40 / 8) - 1 */
	rh[2] = 4;   /* type 4: SRH */
	rh[3] = 1;   /* segments left */
	rh[4] = 1;   /* last entry */
	if (inet_pton(AF_INET6, final, rh + 8) != 1 || inet_pton(AF_INET6, hop, rh + 24) != 1)
		return -1;
	return 40;
}

/* A type 2 header (the only type the kernel takes as ancillary data) holding HOP. */
static int type2_option(const char *hop, unsigned char *rh)
{
	memset(rh, 0, 24);
	rh[1] = 2;
	rh[2] = 2;
	rh[3] = 1;
	return inet_pton(AF_INET6, hop, rh + 8) == 1 ? 24 : -1;
}

/*
 * A UDP packet built by hand on an IPPROTO_RAW socket: IP destination DST,
 * routed towards ROUTE (sendto's address); with HOP, an IPv4 LSRR option or
 * an IPv6 segment routing header names HOP as a further hop.
 */
static int hdrincl(int family, const char *route, const char *dst, int port, const char *hop)
{
	int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW), on = 1;
	unsigned char pkt[128] = { 0 }, *udp;
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(family, route, 0, &ss);
	int len;

	if (fd < 0) {
		report(0, errno, "socket", 0);
		return 0;
	}
	int frag = hop && !strcmp(hop, "frag");

	if (frag)
		hop = NULL;
	if (family == AF_INET) {
		int ihl = 20 + (hop ? 8 : 0);

		if (frag)
			pkt[7] = 1; /* fragment offset 8 bytes: a non-first fragment, no UDP header to read */

		pkt[0] = (unsigned char)(0x40 | (ihl / 4));
		pkt[8] = 64;
		pkt[9] = IPPROTO_UDP;
		if (inet_pton(AF_INET, dst, pkt + 16) != 1 || (hop && lsrr_option(hop, pkt + 20) < 0))
			usage("bad address");
		udp = pkt + ihl;
		len = ihl + 16;
		pkt[2] = 0;
		pkt[3] = (unsigned char)len; /* saddr 0: the kernel fills it, and the checksum */
	} else {
		int ext = hop ? 40 : 0;

		if (setsockopt(fd, IPPROTO_IPV6, 36 /* IPV6_HDRINCL */, &on, sizeof(on)) != 0) {
			report(0, errno, "setsockopt", 0);
			return 0;
		}
		pkt[0] = 0x60;
		pkt[5] = (unsigned char)(ext + 16);
		pkt[6] = hop ? IPPROTO_ROUTING : IPPROTO_UDP;
		pkt[7] = 64;
		if (inet_pton(AF_INET6, "fd77::1", pkt + 8) != 1 || inet_pton(AF_INET6, dst, pkt + 24) != 1)
			usage("bad address");
		if (hop) {
			if (srh_option(dst, hop, pkt + 40) < 0)
				usage("bad hop");
			pkt[40] = IPPROTO_UDP;
		}
		udp = pkt + 40 + ext;
		len = 40 + ext + 16;
	}
	udp[0] = 0x9c;
	udp[1] = 0x40;
	udp[2] = (unsigned char)(port >> 8);
	udp[3] = (unsigned char)port;
	udp[5] = 16;
	memcpy(udp + 8, "hdrincl!", 8);
	if (sendto(fd, pkt, (size_t)len, 0, (struct sockaddr *)&ss, sl) < 0)
		report(0, errno, "sendto", 0);
	else
		report(1, 0, "sendto", 1);
	return 0;
}

static int udp(int family, const char *addr, int port, const char *via)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(family, addr, port, &ss);
	char payload[] = "sidedoor";
	struct iovec iov = { payload, sizeof(payload) - 1 };
	struct msghdr msg = { .msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1 };
	unsigned char opt[64], cbuf[CMSG_SPACE(64)];
	const char *hop = via ? strchr(via, ':') : NULL;
	int n = 1, i;

	if (fd < 0) {
		report(0, errno, "socket", 0);
		return 0;
	}
	if (hop)
		hop++;
	if (via && !strncmp(via, "lsrr-sockopt:", 13)) {
		int l = lsrr_option(hop, opt);

		if (l < 0 || setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, (socklen_t)l) != 0) {
			report(0, errno, "setsockopt", 0);
			return 0;
		}
	} else if (via && !strncmp(via, "rthdr-sockopt:", 14)) {
		int l = srh_option(addr, hop, opt);

		if (l < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, opt, (socklen_t)l) != 0) {
			report(0, errno, "setsockopt", 0);
			return 0;
		}
	} else if (via && (!strncmp(via, "lsrr-cmsg:", 10) || !strncmp(via, "rthdr-cmsg:", 11))) {
		int v4 = via[0] == 'l';
		int l = v4 ? lsrr_option(hop, opt) : type2_option(hop, opt);
		struct cmsghdr *c;

		if (l < 0)
			usage("bad hop");
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE((size_t)l);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
		c->cmsg_type = v4 ? IP_RETOPTS : IPV6_RTHDR;
		c->cmsg_len = CMSG_LEN((size_t)l);
		memcpy(CMSG_DATA(c), opt, (size_t)l);
	} else if (via && !strncmp(via, "sendmmsg:", 9)) {
		struct mmsghdr mm[16];
		int got;

		n = atoi(hop);
		if (n < 1 || n > 16)
			usage("sendmmsg:N needs 1..16");
		for (i = 0; i < n; i++) {
			memset(&mm[i], 0, sizeof(mm[i]));
			mm[i].msg_hdr = msg;
		}
		got = sendmmsg(fd, mm, (unsigned)n, 0);
		if (got < 0)
			report(0, errno, "sendmmsg", 0);
		else
			report(got == n, EIO, "sendmmsg", got);
		return 0;
	} else if (via) {
		usage("unknown VIA");
	}
	if (sendmsg(fd, &msg, 0) < 0)
		report(0, errno, "sendmsg", 0);
	else
		report(1, 0, "sendmsg", 1);
	return 0;
}

static int tcp_lsrr(const char *addr, int port, const char *hop)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(AF_INET, addr, port, &ss);
	unsigned char opt[8];
	int l = lsrr_option(hop, opt);

	if (fd < 0 || l < 0 || setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opt, (socklen_t)l) != 0) {
		report(0, errno, "setsockopt", 0);
		return 0;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
		report(0, errno, "connect", 0);
		return 0;
	}
	usleep(200 * 1000);
	report(1, 0, "connect", 1);
	return 0;
}

static int moved(const char *proto, const char *addr, int port, const char *dir)
{
	int tcp = !strcmp(proto, "tcp"), err = 0;
	int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(AF_INET, addr, port, &ss), el = sizeof(err);
	struct pollfd p;

	if (fd < 0) {
		report(0, errno, "socket", 0);
		return 0;
	}
	probe_enter("sidedoor", dir, NULL);
	if (tcp)
		fcntl(fd, F_SETFL, O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
		report(0, errno, "connect", 0);
		return 0;
	}
	if (tcp) {
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, 1000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
			report(0, err ? err : ETIMEDOUT, "connect", 0);
			return 0;
		}
	}
	if (send(fd, "moved", 5, MSG_NOSIGNAL) != 5) {
		report(0, errno, "send", 0);
		return 0;
	}
	report(1, 0, "send", 1);
	return 0;
}

static int mptcp(const char *addr, int port, long ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP);
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(AF_INET, addr, port, &ss);
	struct timespec t0, t;
	int sent = 0;

	if (fd < 0) {
		report(0, errno, "socket", 0);
		return 0;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		report(0, errno, "connect", 0);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
		if (send(fd, "mptcp-data", 10, MSG_NOSIGNAL) > 0)
			sent++;
		usleep(20 * 1000);
	}
	report(sent > 0, EIO, "send", sent);
	return 0;
}

static int mptcp_listen(const char *addr, int port, long ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP), one = 1, conns[16], nconn = 0, i;
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(AF_INET, addr, port, &ss);
	struct timespec t0, t;
	char buf[512];

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
		report(0, errno, "listen", 0);
		return 1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	printf("{\"listening\":true}\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int c;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
		c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0 && nconn < 16)
			conns[nconn++] = c;
		for (i = 0; i < nconn; i++)
			while (recv(conns[i], buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;
		usleep(10 * 1000);
	}
	return 0;
}

/* ------------------------------------------------------------ udp-serve */

static void udp_send_step(int fd, const struct sockaddr_storage *to, socklen_t tl, const char *stage)
{
	if (sendto(fd, "reply", 5, MSG_NOSIGNAL, (const struct sockaddr *)to, tl) < 0)
		report(0, errno, stage, 0);
	else
		report(1, 0, stage, 1);
}

static void udp_spoof_step(const char *src, int sport, const char *dst, int dport)
{
	unsigned char pkt[36] = { 0x45, 0, 0, 36, 0, 0, 0, 0, 64, IPPROTO_UDP };
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(AF_INET, dst, 0, &ss);
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);

	if (fd < 0) {
		report(0, errno, "spoof", 0);
		return;
	}
	if (inet_pton(AF_INET, src, pkt + 12) != 1 || inet_pton(AF_INET, dst, pkt + 16) != 1)
		usage("bad spoof address");
	pkt[20] = (unsigned char)(sport >> 8);
	pkt[21] = (unsigned char)sport;
	pkt[22] = (unsigned char)(dport >> 8);
	pkt[23] = (unsigned char)dport;
	pkt[25] = 16; /* UDP length; checksum 0: none (IPv4) */
	memcpy(pkt + 28, "spoofed!", 8);
	if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ss, sl) < 0)
		report(0, errno, "spoof", 0);
	else
		report(1, 0, "spoof", 1);
	close(fd);
}

static int udp_serve(int family, int port, int nsteps, char **steps)
{
	int a = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), b = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), off = 0;
	struct sockaddr_storage me, peer = { 0 };
	socklen_t ml = sockaddr_of(family, family == AF_INET ? "0.0.0.0" : "::", port, &me), pl = 0;
	int i;

	if (a < 0 || b < 0 || (family == AF_INET6 && setsockopt(a, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off))) ||
	    bind(a, (struct sockaddr *)&me, ml) != 0) {
		report(0, errno, "bind", 0);
		return 0;
	}
	printf("{\"ready\":true}\n");
	for (i = 0; i < nsteps; i++) {
		const char *st = steps[i];
		char addr[64], dst[64];
		int p1, p2;

		if (!strcmp(st, "recv")) {
			struct pollfd pfd = { .fd = a, .events = POLLIN };
			char buf[256], host[INET6_ADDRSTRLEN] = "";

			if (poll(&pfd, 1, 5000) != 1) {
				report(0, ETIMEDOUT, "recv", 0);
				continue;
			}
			pl = sizeof(peer);
			if (recvfrom(a, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &pl) < 0) {
				report(0, errno, "recv", 0);
				continue;
			}
			if (peer.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, host, sizeof(host));
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, host, sizeof(host));
			printf("{\"ok\":true,\"errno\":0,\"stage\":\"recv\",\"sent\":0,\"peer\":\"%s\"}\n", host);
		} else if (!strcmp(st, "a") || !strcmp(st, "b")) {
			udp_send_step(st[0] == 'a' ? a : b, &peer, pl, st);
		} else if (sscanf(st, "a-to:%63[^,],%d", addr, &p1) == 2) {
			struct sockaddr_storage to;
			socklen_t tl = sockaddr_of(AF_INET, addr, p1, &to);

			if (family == AF_INET6) { /* a dual-stack socket sends IPv4 as ::ffff:a.b.c.d */
				char mapped[80];

				snprintf(mapped, sizeof(mapped), "::ffff:%s", addr);
				tl = sockaddr_of(AF_INET6, mapped, p1, &to);
			}
			udp_send_step(a, &to, tl, "a-to");
		} else if (sscanf(st, "spoof:%63[^,],%d,%63s", addr, &p1, dst) == 3) {
			udp_spoof_step(addr, p1, dst, port);
		} else if (sscanf(st, "sleep:%d", &p2) == 1) {
			usleep((useconds_t)p2 * 1000);
			report(1, 0, "sleep", 0);
		} else {
			usage("bad udp-serve step");
		}
	}
	return 0;
}

static int udp_from(int family, int sport, const char *addr, int port, int wait_ms)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1;
	struct sockaddr_storage me, to;
	socklen_t ml = sockaddr_of(family, family == AF_INET ? "0.0.0.0" : "::", sport, &me);
	socklen_t tl = sockaddr_of(family, addr, port, &to);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[256];

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) ||
	    bind(fd, (struct sockaddr *)&me, ml) != 0) {
		report(0, errno, "bind", 0);
		return 0;
	}
	if (sendto(fd, "hello", 5, 0, (struct sockaddr *)&to, tl) < 0) {
		report(0, errno, "sendto", 0);
		return 0;
	}
	if (poll(&pfd, 1, wait_ms) == 1 && recv(fd, buf, sizeof(buf), 0) > 0)
		report(1, 0, "answered", 1);
	else
		report(1, 0, "unanswered", 1);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *netns = NULL;
	int i = 1;

	while (i + 1 < argc && !strncmp(argv[i], "--", 2)) {
		if (!strcmp(argv[i], "--cgroup"))
			cgroup = argv[i + 1];
		else if (!strcmp(argv[i], "--netns"))
			netns = argv[i + 1];
		else
			usage("unknown option");
		i += 2;
	}
	if (i >= argc)
		usage("no mode");
	probe_enter("sidedoor", cgroup, netns);
	setvbuf(stdout, NULL, _IOLBF, 0);
	argv += i;
	argc -= i;
	if (!strcmp(argv[0], "sniff"))
		return sniff(argc - 1, argv + 1);
	if (!strcmp(argv[0], "ping") && argc == 3)
		return ping(family_of(argv[1]), argv[2], 0, 0);
	if (!strcmp(argv[0], "ping-again") && argc == 3)
		return ping(family_of(argv[1]), argv[2], 0, 1);
	if (!strcmp(argv[0], "rawping") && argc == 3)
		return ping(family_of(argv[1]), argv[2], 1, 0);
	if (!strcmp(argv[0], "hdrincl") && (argc == 5 || argc == 6))
		return hdrincl(family_of(argv[1]), argv[2], argv[3], atoi(argv[4]), argc == 6 ? argv[5] : NULL);
	if (!strcmp(argv[0], "udp") && (argc == 4 || argc == 5))
		return udp(family_of(argv[1]), argv[2], atoi(argv[3]), argc == 5 ? argv[4] : NULL);
	if (!strcmp(argv[0], "tcp-lsrr") && argc == 4)
		return tcp_lsrr(argv[1], atoi(argv[2]), argv[3]);
	if (!strcmp(argv[0], "moved") && argc == 5)
		return moved(argv[1], argv[2], atoi(argv[3]), argv[4]);
	if (!strcmp(argv[0], "mptcp") && argc == 4)
		return mptcp(argv[1], atoi(argv[2]), atol(argv[3]));
	if (!strcmp(argv[0], "udp-from") && argc == 6)
		return udp_from(family_of(argv[1]), atoi(argv[2]), argv[3], atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(argv[0], "udp-serve") && argc >= 3)
		return udp_serve(family_of(argv[1]), atoi(argv[2]), argc - 3, argv + 3);
	if (!strcmp(argv[0], "mptcp-listen") && argc == 4)
		return mptcp_listen(argv[1], atoi(argv[2]), atol(argv[3]));
	usage("unknown mode or wrong arguments");
}
