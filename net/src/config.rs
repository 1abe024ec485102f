//! insane's configuration: one schema for every driver, read from builder
//! calls, an `insane.toml` file (path from `INSANE_CONFIG`) and
//! `INSANE_<SECTION>_<KEY>` variables, which override the file.
//!
//! ```toml
//! [runtime]
//! cores = 2               # INSANE_RUNTIME_CORES
//! driver = "uring"        # INSANE_RUNTIME_DRIVER: auto | uring | epoll
//! [xdp]                   # AF_XDP is offered only when this section exists
//! interface = "eth1"      # INSANE_XDP_INTERFACE
//! queue = 0               # INSANE_XDP_QUEUE
//! address = "10.0.0.1/24" # INSANE_XDP_ADDRESS: the stack's IPv4 on that link
//! mode = "auto"           # INSANE_XDP_MODE: auto | native | generic
//! [dpdk]                  # DPDK is offered only when this section exists
//! eal = ["--no-pci", "--vdev=net_memif0,role=server,socket=/run/m.sock"]
//!                         # INSANE_DPDK_EAL: space-separated
//! port = 0                # INSANE_DPDK_PORT
//! address = "10.0.1.1/24" # INSANE_DPDK_ADDRESS
//! queues = 1              # INSANE_DPDK_QUEUES: RX/TX queue pairs, one per polling core
//! ```
//!
//! Errors name the bad key, and for the file the line:
//! `insane.toml line 3: unknown field `coers`, expected one of ...`.
//!
//! ```
//! use insane_net::config::Config;
//! let config = Config::from_toml_str("[runtime]\ncores = 2\n", "insane.toml").unwrap();
//! assert_eq!(config.runtime.cores, Some(2));
//! assert!(config.xdp.is_none());
//! let err = Config::from_toml_str("[runtime]\ncoers = 2\n", "insane.toml").unwrap_err();
//! assert!(err.to_string().contains("line 2"), "{err}");
//! assert!(err.to_string().contains("coers"), "{err}");
//! ```

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[runtime]`: executor settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[xdp]`: AF_XDP is offered only when present.
    pub xdp: Option<XdpConfig>,
    /// `[dpdk]`: DPDK is offered only when present.
    pub dpdk: Option<DpdkConfig>,
    /// `[channels]`: where a pub/sub session listens and which peer hosts
    /// it sends to ([`SessionConfig`](crate::qos::SessionConfig)).
    #[serde(default)]
    pub channels: ChannelsConfig,
}

/// `[channels]`: the network side of a pub/sub
/// [`Session`](crate::qos::Session).
///
/// ```toml
/// [channels]
/// listen = "0.0.0.0:7200"            # UDP and TCP port for peers' messages
/// peers = ["10.0.0.2:7200", "10.0.0.3:7200"]
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    /// The address to receive peers' messages on (UDP for best-effort,
    /// TCP for reliable channels, same port). None: local delivery only
    /// unless peers are listed (then an ephemeral port).
    pub listen: Option<std::net::SocketAddr>,
    /// Peer hosts' `listen` addresses: every message sent on a channel
    /// goes to each of them too.
    #[serde(default)]
    pub peers: Vec<std::net::SocketAddr>,
}

/// `[runtime]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of cores.
    pub cores: Option<usize>,
    /// `auto`, `uring` or `epoll`.
    pub driver: Option<String>,
    /// Pin core i to the i-th allowed CPU.
    pub pin_cores: Option<bool>,
    /// io_uring SQPOLL.
    pub sqpoll: Option<bool>,
}

/// `[xdp]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct XdpConfig {
    /// The network interface whose queue insane binds.
    pub interface: String,
    /// The queue index.
    #[serde(default)]
    pub queue: u32,
    /// The stack's IPv4 address and prefix on that link.
    pub address: Ipv4Cidr,
    /// How to attach the XDP program.
    #[serde(default)]
    pub mode: XdpMode,
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode, else generic.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// `[dpdk]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DpdkConfig {
    /// EAL arguments, e.g. `["--no-pci", "--vdev=net_memif0,..."]`.
    #[serde(default)]
    pub eal: Vec<String>,
    /// The port id.
    #[serde(default)]
    pub port: u16,
    /// The stack's IPv4 address and prefix on that port.
    pub address: Ipv4Cidr,
    /// RX/TX queue pairs to open the port with (default 1): the cores
    /// that bind endpoints each poll queues of their own, up to this many
    /// cores (see `insane_net::qos::dpdk`).
    #[serde(default = "one_queue")]
    pub queues: u16,
}

fn one_queue() -> u16 {
    1
}

/// An IPv4 address with its prefix length, written `10.0.0.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub address: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// `address/prefix`.
    ///
    /// ```
    /// use insane_net::config::Ipv4Cidr;
    /// let cidr = Ipv4Cidr::new([10, 0, 0, 1].into(), 24);
    /// assert_eq!(cidr, "10.0.0.1/24".parse().unwrap());
    /// ```
    ///
    /// # Panics
    /// When `prefix` is over 32 (parse untrusted text with `str::parse`,
    /// which reports it as an error instead).
    pub fn new(address: Ipv4Addr, prefix: u8) -> Self {
        assert!(
            prefix <= 32,
            "an IPv4 prefix length is at most 32, got {prefix}"
        );
        Self { address, prefix }
    }

    /// Whether `other` is on this subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        u32::from(self.address) & mask == u32::from(other) & mask
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| {
            format!("{s:?} is not an IPv4 address with a prefix (e.g. \"10.0.0.1/24\")")
        })?;
        let address = addr
            .parse::<Ipv4Addr>()
            .map_err(|e| format!("{addr:?}: {e}"))?;
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length (0..=32)"))?;
        Ok(Self { address, prefix })
    }
}

/// The userspace stack's address type (smoltcp's): what
/// [`stack::Config::new`](crate::stack::Config::new) takes.
#[cfg(feature = "qos")]
impl From<Ipv4Cidr> for insane_stack::wire::Ipv4Cidr {
    fn from(cidr: Ipv4Cidr) -> Self {
        insane_stack::wire::Ipv4Cidr::new(cidr.address, cidr.prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Parses TOML text; `origin` (a file name) starts error messages.
    ///
    /// # Errors
    /// `InvalidData` naming the origin, the line and the bad key.
    pub fn from_toml_str(text: &str, origin: &str) -> io::Result<Self> {
        toml::from_str::<Config>(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let what = e.message();
            let msg = match line {
                Some(line) => format!("{origin} line {line}: {what}"),
                None => format!("{origin}: {what}"),
            };
            io::Error::new(io::ErrorKind::InvalidData, msg)
        })
    }

    /// Reads a TOML file.
    ///
    /// # Errors
    /// The file cannot be read (the error names it), or it does not parse.
    pub fn from_file(path: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The configuration of this process: the file named by
    /// `INSANE_CONFIG` (none: defaults), then `INSANE_*` overrides.
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file) and [`apply_env`](Self::apply_env).
    pub fn load() -> io::Result<Self> {
        let config = match std::env::var_os("INSANE_CONFIG") {
            Some(path) => Self::from_file(Path::new(&path))?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())
    }

    /// Applies `INSANE_<SECTION>_<KEY>` overrides read through `var` (a
    /// parameter so tests need not touch the process environment). Setting
    /// any `INSANE_XDP_*` / `INSANE_DPDK_*` key creates that section, which
    /// then needs its required keys (`interface`/`address`).
    ///
    /// # Errors
    /// A value that does not parse, or a section left incomplete; the
    /// error names the variable.
    pub fn apply_env(mut self, var: impl Fn(&str) -> Option<String>) -> io::Result<Self> {
        fn parse<T: FromStr>(name: &str, value: &str, expected: &str) -> io::Result<T> {
            value.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name}={value:?}: expected {expected}"),
                )
            })
        }
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).map(|v| ((*n).to_string(), v)))
        };

        if let Some((n, v)) = get(&["INSANE_RUNTIME_CORES", "INSANE_CORES"]) {
            self.runtime.cores = Some(parse(&n, &v, "an integer >= 1")?);
        }
        if let Some((_, v)) = get(&["INSANE_RUNTIME_DRIVER", "INSANE_DRIVER"]) {
            self.runtime.driver = Some(v.trim().to_string());
        }

        let xdp_keys = [
            "INSANE_XDP_INTERFACE",
            "INSANE_XDP_QUEUE",
            "INSANE_XDP_ADDRESS",
            "INSANE_XDP_MODE",
        ];
        if xdp_keys.iter().any(|k| var(k).is_some()) {
            let interface = var("INSANE_XDP_INTERFACE")
                .or_else(|| self.xdp.as_ref().map(|x| x.interface.clone()));
            let address = match var("INSANE_XDP_ADDRESS") {
                Some(v) => Some(parse(
                    "INSANE_XDP_ADDRESS",
                    &v,
                    "an IPv4 address with prefix, e.g. 10.0.0.1/24",
                )?),
                None => self.xdp.as_ref().map(|x| x.address),
            };
            let (Some(interface), Some(address)) = (interface, address) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "INSANE_XDP_* needs both INSANE_XDP_INTERFACE and INSANE_XDP_ADDRESS (or an [xdp] section)",
                ));
            };
            let queue = match var("INSANE_XDP_QUEUE") {
                Some(v) => parse("INSANE_XDP_QUEUE", &v, "a queue index")?,
                None => self.xdp.as_ref().map_or(0, |x| x.queue),
            };
            let mode = match var("INSANE_XDP_MODE").as_deref().map(str::trim) {
                Some("auto") => XdpMode::Auto,
                Some("native") => XdpMode::Native,
                Some("generic") => XdpMode::Generic,
                Some(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("INSANE_XDP_MODE={other:?}: expected auto, native or generic"),
                    ));
                }
                None => self.xdp.as_ref().map_or(XdpMode::Auto, |x| x.mode),
            };
            self.xdp = Some(XdpConfig {
                interface,
                queue,
                address,
                mode,
            });
        }

        let dpdk_keys = [
            "INSANE_DPDK_EAL",
            "INSANE_DPDK_PORT",
            "INSANE_DPDK_ADDRESS",
            "INSANE_DPDK_QUEUES",
        ];
        if dpdk_keys.iter().any(|k| var(k).is_some()) {
            let address = match var("INSANE_DPDK_ADDRESS") {
                Some(v) => Some(parse(
                    "INSANE_DPDK_ADDRESS",
                    &v,
                    "an IPv4 address with prefix, e.g. 10.0.1.1/24",
                )?),
                None => self.dpdk.as_ref().map(|d| d.address),
            };
            let Some(address) = address else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "INSANE_DPDK_* needs INSANE_DPDK_ADDRESS (or a [dpdk] section)",
                ));
            };
            let eal = match var("INSANE_DPDK_EAL") {
                Some(v) => v.split_whitespace().map(str::to_string).collect(),
                None => self
                    .dpdk
                    .as_ref()
                    .map(|d| d.eal.clone())
                    .unwrap_or_default(),
            };
            let port = match var("INSANE_DPDK_PORT") {
                Some(v) => parse("INSANE_DPDK_PORT", &v, "a port id (0..=65535)")?,
                None => self.dpdk.as_ref().map_or(0, |d| d.port),
            };
            let queues = match var("INSANE_DPDK_QUEUES") {
                Some(v) => parse("INSANE_DPDK_QUEUES", &v, "a queue count (1..=65535)")?,
                None => self.dpdk.as_ref().map_or(1, |d| d.queues),
            };
            if queues == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "INSANE_DPDK_QUEUES=0: a port needs at least one queue",
                ));
            }
            self.dpdk = Some(DpdkConfig {
                eal,
                port,
                address,
                queues,
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FULL: &str = r#"
[runtime]
cores = 2
driver = "uring"
[xdp]
interface = "eth1"
queue = 0
address = "10.0.0.1/24"
mode = "auto"
[dpdk]
eal = ["--no-pci", "--vdev=net_memif0,role=server,socket=/run/m.sock"]
port = 0
address = "10.0.1.1/24"
"#;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_design_schema_parses() {
        let c = Config::from_toml_str(FULL, "insane.toml").unwrap();
        assert_eq!(c.runtime.cores, Some(2));
        let xdp = c.xdp.unwrap();
        assert_eq!(xdp.interface, "eth1");
        assert_eq!(xdp.address.to_string(), "10.0.0.1/24");
        assert_eq!(c.dpdk.unwrap().eal.len(), 2);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let err = Config::from_toml_str(
            "[runtime]\ncores = 2\n[xdp]\ninterface = \"eth1\"\naddress = \"10.0.0.300/24\"\n",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("f.toml line 5"), "{err}");
        assert!(err.contains("10.0.0.300"), "{err}");
        let err =
            Config::from_toml_str("[dpdk]\nport = \"x\"\naddress = \"1.2.3.4/8\"\n", "f.toml")
                .unwrap_err()
                .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::from_toml_str("[xdp]\nqueue = 1\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interface"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::from_toml_str(FULL, "insane.toml")
            .unwrap()
            .apply_env(env(&[
                ("INSANE_RUNTIME_CORES", "4"),
                ("INSANE_XDP_QUEUE", "3"),
                ("INSANE_DPDK_EAL", "--no-pci --no-huge"),
            ]))
            .unwrap();
        assert_eq!(c.runtime.cores, Some(4));
        assert_eq!(c.xdp.as_ref().unwrap().queue, 3);
        assert_eq!(c.xdp.unwrap().interface, "eth1");
        assert_eq!(c.dpdk.unwrap().eal, vec!["--no-pci", "--no-huge"]);
    }

    #[test]
    fn environment_alone_can_configure_xdp_and_bad_values_are_named() {
        let c = Config::default()
            .apply_env(env(&[
                ("INSANE_XDP_INTERFACE", "veth0"),
                ("INSANE_XDP_ADDRESS", "10.9.0.1/24"),
            ]))
            .unwrap();
        assert_eq!(c.xdp.unwrap().queue, 0);
        let err = Config::default()
            .apply_env(env(&[("INSANE_XDP_INTERFACE", "veth0")]))
            .unwrap_err();
        assert!(err.to_string().contains("INSANE_XDP_ADDRESS"), "{err}");
        let err = Config::default()
            .apply_env(env(&[("INSANE_CORES", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("INSANE_CORES=\"many\""), "{err}");
    }

    #[test]
    fn dpdk_queues_default_to_one_and_can_be_set_in_the_file_or_environment() {
        let c = Config::from_toml_str(FULL, "insane.toml").unwrap();
        assert_eq!(c.dpdk.as_ref().unwrap().queues, 1);
        let c = Config::from_toml_str(&format!("{FULL}queues = 4\n"), "insane.toml").unwrap();
        assert_eq!(c.dpdk.as_ref().unwrap().queues, 4);
        let c = c.apply_env(env(&[("INSANE_DPDK_QUEUES", "2")])).unwrap();
        assert_eq!(c.dpdk.unwrap().queues, 2);
        let err = Config::from_toml_str(FULL, "insane.toml")
            .unwrap()
            .apply_env(env(&[("INSANE_DPDK_QUEUES", "0")]))
            .unwrap_err();
        assert!(err.to_string().contains("at least one queue"), "{err}");
    }

    #[test]
    fn cidr_contains() {
        let net: Ipv4Cidr = "10.0.0.1/24".parse().unwrap();
        assert!(net.contains("10.0.0.200".parse().unwrap()));
        assert!(!net.contains("10.0.1.2".parse().unwrap()));
        assert!("10.0.0.1".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.1/33".parse::<Ipv4Cidr>().is_err());
    }
}
