//! insane's configuration: one schema for every driver, read from an
//! `insane.toml` file and `INSANE_<SECTION>_<KEY>` variables, which
//! override the file.
//!
//! The file is the one `INSANE_CONFIG` names; when that variable is unset,
//! `insane.toml` in the working directory if there is one (set
//! `INSANE_CONFIG=` to an empty value to read no file). [`Config::load`]
//! reads both; [`Config::from_toml_str`] and [`Config::apply_env`] are the
//! same steps on a given text and variable lookup.
//!
//! ```toml
//! [runtime]               # the facade's runtime: see RuntimeConfig
//! cores = 2               # INSANE_RUNTIME_CORES or INSANE_CORES
//! driver = "uring"        # INSANE_RUNTIME_DRIVER or INSANE_DRIVER: auto | uring | epoll
//! pin_cores = true        # INSANE_RUNTIME_PIN_CORES or INSANE_PIN_CORES
//! sqpoll = false          # INSANE_RUNTIME_SQPOLL or INSANE_SQPOLL
//! idle = "spin-then-park:20us" # INSANE_RUNTIME_IDLE: park | spin | spin-then-park[:DURATION]
//! thread_name = "svc"     # INSANE_RUNTIME_THREAD_NAME: threads are "svc-1", "svc-2", ...
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
//! # Precedence
//!
//! The variables override the file. For `[runtime]` there is a layer
//! below both, what the program says (`Runtime::builder()` calls,
//! `#[insane::main(..)]` arguments): the facade's `Builder::load_config`
//! lays this module's result over the builder, and `#[insane::main]`,
//! `#[insane::test]` and `Runtime::new()` call it. So, lowest first:
//! builder or attribute, file, environment. Where a key has two variables
//! (`INSANE_RUNTIME_CORES` and its short alias `INSANE_CORES`), the long
//! one wins when both are set.
//!
//! Errors name the cause: for the file, its name, the line and the key
//! (``insane.toml line 2, `runtime.coers`: unknown field `coers`, expected
//! one of ...``); for the environment, the variable and its value
//! (`INSANE_CORES="many": expected an integer >= 1`).
//!
//! ```
//! use insane_net::config::{Config, Driver};
//! let config = Config::from_toml_str("[runtime]\ncores = 2\n", "insane.toml").unwrap();
//! assert_eq!(config.runtime.cores, Some(2));
//! assert!(config.xdp.is_none());
//!
//! // The environment (here a lookup closure) overrides the file.
//! let config = config
//!     .apply_env(|name| (name == "INSANE_DRIVER").then(|| "epoll".to_string()))
//!     .unwrap();
//! assert_eq!(config.runtime.driver, Some(Driver::Epoll));
//!
//! let err = Config::from_toml_str("[runtime]\ncoers = 2\n", "insane.toml").unwrap_err();
//! assert!(err.to_string().starts_with("insane.toml line 2, `runtime.coers`"), "{err}");
//! ```

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use insane_runtime::runtime::IdlePolicy;
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

/// `[runtime]`: how the facade's runtime is built, one field per setting of
/// `insane::runtime::Builder`; `None` leaves the builder's value.
///
/// | key | builder call | variables (long name first) | value |
/// |---|---|---|---|
/// | `cores` | `.cores(n)` | `INSANE_RUNTIME_CORES`, `INSANE_CORES` | integer >= 1 |
/// | `driver` | `.driver(d)` | `INSANE_RUNTIME_DRIVER`, `INSANE_DRIVER` | `auto`, `uring`, `epoll` ([`Driver`]) |
/// | `pin_cores` | `.pin_cores(b)` | `INSANE_RUNTIME_PIN_CORES`, `INSANE_PIN_CORES` | bool (variables: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`) |
/// | `sqpoll` | `.sqpoll(b)` | `INSANE_RUNTIME_SQPOLL`, `INSANE_SQPOLL` | bool |
/// | `idle` | `.idle(p)` | `INSANE_RUNTIME_IDLE` | `park`, `spin`, `spin-then-park` or `spin-then-park:DURATION` ([`parse_idle`]) |
/// | `thread_name` | `.thread_name(s)` | `INSANE_RUNTIME_THREAD_NAME` | string |
///
/// This is the one parser of these keys and variables: the facade applies
/// its result (`Builder::with_config`, `Builder::load_config`) and reads
/// none of them itself.
///
/// ```
/// use std::time::Duration;
/// use insane_net::config::{Config, Driver, RuntimeConfig};
/// use insane_runtime::runtime::IdlePolicy;
///
/// let text = "[runtime]\ncores = 4\ndriver = \"epoll\"\nidle = \"spin-then-park:50us\"\n";
/// let runtime = Config::from_toml_str(text, "insane.toml")?
///     .apply_env(|name| (name == "INSANE_CORES").then(|| "2".to_string()))?
///     .runtime;
/// assert_eq!(
///     runtime,
///     RuntimeConfig {
///         cores: Some(2), // the variable beat the file
///         driver: Some(Driver::Epoll),
///         idle: Some(IdlePolicy::SpinThenPark(Duration::from_micros(50))),
///         ..RuntimeConfig::default()
///     }
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of cores (executor threads), at least 1.
    #[serde(default, deserialize_with = "de_cores")]
    pub cores: Option<usize>,
    /// The kernel I/O driver of every core.
    pub driver: Option<Driver>,
    /// Pin core i to the i-th allowed CPU.
    pub pin_cores: Option<bool>,
    /// io_uring SQPOLL.
    pub sqpoll: Option<bool>,
    /// What idle cores do.
    #[serde(default, deserialize_with = "de_idle")]
    pub idle: Option<IdlePolicy>,
    /// Prefix of the worker threads' names (`{name}-{core}`).
    pub thread_name: Option<String>,
}

impl RuntimeConfig {
    /// Overrides this configuration's keys with those `over` sets: the
    /// merge of two layers, `over` being the higher one.
    ///
    /// ```
    /// use insane_net::config::RuntimeConfig;
    /// let mut code = RuntimeConfig { cores: Some(1), pin_cores: Some(true), ..Default::default() };
    /// code.override_with(&RuntimeConfig { cores: Some(4), ..Default::default() });
    /// assert_eq!((code.cores, code.pin_cores), (Some(4), Some(true)));
    /// ```
    pub fn override_with(&mut self, over: &RuntimeConfig) {
        // Destructured so that a new key cannot be forgotten here.
        let RuntimeConfig {
            cores,
            driver,
            pin_cores,
            sqpoll,
            idle,
            thread_name,
        } = over;
        if cores.is_some() {
            self.cores = *cores;
        }
        if driver.is_some() {
            self.driver = *driver;
        }
        if pin_cores.is_some() {
            self.pin_cores = *pin_cores;
        }
        if sqpoll.is_some() {
            self.sqpoll = *sqpoll;
        }
        if idle.is_some() {
            self.idle = *idle;
        }
        if thread_name.is_some() {
            self.thread_name.clone_from(thread_name);
        }
    }

    /// Applies the `[runtime]` variables read through `var` (a parameter
    /// so tests need not touch the process environment): each set variable
    /// overrides its key. See the table above for the names; when a key's
    /// long and short variables are both set, the long one
    /// (`INSANE_RUNTIME_CORES`) wins.
    ///
    /// ```
    /// use insane_net::config::{Driver, RuntimeConfig};
    /// let env = |name: &str| match name {
    ///     "INSANE_DRIVER" => Some("epoll".to_string()),
    ///     "INSANE_RUNTIME_PIN_CORES" => Some("yes".to_string()),
    ///     _ => None,
    /// };
    /// let runtime = RuntimeConfig::default().apply_env(env).unwrap();
    /// assert_eq!(runtime.driver, Some(Driver::Epoll));
    /// assert_eq!(runtime.pin_cores, Some(true));
    ///
    /// let err = RuntimeConfig::default()
    ///     .apply_env(|name| (name == "INSANE_CORES").then(|| "0".to_string()))
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "INSANE_CORES=\"0\": expected an integer >= 1");
    /// ```
    ///
    /// # Errors
    /// A value that does not parse (`InvalidInput`); the error names the
    /// variable and its value.
    pub fn apply_env(mut self, var: impl Fn(&str) -> Option<String>) -> io::Result<Self> {
        let get = |names: &[&'static str]| names.iter().find_map(|n| var(n).map(|v| (*n, v)));
        if let Some((n, v)) = get(&["INSANE_RUNTIME_CORES", "INSANE_CORES"]) {
            match v.trim().parse::<usize>() {
                Ok(cores) if cores >= 1 => self.cores = Some(cores),
                _ => return Err(bad_var(n, &v, "an integer >= 1")),
            }
        }
        if let Some((n, v)) = get(&["INSANE_RUNTIME_DRIVER", "INSANE_DRIVER"]) {
            let driver = v.parse::<Driver>().map_err(|_| bad_var(n, &v, DRIVERS))?;
            self.driver = Some(driver);
        }
        if let Some((n, v)) = get(&["INSANE_RUNTIME_PIN_CORES", "INSANE_PIN_CORES"]) {
            self.pin_cores = Some(parse_bool_var(n, &v)?);
        }
        if let Some((n, v)) = get(&["INSANE_RUNTIME_SQPOLL", "INSANE_SQPOLL"]) {
            self.sqpoll = Some(parse_bool_var(n, &v)?);
        }
        if let Some((n, v)) = get(&["INSANE_RUNTIME_IDLE"]) {
            self.idle = Some(parse_idle(&v).map_err(|e| bad_var(n, &v, &e))?);
        }
        if let Some((_, v)) = get(&["INSANE_RUNTIME_THREAD_NAME"]) {
            self.thread_name = Some(v);
        }
        Ok(self)
    }
}

const DRIVERS: &str = "\"auto\", \"uring\" or \"epoll\"";

fn bad_var(name: &str, value: &str, expected: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name}={value:?}: expected {expected}"),
    )
}

/// A boolean variable: `1`/`true`/`yes`/`on`, or `0`/`false`/`no`/`off`/empty.
fn parse_bool_var(name: &str, value: &str) -> io::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(bad_var(name, value, "1/0, true/false, yes/no or on/off")),
    }
}

fn de_cores<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    struct Cores;
    impl serde::de::Visitor<'_> for Cores {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer >= 1")
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<usize, E> {
            match usize::try_from(n) {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self)),
            }
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<usize, E> {
            match usize::try_from(n) {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(n), &self)),
            }
        }
    }
    d.deserialize_any(Cores).map(Some)
}

fn de_idle<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IdlePolicy>, D::Error> {
    let s = String::deserialize(d)?;
    parse_idle(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{s:?}: expected {e}")))
}

/// Parses an idle policy as `[runtime] idle` and `INSANE_RUNTIME_IDLE`
/// write it: `park`, `spin`, `spin-then-park` (the default spin, 20 µs) or
/// `spin-then-park:DURATION`, the duration an integer with a unit (`ns`,
/// `us`, `µs`, `ms`, `s`).
///
/// ```
/// use std::time::Duration;
/// use insane_net::config::parse_idle;
/// use insane_runtime::runtime::IdlePolicy;
/// assert_eq!(parse_idle("park"), Ok(IdlePolicy::Park));
/// assert_eq!(parse_idle("spin-then-park"), Ok(IdlePolicy::default()));
/// assert_eq!(
///     parse_idle("spin-then-park:50us"),
///     Ok(IdlePolicy::SpinThenPark(Duration::from_micros(50)))
/// );
/// assert!(parse_idle("nap").unwrap_err().contains("\"park\""));
/// ```
///
/// # Errors
/// What was expected, for the caller to put after the key or variable.
pub fn parse_idle(s: &str) -> Result<IdlePolicy, String> {
    const EXPECTED: &str = "\"park\", \"spin\", \"spin-then-park\" or \"spin-then-park:DURATION\" (e.g. \"spin-then-park:50us\")";
    let s = s.trim().to_ascii_lowercase().replace('_', "-");
    let (policy, spin) = match s.split_once(':') {
        Some((policy, spin)) => (policy.trim(), Some(spin.trim())),
        None => (s.as_str(), None),
    };
    match (policy, spin) {
        ("park", None) => Ok(IdlePolicy::Park),
        ("spin", None) => Ok(IdlePolicy::Spin),
        ("spin-then-park", None) => Ok(IdlePolicy::default()),
        ("spin-then-park", Some(spin)) => parse_duration(spin)
            .map(IdlePolicy::SpinThenPark)
            .ok_or_else(|| format!("{EXPECTED}; {spin:?} is not a duration such as \"50us\"")),
        _ => Err(EXPECTED.to_string()),
    }
}

/// `50us`, `1ms`, `2s`, `500ns`, `20µs`.
fn parse_duration(s: &str) -> Option<Duration> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "ns" => Some(Duration::from_nanos(n)),
        "us" | "µs" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        _ => None,
    }
}

/// Which kernel I/O driver the runtime's cores use (`[runtime] driver`,
/// `INSANE_RUNTIME_DRIVER`/`INSANE_DRIVER`; the facade re-exports it as
/// `insane::runtime::Driver`).
///
/// ```
/// use insane_net::config::Driver;
/// assert_eq!("io_uring".parse::<Driver>().unwrap(), Driver::Uring);
/// assert_eq!(Driver::Epoll.to_string(), "epoll");
/// assert!("xdp".parse::<Driver>().unwrap_err().to_string().contains("\"xdp\""));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Driver {
    /// io_uring when this host allows it, else epoll (the facade keeps the
    /// reason in `Runtime::driver_reason` and logs it).
    #[default]
    Auto,
    /// io_uring; building fails, naming the cause, where it is unavailable.
    Uring,
    /// epoll (readiness), always available on Linux.
    Epoll,
}

impl Driver {
    /// The configuration name: `"auto"`, `"uring"` or `"epoll"`.
    ///
    /// ```
    /// assert_eq!(insane_net::config::Driver::Uring.name(), "uring");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Driver {
    type Err = io::Error;

    /// Parses `"auto"`, `"uring"` (or `"io_uring"`, `"io-uring"`) and
    /// `"epoll"`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Driver::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Driver::Uring),
            "epoll" => Ok(Driver::Epoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown driver {other:?}: expected {DRIVERS}"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Driver {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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
    /// cores (see `insane_net::qos::transport::dpdk`).
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
/// [`stack::InterfaceConfig::new`](crate::stack::InterfaceConfig::new) takes.
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
    /// `InvalidData` naming the origin, the line and the key written there
    /// (``insane.toml line 3, `runtime.driver`: unknown driver "xdp": ...``).
    pub fn from_toml_str(text: &str, origin: &str) -> io::Result<Self> {
        toml::from_str::<Config>(text).map_err(|e| {
            let at = e.span().map(|span| span.start.min(text.len()));
            let what = e.message();
            let msg = match at {
                Some(at) => {
                    let line = text[..at].matches('\n').count() + 1;
                    match key_path_at(text, at) {
                        Some(key) => format!("{origin} line {line}, `{key}`: {what}"),
                        None => format!("{origin} line {line}: {what}"),
                    }
                }
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
        let text = std::fs::read_to_string(path).map_err(|e| cannot_read(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The configuration of this process: the file `INSANE_CONFIG` names
    /// (an error if it cannot be read), or when that variable is unset
    /// `insane.toml` in the working directory if it exists, or none when
    /// `INSANE_CONFIG` is set but empty; then the `INSANE_*` overrides
    /// ([`apply_env`](Self::apply_env)). Without file and variables: the
    /// defaults.
    ///
    /// ```no_run
    /// // INSANE_CONFIG=/etc/svc/insane.toml INSANE_CORES=2 ./svc
    /// let config = insane_net::config::Config::load()?;
    /// assert_eq!(config.runtime.cores, Some(2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file) and [`apply_env`](Self::apply_env).
    pub fn load() -> io::Result<Self> {
        Self::load_from(
            std::env::var_os("INSANE_CONFIG"),
            Path::new(DEFAULT_FILE),
            // Lossy: a value that is not UTF-8 then fails to parse, and
            // the error names its variable, instead of being ignored.
            |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
        )
    }

    /// [`load`](Self::load) with its inputs as parameters: the value of
    /// `INSANE_CONFIG`, the file read when it is unset, and the variables.
    fn load_from(
        insane_config: Option<std::ffi::OsString>,
        default_file: &Path,
        var: impl Fn(&str) -> Option<String>,
    ) -> io::Result<Self> {
        let config = match insane_config {
            Some(path) if path.is_empty() => Self::default(),
            Some(path) => Self::from_file(Path::new(&path))?,
            None => match std::fs::read_to_string(default_file) {
                Ok(text) => Self::from_toml_str(&text, &default_file.display().to_string())?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Self::default(),
                Err(e) => return Err(cannot_read(default_file, e)),
            },
        };
        config.apply_env(var)
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
        self.runtime = self.runtime.apply_env(&var)?;

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

/// The file [`Config::load`] reads, from the working directory, when
/// `INSANE_CONFIG` is unset.
const DEFAULT_FILE: &str = "insane.toml";

fn cannot_read(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
}

/// The key written on the line of byte `at` of a TOML text, with the
/// `[section]` it is under (`runtime.cores`), or the section when the line
/// is a header; `None` on a line without a key (a value continued from a
/// line above). Only for error messages, which the TOML parser gives with
/// a position but without the key.
fn key_path_at(text: &str, at: usize) -> Option<String> {
    fn header(line: &str) -> Option<&str> {
        let inner = line.trim().strip_prefix('[')?;
        let inner = inner.trim_start_matches('[');
        Some(inner.split(']').next().unwrap_or(inner).trim())
    }
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    if let Some(section) = header(line) {
        return Some(section.to_string());
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
    };
    let quoted = |k: &str| {
        k.len() >= 2
            && (k.starts_with('"') && k.ends_with('"') || k.starts_with('\'') && k.ends_with('\''))
    };
    if !(bare(key) || quoted(key)) {
        return None;
    }
    match text[..start].lines().rev().find_map(header) {
        Some(section) => Some(format!("{section}.{key}")),
        None => Some(key.to_string()),
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

    // ---- [runtime]: the one parser of the runtime's keys and variables ----

    fn runtime(text: &str, vars: &[(&str, &str)]) -> io::Result<RuntimeConfig> {
        Ok(Config::from_toml_str(text, "insane.toml")?
            .apply_env(env(vars))?
            .runtime)
    }

    #[test]
    fn every_runtime_key_is_read_from_the_file() {
        let text = "[runtime]\ncores = 3\ndriver = \"epoll\"\npin_cores = true\nsqpoll = false\n\
                    idle = \"spin-then-park:5ms\"\nthread_name = \"svc\"\n";
        assert_eq!(
            runtime(text, &[]).unwrap(),
            RuntimeConfig {
                cores: Some(3),
                driver: Some(Driver::Epoll),
                pin_cores: Some(true),
                sqpoll: Some(false),
                idle: Some(IdlePolicy::SpinThenPark(Duration::from_millis(5))),
                thread_name: Some("svc".into()),
            }
        );
    }

    #[test]
    fn without_a_runtime_section_every_key_is_left_to_the_program() {
        assert_eq!(runtime("", &[]).unwrap(), RuntimeConfig::default());
        assert_eq!(
            runtime(
                "[xdp]\ninterface = \"eth1\"\naddress = \"10.0.0.1/24\"\n",
                &[]
            )
            .unwrap(),
            RuntimeConfig::default()
        );
    }

    /// The error for a file holding `text`, which must be invalid.
    fn file_error(text: &str) -> String {
        let err = runtime(text, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{text:?}");
        err.to_string()
    }

    #[test]
    fn a_bad_runtime_value_in_the_file_names_the_file_line_and_key() {
        let expected_cores = "expected an integer >= 1";
        assert_eq!(
            file_error("[runtime]\n\ncores = 0\n"),
            format!(
                "insane.toml line 3, `runtime.cores`: invalid value: integer `0`, {expected_cores}"
            )
        );
        assert_eq!(
            file_error("[runtime]\ncores = -1\n"),
            format!(
                "insane.toml line 2, `runtime.cores`: invalid value: integer `-1`, {expected_cores}"
            )
        );
        assert_eq!(
            file_error("[runtime]\ncores = \"two\"\n"),
            format!(
                "insane.toml line 2, `runtime.cores`: invalid type: string \"two\", {expected_cores}"
            )
        );
        assert_eq!(
            file_error("runtime.cores = 0\n"),
            format!(
                "insane.toml line 1, `runtime.cores`: invalid value: integer `0`, {expected_cores}"
            )
        );
        assert_eq!(
            file_error("[runtime]\ndriver = \"xdp\"\n"),
            "insane.toml line 2, `runtime.driver`: \
             unknown driver \"xdp\": expected \"auto\", \"uring\" or \"epoll\""
        );
        assert_eq!(
            file_error("[runtime]\npin_cores = \"yes\"\n"),
            "insane.toml line 2, `runtime.pin_cores`: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            file_error("[runtime]\nsqpoll = 1\n"),
            "insane.toml line 2, `runtime.sqpoll`: invalid type: integer `1`, expected a boolean"
        );
        assert!(file_error("[runtime]\nidle = \"nap\"\n").starts_with(
            "insane.toml line 2, `runtime.idle`: \"nap\": \
                 expected \"park\", \"spin\", \"spin-then-park\" or \"spin-then-park:DURATION\""
        ));
        assert!(
            file_error("[runtime]\nidle = \"spin-then-park:5parsecs\"\n")
                .ends_with("; \"5parsecs\" is not a duration such as \"50us\"")
        );
        assert_eq!(
            file_error("[runtime]\nthread_name = 7\n"),
            "insane.toml line 2, `runtime.thread_name`: invalid type: integer `7`, expected a string"
        );
        assert!(file_error("[runtime]\ncoers = 2\n").starts_with(
            "insane.toml line 2, `runtime.coers`: unknown field `coers`, expected one of `cores`"
        ));
    }

    #[test]
    fn each_runtime_key_has_a_variable_and_the_short_aliases_still_work() {
        let vars = [
            ("INSANE_CORES", "2"),
            ("INSANE_DRIVER", "Epoll"),
            ("INSANE_PIN_CORES", "on"),
            ("INSANE_SQPOLL", "0"),
            ("INSANE_RUNTIME_IDLE", "spin"),
            ("INSANE_RUNTIME_THREAD_NAME", "svc"),
        ];
        let expected = RuntimeConfig {
            cores: Some(2),
            driver: Some(Driver::Epoll),
            pin_cores: Some(true),
            sqpoll: Some(false),
            idle: Some(IdlePolicy::Spin),
            thread_name: Some("svc".into()),
        };
        assert_eq!(runtime("", &vars).unwrap(), expected, "short aliases");
        let long = [
            ("INSANE_RUNTIME_CORES", "2"),
            ("INSANE_RUNTIME_DRIVER", "Epoll"),
            ("INSANE_RUNTIME_PIN_CORES", "on"),
            ("INSANE_RUNTIME_SQPOLL", "0"),
            ("INSANE_RUNTIME_IDLE", "spin"),
            ("INSANE_RUNTIME_THREAD_NAME", "svc"),
        ];
        assert_eq!(runtime("", &long).unwrap(), expected, "long names");
    }

    #[test]
    fn the_long_variable_wins_over_its_short_alias() {
        let c = runtime(
            "",
            &[
                ("INSANE_RUNTIME_CORES", "4"),
                ("INSANE_CORES", "2"),
                ("INSANE_RUNTIME_DRIVER", "uring"),
                ("INSANE_DRIVER", "epoll"),
            ],
        )
        .unwrap();
        assert_eq!((c.cores, c.driver), (Some(4), Some(Driver::Uring)));
    }

    #[test]
    fn the_environment_overrides_the_file_key_by_key() {
        let file = "[runtime]\ncores = 3\ndriver = \"uring\"\nthread_name = \"file\"\n";
        let c = runtime(
            file,
            &[("INSANE_DRIVER", "epoll"), ("INSANE_PIN_CORES", "1")],
        )
        .unwrap();
        assert_eq!(c.cores, Some(3), "not set in the environment: the file's");
        assert_eq!(
            c.driver,
            Some(Driver::Epoll),
            "set in both: the environment's"
        );
        assert_eq!(c.pin_cores, Some(true), "set in the environment only");
        assert_eq!(c.thread_name.as_deref(), Some("file"));
    }

    #[test]
    fn a_bad_runtime_variable_is_named_with_its_value() {
        let cases = [
            (
                ("INSANE_CORES", "many"),
                "INSANE_CORES=\"many\": expected an integer >= 1",
            ),
            (
                ("INSANE_RUNTIME_CORES", "0"),
                "INSANE_RUNTIME_CORES=\"0\": expected an integer >= 1",
            ),
            (
                ("INSANE_DRIVER", "xdp"),
                "INSANE_DRIVER=\"xdp\": expected \"auto\", \"uring\" or \"epoll\"",
            ),
            (
                ("INSANE_RUNTIME_PIN_CORES", "maybe"),
                "INSANE_RUNTIME_PIN_CORES=\"maybe\": expected 1/0",
            ),
            (("INSANE_SQPOLL", "2"), "INSANE_SQPOLL=\"2\": expected 1/0"),
            (
                ("INSANE_RUNTIME_IDLE", "nap"),
                "INSANE_RUNTIME_IDLE=\"nap\": expected \"park\"",
            ),
        ];
        for ((name, value), starts) in cases {
            let err = runtime("", &[(name, value)]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(err.to_string().starts_with(starts), "{name}: {err}");
        }
    }

    #[test]
    fn idle_policies_are_written_as_words_with_an_optional_spin() {
        assert_eq!(parse_idle("park"), Ok(IdlePolicy::Park));
        assert_eq!(parse_idle(" Spin "), Ok(IdlePolicy::Spin));
        assert_eq!(parse_idle("spin_then_park"), Ok(IdlePolicy::default()));
        for (text, spin) in [
            ("spin-then-park:500ns", Duration::from_nanos(500)),
            ("spin-then-park:20µs", Duration::from_micros(20)),
            ("spin-then-park: 1ms", Duration::from_millis(1)),
            ("spin-then-park:2s", Duration::from_secs(2)),
        ] {
            assert_eq!(
                parse_idle(text),
                Ok(IdlePolicy::SpinThenPark(spin)),
                "{text}"
            );
        }
        for bad in [
            "",
            "sleep",
            "park:1ms",
            "spin-then-park:",
            "spin-then-park:1h",
            "spin-then-park:-1ms",
        ] {
            assert!(parse_idle(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overriding_keeps_the_keys_the_higher_layer_leaves_unset() {
        let mut low = RuntimeConfig {
            cores: Some(1),
            driver: Some(Driver::Uring),
            thread_name: Some("low".into()),
            ..RuntimeConfig::default()
        };
        low.override_with(&RuntimeConfig {
            cores: Some(8),
            idle: Some(IdlePolicy::Park),
            ..RuntimeConfig::default()
        });
        assert_eq!(
            low,
            RuntimeConfig {
                cores: Some(8),
                driver: Some(Driver::Uring),
                idle: Some(IdlePolicy::Park),
                thread_name: Some("low".into()),
                ..RuntimeConfig::default()
            }
        );
    }

    // ---- which file Config::load reads ----

    /// A fresh directory for one test's files.
    fn scratch_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("insane-config-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_file_named_by_insane_config_is_read_and_then_the_environment() {
        let dir = scratch_dir("named");
        let named = dir.join("svc.toml");
        std::fs::write(&named, "[runtime]\ncores = 3\ndriver = \"uring\"\n").unwrap();
        std::fs::write(dir.join("insane.toml"), "[runtime]\ncores = 5\n").unwrap();
        let c = Config::load_from(
            Some(named.clone().into()),
            &dir.join("insane.toml"),
            env(&[("INSANE_DRIVER", "epoll")]),
        )
        .unwrap();
        assert_eq!(
            c.runtime.cores,
            Some(3),
            "the named file, not the default one"
        );
        assert_eq!(c.runtime.driver, Some(Driver::Epoll));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_insane_config_the_default_file_is_read_when_present() {
        let dir = scratch_dir("default");
        let default = dir.join("insane.toml");
        let c = Config::load_from(None, &default, env(&[])).unwrap();
        assert_eq!(c, Config::default(), "no file: the defaults");
        std::fs::write(&default, "[runtime]\ncores = 5\n").unwrap();
        let c = Config::load_from(None, &default, env(&[])).unwrap();
        assert_eq!(c.runtime.cores, Some(5));
        std::fs::write(&default, "[runtime]\n\ncores = 0\n").unwrap();
        let err = Config::load_from(None, &default, env(&[]))
            .unwrap_err()
            .to_string();
        let origin = default.display().to_string();
        assert!(
            err.starts_with(&format!("{origin} line 3, `runtime.cores`")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_insane_config_reads_no_file() {
        let dir = scratch_dir("empty");
        let default = dir.join("insane.toml");
        std::fs::write(&default, "[runtime]\ncores = 5\n").unwrap();
        let c =
            Config::load_from(Some("".into()), &default, env(&[("INSANE_CORES", "2")])).unwrap();
        assert_eq!(c.runtime.cores, Some(2));
        let c = Config::load_from(Some("".into()), &default, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_named_file_that_cannot_be_read_is_an_error_naming_it() {
        let dir = scratch_dir("missing");
        let missing = dir.join("nope.toml");
        let err = Config::load_from(
            Some(missing.clone().into()),
            &dir.join("insane.toml"),
            env(&[]),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_keys_are_found_under_their_section() {
        let text =
            "# c\n[runtime] # r\ncores = 1\n\n[dpdk]\neal = [\n  \"--vdev=x\",\n]\n'q k' = 1\n";
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(
            key_path_at(text, at("cores")).as_deref(),
            Some("runtime.cores")
        );
        assert_eq!(
            key_path_at(text, at("1\n")).as_deref(),
            Some("runtime.cores")
        );
        assert_eq!(key_path_at(text, at("[dpdk]")).as_deref(), Some("dpdk"));
        assert_eq!(key_path_at(text, at("[\n")).as_deref(), Some("dpdk.eal"));
        assert_eq!(
            key_path_at(text, at("\"--vdev")),
            None,
            "a value on a line of its own"
        );
        assert_eq!(
            key_path_at(text, at("'q k'")).as_deref(),
            Some("dpdk.'q k'")
        );
        assert_eq!(key_path_at(text, 0), None, "a comment");
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
