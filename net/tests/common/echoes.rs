//! Checked ping-pongs between a QoS endpoint and echo servers, for the
//! multi-queue tests: numbered payloads that say which endpoint sent them,
//! every echo checked once (order across servers is free).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use insane_net::qos::Endpoint;

/// Payload `i` of endpoint `tag`: 9..=1408 bytes, the first 9 say whose
/// and which.
pub fn tagged(tag: u8, i: u64) -> Vec<u8> {
    let len = 9 + (i as usize * 7919) % 1400;
    let mut p: Vec<u8> = (0..len).map(|j| (j * 13) as u8 ^ tag).collect();
    p[0] = tag;
    p[1..9].copy_from_slice(&i.to_le_bytes());
    p
}

/// Sends `tagged(tag, 0..n)` to `targets` in turn (`i % targets.len()`),
/// at most 16 in flight (the first alone: ARP), and checks that each
/// comes back once, intact, from the target it went to, in a device
/// frame.
pub async fn ping_pong(
    ep: &Endpoint,
    tag: u8,
    n: u64,
    targets: &[SocketAddr],
) -> Result<(), String> {
    let target = |i: u64| targets[(i % targets.len() as u64) as usize];
    let mut seen = HashSet::new();
    let mut sent = 0u64;
    while (seen.len() as u64) < n {
        let window = if sent == 0 { 1 } else { 16 };
        while sent < n && sent - (seen.len() as u64) < window {
            let mut buf = ep.buffer().await;
            buf.extend_from_slice(&tagged(tag, sent))
                .map_err(|e| e.to_string())?;
            ep.send_to(buf, target(sent))
                .await
                .map_err(|e| format!("endpoint {tag}: send {sent}: {e}"))?;
            sent += 1;
        }
        let msg = match insane_runtime::time::timeout(Duration::from_secs(10), ep.recv()).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => return Err(format!("endpoint {tag}: recv: {e}")),
            Err(_) => {
                return Err(format!(
                    "endpoint {tag}: echo missing ({} of {n} back, {sent} sent): {:?}",
                    seen.len(),
                    ep.transport().diagnostics()
                ));
            }
        };
        if msg.len() < 9 || msg[0] != tag {
            return Err(format!("endpoint {tag}: a datagram not its own"));
        }
        let i = u64::from_le_bytes(msg[1..9].try_into().map_err(|_| "tag")?);
        if msg[..] != tagged(tag, i)[..] {
            return Err(format!("endpoint {tag}: echo {i} corrupt"));
        }
        if msg.peer() != target(i) {
            return Err(format!("endpoint {tag}: echo {i} from {}", msg.peer()));
        }
        if !msg.is_device_frame() {
            return Err(format!("endpoint {tag}: echo {i} copied out of its frame"));
        }
        if !seen.insert(i) {
            return Err(format!("endpoint {tag}: echo {i} twice"));
        }
    }
    Ok(())
}
