//! RDMA (reliable connections): only the probe so far. This build has no
//! RDMA driver, so the probe reports why the technology is unavailable
//! (no device, or a device this build cannot drive), and the policy
//! passes to the next choice with that reason in `explain()`.

use std::net::SocketAddr;

use super::TransportConfig;
use super::technology::{BindFuture, Technology};
use crate::config::Config;
use crate::qos::policy::{Availability, Capabilities, TransportKind};

/// RDMA in the technology table (`technology.rs`).
pub(crate) struct Rdma;

impl Technology for Rdma {
    fn name(&self) -> &'static str {
        "RDMA"
    }

    fn kinds(&self) -> &'static [TransportKind] {
        &[TransportKind::RdmaRc]
    }

    fn probe(&self, _host: &Config, caps: &mut Capabilities) {
        caps.rdma = probe_rdma();
    }

    fn falls_back(&self) -> bool {
        true
    }

    fn bind<'a>(
        &'a self,
        _kind: TransportKind,
        _addr: SocketAddr,
        _config: &'a TransportConfig,
        _host: &'a Config,
    ) -> BindFuture<'a> {
        Box::pin(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the RDMA driver is not part of this build yet",
            ))
        })
    }
}

/// Looks for RDMA devices in `/sys/class/infiniband`.
fn probe_rdma() -> Availability {
    match std::fs::read_dir("/sys/class/infiniband") {
        Ok(mut entries) => match entries.next() {
            Some(Ok(dev)) => Availability::Unavailable(format!(
                "RDMA device {} found, but the RDMA driver is not part of this build yet",
                dev.file_name().to_string_lossy()
            )),
            _ => {
                Availability::Unavailable("no RDMA device (/sys/class/infiniband is empty)".into())
            }
        },
        Err(_) => Availability::Unavailable("no RDMA device (no /sys/class/infiniband)".into()),
    }
}
