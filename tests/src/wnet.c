/* wnet: the network probe of the end-to-end tests (tests/src/net.rs).
 *
 *   wnet send IFACE DSTMAC SPEC...
 *       Writes one Ethernet frame per SPEC out of IFACE to DSTMAC through an
 *       AF_PACKET socket (needs CAP_NET_RAW), so nothing in the sender's own
 *       network stack (routes, source checks, the local 127.0.0.0/8) has a
 *       say: the frame is exactly what a hostile root could put on the wire.
 *       SPEC is PROTO,SRC,DST,SPORT,DPORT with PROTO udp (payload "wnet"),
 *       tcp (a SYN) or udp6 (IPv6 addresses; DSTMAC is then ignored and the
 *       frame goes to the all-nodes group 33:33:00:00:00:01).
 *       Prints "sent N", or "error: WHAT: ERRNO" and exits 1.
 *   wnet listen ADDR PORT MAX_MS
 *       Binds udp and tcp ADDR:PORT (ADDR may be IPv6 with %IFACE: udp only)
 *       and, when permitted, a raw IPPROTO_TCP socket that sees every TCP
 *       segment delivered to this network namespace; prints "ready", then
 *       one line per arrival until MAX_MS passed, or 300 ms after a udp
 *       datagram with payload "END":
 *         udp SRC SPORT PAYLOAD | syn SRC SPORT | tcp SRC SPORT
 *       (syn: a SYN to ADDR:PORT seen by the raw socket, whether or not a
 *       handshake follows; tcp: an accepted connection, answered "hello").
 *   wnet connect ADDR PORT [SPORT]
 *       TCP connect (from local port SPORT when given) with a 3 s bound;
 *       prints what the peer sends first. Exits 0 on "hello", 1 otherwise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) {
  const char *e = strerrorname_np(errno);
  printf("error: %s: %s\n", what, e ? e : "?");
  return 1;
}

static uint32_t sum16(const void *p, size_t n, uint32_t s) {
  const uint8_t *b = p;
  for (; n > 1; n -= 2, b += 2) s += (uint32_t)b[0] << 8 | b[1];
  if (n) s += (uint32_t)b[0] << 8;
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return htons((uint16_t)~s);
}

static int parse_mac(const char *s, uint8_t m[6]) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) m[i] = (uint8_t)v[i];
  return 0;
}

/* Builds one frame for SPEC into f; returns its length, or -1. */
static int frame(char *spec, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint8_t *f) {
  char *proto = strtok(spec, ","), *src = strtok(0, ","), *dst = strtok(0, ",");
  char *sp = strtok(0, ","), *dp = strtok(0, ",");
  if (!proto || !src || !dst || !sp || !dp) return -1;
  uint16_t sport = htons((uint16_t)atoi(sp)), dport = htons((uint16_t)atoi(dp));
  static const char payload[] = "wnet";
  const size_t plen = sizeof payload - 1;
  struct ether_header *eth = (void *)f;
  memcpy(eth->ether_shost, src_mac, 6);
  if (!strcmp(proto, "udp6")) {
    static const uint8_t all_nodes[6] = {0x33, 0x33, 0, 0, 0, 1};
    memcpy(eth->ether_dhost, all_nodes, 6);
    eth->ether_type = htons(ETHERTYPE_IPV6);
    struct ip6_hdr *ip6 = (void *)(f + sizeof *eth);
    struct udphdr *u = (void *)(ip6 + 1);
    memset(ip6, 0, sizeof *ip6);
    ip6->ip6_flow = htonl(6u << 28);
    ip6->ip6_plen = htons((uint16_t)(sizeof *u + plen));
    ip6->ip6_nxt = IPPROTO_UDP;
    ip6->ip6_hlim = 255;
    if (inet_pton(AF_INET6, src, &ip6->ip6_src) != 1 || inet_pton(AF_INET6, dst, &ip6->ip6_dst) != 1) return -1;
    u->source = sport;
    u->dest = dport;
    u->len = htons((uint16_t)(sizeof *u + plen));
    u->check = 0;
    memcpy(u + 1, payload, plen);
    uint32_t s = sum16(&ip6->ip6_src, 32, 0);
    s += sizeof *u + plen;
    s += IPPROTO_UDP;
    s = sum16(u, sizeof *u + plen, s);
    u->check = fold(s);
    if (!u->check) u->check = 0xffff;
    return (int)(sizeof *eth + sizeof *ip6 + sizeof *u + plen);
  }
  memcpy(eth->ether_dhost, dst_mac, 6);
  eth->ether_type = htons(ETHERTYPE_IP);
  struct iphdr *ip = (void *)(f + sizeof *eth);
  memset(ip, 0, sizeof *ip);
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->id = htons((uint16_t)getpid());
  if (inet_pton(AF_INET, src, &ip->saddr) != 1 || inet_pton(AF_INET, dst, &ip->daddr) != 1) return -1;
  uint8_t *l4 = (uint8_t *)(ip + 1);
  size_t l4len;
  if (!strcmp(proto, "udp")) {
    struct udphdr *u = (void *)l4;
    l4len = sizeof *u + plen;
    u->source = sport;
    u->dest = dport;
    u->len = htons((uint16_t)l4len);
    u->check = 0;
    memcpy(u + 1, payload, plen);
    ip->protocol = IPPROTO_UDP;
  } else if (!strcmp(proto, "tcp")) {
    struct tcphdr *t = (void *)l4;
    l4len = sizeof *t;
    memset(t, 0, sizeof *t);
    t->source = sport;
    t->dest = dport;
    t->seq = htonl(0x5eed0000u | (uint32_t)getpid());
    t->doff = 5;
    t->syn = 1;
    t->window = htons(64240);
    ip->protocol = IPPROTO_TCP;
  } else {
    return -1;
  }
  ip->tot_len = htons((uint16_t)(sizeof *ip + l4len));
  ip->check = fold(sum16(ip, sizeof *ip, 0));
  uint32_t s = sum16(&ip->saddr, 8, 0);
  s += ip->protocol;
  s += (uint32_t)l4len;
  s = sum16(l4, l4len, s);
  uint16_t c = fold(s);
  if (ip->protocol == IPPROTO_UDP) ((struct udphdr *)l4)->check = c ? c : 0xffff;
  else ((struct tcphdr *)l4)->check = c;
  return (int)(sizeof *eth + sizeof *ip + l4len);
}

static int do_send(int argc, char **argv) {
  if (argc < 5) return fail("usage: send IFACE DSTMAC SPEC...");
  unsigned idx = if_nametoindex(argv[2]);
  if (!idx) return fail("if_nametoindex");
  uint8_t dst_mac[6], src_mac[6];
  if (parse_mac(argv[3], dst_mac)) { errno = EINVAL; return fail("DSTMAC"); }
  int s = socket(AF_PACKET, SOCK_RAW, 0);
  if (s < 0) return fail("socket(AF_PACKET)");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[2]);
  if (ioctl(s, SIOCGIFHWADDR, &ifr)) return fail("SIOCGIFHWADDR");
  memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_ifindex = (int)idx;
  to.sll_halen = 6;
  int n = 0;
  for (int i = 4; i < argc; i++) {
    uint8_t f[256];
    char spec[256];
    snprintf(spec, sizeof spec, "%s", argv[i]);
    int len = frame(spec, src_mac, dst_mac, f);
    if (len < 0) { errno = EINVAL; return fail(argv[i]); }
    memcpy(to.sll_addr, f, 6);
    if (sendto(s, f, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) != len) return fail("sendto");
    n++;
  }
  printf("sent %d\n", n);
  return 0;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int do_listen(int argc, char **argv) {
  if (argc != 5) return fail("usage: listen ADDR PORT MAX_MS");
  int port = atoi(argv[3]);
  long long end = now_ms() + atoll(argv[4]);
  char addr[128];
  snprintf(addr, sizeof addr, "%s", argv[2]);
  int v6 = strchr(addr, ':') != 0;
  struct sockaddr_storage ss;
  socklen_t sl;
  struct in_addr a4 = {0};
  memset(&ss, 0, sizeof ss);
  if (v6) {
    struct sockaddr_in6 *s6 = (void *)&ss;
    char *pct = strchr(addr, '%');
    if (pct) { *pct = 0; s6->sin6_scope_id = if_nametoindex(pct + 1); }
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) { errno = EINVAL; return fail("ADDR"); }
    sl = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (void *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) { errno = EINVAL; return fail("ADDR"); }
    a4 = s4->sin_addr;
    sl = sizeof *s4;
  }
  int one = 1;
  int u = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (u < 0 || bind(u, (struct sockaddr *)&ss, sl)) return fail("bind udp");
  int t = -1, r = -1;
  if (!v6) {
    t = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (t < 0 || bind(t, (struct sockaddr *)&ss, sl) || listen(t, 16)) return fail("bind tcp");
    r = socket(AF_INET, SOCK_RAW, IPPROTO_TCP); /* -1 without CAP_NET_RAW: no syn lines */
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    long long left = end - now_ms();
    if (left <= 0) break;
    struct pollfd p[3] = {{u, POLLIN, 0}, {t, POLLIN, 0}, {r, POLLIN, 0}};
    if (poll(p, 3, (int)left) <= 0) continue;
    char ip[INET6_ADDRSTRLEN];
    if (p[0].revents) {
      char buf[512];
      struct sockaddr_storage from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(u, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
      if (n >= 0) {
        buf[n] = 0;
        int sport;
        if (from.ss_family == AF_INET6) {
          struct sockaddr_in6 *f6 = (void *)&from;
          inet_ntop(AF_INET6, &f6->sin6_addr, ip, sizeof ip);
          sport = ntohs(f6->sin6_port);
        } else {
          struct sockaddr_in *f4 = (void *)&from;
          inet_ntop(AF_INET, &f4->sin_addr, ip, sizeof ip);
          sport = ntohs(f4->sin_port);
        }
        printf("udp %s %d %s\n", ip, sport, buf);
        fflush(stdout);
        if (!strcmp(buf, "END") && end > now_ms() + 300) end = now_ms() + 300;
      }
    }
    if (t >= 0 && p[1].revents) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      int c = accept(t, (struct sockaddr *)&from, &fl);
      if (c >= 0) {
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        printf("tcp %s %d\n", ip, ntohs(from.sin_port));
        fflush(stdout);
        (void)!write(c, "hello\n", 6);
        close(c);
      }
    }
    if (r >= 0 && p[2].revents) {
      uint8_t buf[2048];
      ssize_t n = recv(r, buf, sizeof buf, 0);
      struct iphdr *h = (void *)buf;
      if (n >= (ssize_t)sizeof *h && n >= h->ihl * 4 + (ssize_t)sizeof(struct tcphdr)) {
        struct tcphdr *th = (void *)(buf + h->ihl * 4);
        if (h->daddr == a4.s_addr && ntohs(th->dest) == port && th->syn && !th->ack) {
          struct in_addr s = {h->saddr};
          inet_ntop(AF_INET, &s, ip, sizeof ip);
          printf("syn %s %d\n", ip, ntohs(th->source));
          fflush(stdout);
        }
      }
    }
  }
  return 0;
}

static int do_connect(int argc, char **argv) {
  if (argc != 4 && argc != 5) return fail("usage: connect ADDR PORT [SPORT]");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) { errno = EINVAL; return fail("ADDR"); }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (argc == 5) {
    struct sockaddr_in l;
    int one = 1;
    memset(&l, 0, sizeof l);
    l.sin_family = AF_INET;
    l.sin_port = htons((uint16_t)atoi(argv[4]));
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&l, sizeof l)) return fail("bind");
  }
  struct timeval tv = {3, 0};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) return fail("connect");
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf - 1);
  if (n < 0) return fail("read");
  buf[n] = 0;
  printf("%s", buf);
  return strcmp(buf, "hello\n") ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "send")) return do_send(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "listen")) return do_listen(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "connect")) return do_connect(argc, argv);
  fprintf(stderr, "usage: wnet send|listen|connect ...\n");
  return 2;
}
