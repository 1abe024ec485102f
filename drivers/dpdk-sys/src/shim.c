/* See shim.h. Compiled by build.rs with the flags of `pkg-config
 * --cflags libdpdk`. */
#include "shim.h"
#include <rte_flow.h>

int insane_rte_errno(void) { return rte_errno; }
void insane_rte_errno_set(int value) { rte_errno = value; }
unsigned insane_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t insane_rte_eth_rx_burst(uint16_t port, uint16_t queue,
                                 struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t insane_rte_eth_tx_burst(uint16_t port, uint16_t queue,
                                 struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *insane_rte_pktmbuf_alloc(struct rte_mempool *mp) {
    return rte_pktmbuf_alloc(mp);
}

int insane_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
                                  struct rte_mbuf **mbufs, unsigned count) {
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void insane_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *insane_rte_pktmbuf_mtod(struct rte_mbuf *m) {
    return rte_pktmbuf_mtod(m, char *);
}

uint16_t insane_rte_pktmbuf_headroom(const struct rte_mbuf *m) {
    return rte_pktmbuf_headroom(m);
}

uint16_t insane_rte_pktmbuf_tailroom(const struct rte_mbuf *m) {
    return rte_pktmbuf_tailroom(m);
}

char *insane_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_prepend(m, len);
}

char *insane_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_append(m, len);
}

int insane_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_trim(m, len);
}

int insane_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m) {
    return rte_pktmbuf_is_contiguous(m);
}

uint16_t insane_rte_pktmbuf_data_room_size(struct rte_mempool *mp) {
    return rte_pktmbuf_data_room_size(mp);
}

const char *insane_rte_version(void) { return rte_version(); }

void insane_mbuf_tx_offload(struct rte_mbuf *m, uint64_t flags, uint16_t l2_len,
                            uint16_t l3_len) {
    m->ol_flags |= flags;
    m->l2_len = l2_len;
    m->l3_len = l3_len;
}

const uint64_t insane_rss_ip_udp = RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP;
const uint64_t insane_rx_offload_checksum = RTE_ETH_RX_OFFLOAD_CHECKSUM;
const uint64_t insane_tx_offload_ipv4_cksum = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
const uint64_t insane_tx_offload_udp_cksum = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
const uint64_t insane_rx_offload_ipv4_udp_cksum =
    RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
const uint64_t insane_tx_ipv4_udp_cksum_flags =
    RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;

struct rte_flow *insane_flow_udp_to_queue(uint16_t port, uint32_t dst_ip,
                                          uint16_t dst_port, uint16_t queue,
                                          const char **message) {
    struct rte_flow_attr attr = {.ingress = 1};
    struct rte_flow_item_ipv4 ip_spec = {.hdr.dst_addr = dst_ip};
    struct rte_flow_item_ipv4 ip_mask = {.hdr.dst_addr = 0xffffffff};
    struct rte_flow_item_udp udp_spec = {.hdr.dst_port = rte_cpu_to_be_16(dst_port)};
    struct rte_flow_item_udp udp_mask = {.hdr.dst_port = 0xffff};
    struct rte_flow_item pattern[] = {
        {.type = RTE_FLOW_ITEM_TYPE_ETH},
        {.type = RTE_FLOW_ITEM_TYPE_IPV4, .spec = &ip_spec, .mask = &ip_mask},
        {.type = RTE_FLOW_ITEM_TYPE_UDP, .spec = &udp_spec, .mask = &udp_mask},
        {.type = RTE_FLOW_ITEM_TYPE_END},
    };
    struct rte_flow_action_queue to = {.index = queue};
    struct rte_flow_action actions[] = {
        {.type = RTE_FLOW_ACTION_TYPE_QUEUE, .conf = &to},
        {.type = RTE_FLOW_ACTION_TYPE_END},
    };
    struct rte_flow_error error = {0};
    struct rte_flow *flow = NULL;
    if (rte_flow_validate(port, &attr, pattern, actions, &error) == 0)
        flow = rte_flow_create(port, &attr, pattern, actions, &error);
    if (flow == NULL)
        *message = error.message != NULL ? error.message : "the PMD gave no reason";
    return flow;
}

int insane_flow_destroy(uint16_t port, struct rte_flow *flow) {
    struct rte_flow_error error = {0};
    return rte_flow_destroy(port, flow, &error);
}
