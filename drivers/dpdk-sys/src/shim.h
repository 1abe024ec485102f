/* The C shim of insane-dpdk-sys: DPDK's static inline functions (and
 * macros such as rte_errno) exported as ordinary symbols, so that Rust
 * can call them. Each one is a one-line forwarder; see shim.c. */
#ifndef INSANE_DPDK_SHIM_H
#define INSANE_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_version.h>

struct rte_flow; /* opaque; rte_flow.h is included by shim.c only */

int insane_rte_errno(void);
void insane_rte_errno_set(int value);
unsigned insane_rte_lcore_id(void);
uint16_t insane_rte_eth_rx_burst(uint16_t port, uint16_t queue,
                                 struct rte_mbuf **pkts, uint16_t n);
uint16_t insane_rte_eth_tx_burst(uint16_t port, uint16_t queue,
                                 struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *insane_rte_pktmbuf_alloc(struct rte_mempool *mp);
int insane_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
                                  struct rte_mbuf **mbufs, unsigned count);
void insane_rte_pktmbuf_free(struct rte_mbuf *m);
char *insane_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t insane_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t insane_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
char *insane_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *insane_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int insane_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int insane_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t insane_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
const char *insane_rte_version(void);
/* Marks an IPv4/UDP frame for TX checksum offload: ol_flags |= flags
 * (insane_tx_ipv4_udp_cksum_flags), l2_len and l3_len set (bit-fields). */
void insane_mbuf_tx_offload(struct rte_mbuf *m, uint64_t flags, uint16_t l2_len,
                            uint16_t l3_len);

/* Flag sets that DPDK defines with RTE_BIT64 macros, which bindgen cannot
 * evaluate. */
extern const uint64_t insane_rss_ip_udp;        /* RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP */
extern const uint64_t insane_rx_offload_checksum; /* IPV4 | UDP | TCP checksum */
extern const uint64_t insane_tx_offload_ipv4_cksum;
extern const uint64_t insane_tx_offload_udp_cksum;
extern const uint64_t insane_rx_offload_ipv4_udp_cksum; /* IPV4 | UDP checksum */
/* TX mbuf ol_flags asking for IPv4 header and UDP checksums:
 * RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM. */
extern const uint64_t insane_tx_ipv4_udp_cksum_flags;

/* A flow rule (rte_flow) sending ingress IPv4/UDP datagrams to dst_ip
 * (network byte order) port dst_port (host byte order) to RX queue
 * `queue`: validated, then created. NULL on failure, with rte_errno set
 * and *message pointing at the PMD's reason (a static string, or a fixed
 * one when the PMD gave none). */
struct rte_flow *insane_flow_udp_to_queue(uint16_t port, uint32_t dst_ip,
                                          uint16_t dst_port, uint16_t queue,
                                          const char **message);
/* rte_flow_destroy; 0 or a negative errno. */
int insane_flow_destroy(uint16_t port, struct rte_flow *flow);

#endif
