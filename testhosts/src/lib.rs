//! Test hosts: several network namespaces on this machine, joined by veth
//! pairs, created by a test and removed when it ends (also when it panics).
//!
//! ```no_run
//! use insane_testhosts::TestHosts;
//!
//! if !TestHosts::require("my_test") {
//!     return; // printed why; under CI=true this panics instead
//! }
//! let hosts = TestHosts::pair().unwrap();
//! let b = hosts.iface(1, 0).addr;
//! let got = hosts.run_in(1, || {
//!     let sock = std::net::UdpSocket::bind((b, 9000)).unwrap();
//!     sock.local_addr().unwrap()
//! });
//! assert_eq!(got.ip(), b);
//! // namespaces and veths disappear when `hosts` drops
//! ```
//!
//! Every set gets unique names (process id plus a counter), so tests may run
//! in parallel. Link `l` is the subnet `10.77.<l+1>.0/24` and host `h` has
//! address `10.77.<l+1>.<h+1>` on it; these addresses exist only inside the
//! namespaces created here. By default IPv6 is disabled in the namespaces
//! (no router solicitations or MLD reports on the wire), TX checksum
//! offload is turned off on every veth (`ethtool -K <veth> tx off`: frames
//! echoed raw, e.g. over AF_XDP, would otherwise carry partial checksums)
//! and neighbour entries are learnt by ARP unless
//! [`Builder::permanent_neighbours`] asks for static ones.
//!
//! Code runs inside a namespace either on a fresh thread that entered it
//! with `setns` ([`TestHosts::run_in`], [`TestHosts::spawn_in`]; the thread
//! ends afterwards and is never reused) or as a child process under
//! `ip netns exec` ([`TestHosts::command`]). A thread that entered a
//! namespace sees its sockets, interfaces and `/proc/sys/net`, but not its
//! `/sys/class/net` (sysfs stays the one mounted at start); use
//! [`TestHosts::command`] or the fields of [`Iface`] for that.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// Directory where `ip netns add` puts the namespace handles.
const NETNS_DIR: &str = "/var/run/netns";

/// The bridge's host in [`TestHosts::bridged_pair`].
pub const BRIDGE: usize = 2;

/// Per-process counter that makes names unique together with the pid.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises `ip netns add/del` inside this process: the first `ip netns
/// add` on a machine sets up the `/var/run/netns` mount and concurrent
/// first calls can race.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Whether this is a CI run (`CI` set to anything but empty, `0` or
/// `false`): missing capabilities are then failures, not skips.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Moves the calling thread into the network namespace `name` (a handle in
/// `/var/run/netns`). Only the network namespace changes; the thread should
/// not be reused for unrelated work afterwards, so call this on a thread of
/// its own (as [`TestHosts::run_in`] does).
///
/// # Errors
/// The handle cannot be opened (no such namespace) or `setns` fails
/// (needs CAP_SYS_ADMIN).
pub fn enter_netns(name: &str) -> io::Result<()> {
    let path = format!("{NETNS_DIR}/{name}");
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for
    // the duration of the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns into network namespace {name} failed: {e}"),
        ));
    }
    Ok(())
}

/// One namespace of a [`TestHosts`] set.
#[derive(Debug, Clone)]
pub struct Host {
    /// Index in the set (0, 1, 2, ...).
    pub index: usize,
    /// Name of the namespace (`ip netns` name, handle in `/var/run/netns`).
    pub netns: String,
}

/// One end of a veth pair, as configured in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name inside the host's namespace (at most 15 bytes).
    pub name: String,
    /// Index of the host that owns this end.
    pub host: usize,
    /// IPv4 address of this end.
    pub addr: Ipv4Addr,
    /// Prefix length of `addr` (always 24).
    pub prefix_len: u8,
    /// MAC address, read from `/sys/class/net/<name>/address` in the host.
    pub mac: [u8; 6],
    /// MTU set on the interface.
    pub mtu: u32,
}

impl Iface {
    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// A veth pair joining hosts `a.host` and `b.host`.
#[derive(Debug, Clone)]
pub struct Link {
    /// Index of the link in the set.
    pub index: usize,
    /// The end in the first host named in [`Builder::link`].
    pub a: Iface,
    /// The end in the second host.
    pub b: Iface,
}

impl Link {
    /// The end of this link that lives in `host`, if any.
    pub fn end(&self, host: usize) -> Option<&Iface> {
        [&self.a, &self.b].into_iter().find(|i| i.host == host)
    }

    /// The end of this link opposite to `host`'s end, if `host` is on it.
    pub fn peer_of(&self, host: usize) -> Option<&Iface> {
        if self.a.host == host {
            Some(&self.b)
        } else if self.b.host == host {
            Some(&self.a)
        } else {
            None
        }
    }
}

/// Describes a set of test hosts; [`build`](Builder::build) creates it.
#[derive(Debug, Clone)]
pub struct Builder {
    hosts: usize,
    links: Vec<(usize, usize)>,
    mtu: u32,
    tx_checksum_offload: bool,
    permanent_neighbours: bool,
    routed: bool,
    queues: u32,
    ipv6: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            hosts: 2,
            links: Vec::new(),
            mtu: 1500,
            tx_checksum_offload: false,
            permanent_neighbours: false,
            routed: false,
            queues: 1,
            ipv6: false,
        }
    }
}

impl Builder {
    /// Number of namespaces (1 to 8; default 2).
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// Adds a veth pair between hosts `a` and `b` (link indices count from
    /// 0 in the order of these calls; at most 16 links).
    pub fn link(mut self, a: usize, b: usize) -> Self {
        self.links.push((a, b));
        self
    }

    /// MTU of every veth (default 1500).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// Keeps TX checksum offload on (default: turned off with
    /// `ethtool -K <veth> tx off`, so every frame carries full checksums).
    pub fn tx_checksum_offload(mut self, on: bool) -> Self {
        self.tx_checksum_offload = on;
        self
    }

    /// Installs permanent neighbour entries for both ends of every link, so
    /// no ARP is needed between directly linked hosts (default: off).
    pub fn permanent_neighbours(mut self, on: bool) -> Self {
        self.permanent_neighbours = on;
        self
    }

    /// Enables IPv4 forwarding in every host and adds routes so that every
    /// host reaches every link's subnet along the fewest hops (default:
    /// off; only directly linked hosts talk).
    pub fn routed(mut self, on: bool) -> Self {
        self.routed = on;
        self
    }

    /// RX and TX queues of every veth (default 1).
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = n;
        self
    }

    /// Leaves IPv6 enabled in the namespaces (default: disabled).
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Creates the namespaces and links. On error everything created so
    /// far is removed again.
    ///
    /// # Errors
    /// Invalid description (host index out of range, too many links or
    /// hosts), or a failing `ip`/`ethtool` command (named with its output).
    pub fn build(self) -> io::Result<TestHosts> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if !(1..=8).contains(&self.hosts) {
            return Err(invalid(format!("1 to 8 hosts, not {}", self.hosts)));
        }
        if self.links.len() > 16 {
            return Err(invalid(format!(
                "at most 16 links, not {}",
                self.links.len()
            )));
        }
        if self.queues == 0 {
            return Err(invalid("a veth needs at least 1 queue".into()));
        }
        for &(a, b) in &self.links {
            if a >= self.hosts || b >= self.hosts || a == b {
                return Err(invalid(format!(
                    "link {a}-{b} must join two different hosts below {}",
                    self.hosts
                )));
            }
        }
        let pid = std::process::id();
        let id = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut set = TestHosts {
            hosts: Vec::new(),
            links: Vec::new(),
        };
        for h in 0..self.hosts {
            let netns = format!("insane-{pid}-{id}-h{h}");
            {
                let _guard = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                run_checked(Command::new("ip").args(["netns", "add", &netns]))?;
            }
            // Registered before configuring, so a failure below removes it.
            set.hosts.push(Host {
                index: h,
                netns: netns.clone(),
            });
            run_checked(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
            if !self.ipv6 {
                set.write_sysctl(h, "net/ipv6/conf/all/disable_ipv6", "1")?;
                set.write_sysctl(h, "net/ipv6/conf/default/disable_ipv6", "1")?;
            }
            if self.routed {
                set.write_sysctl(h, "net/ipv4/ip_forward", "1")?;
            }
        }
        let queues = self.queues.to_string();
        for (l, &(ha, hb)) in self.links.iter().enumerate() {
            // v<pid hex, <= 6><n><counter hex, 3><l><link hex, 1><a|b>: <= 14 bytes.
            let name = |end: char| format!("v{pid:x}n{:03x}l{l:x}{end}", id & 0xfff);
            let (na, nb) = (name('a'), name('b'));
            debug_assert!(na.len() <= 15);
            let (nsa, nsb) = (set.hosts[ha].netns.clone(), set.hosts[hb].netns.clone());
            run_checked(Command::new("ip").args([
                "link",
                "add",
                "name",
                &na,
                "netns",
                &nsa,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                &nb,
                "netns",
                &nsb,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
            ]))?;
            let subnet = u8::try_from(l + 1).expect("at most 16 links");
            let mut ends = Vec::with_capacity(2);
            for (host, ifname) in [(ha, &na), (hb, &nb)] {
                let ns = &set.hosts[host].netns;
                let addr = Ipv4Addr::new(10, 77, subnet, host as u8 + 1);
                let mtu = self.mtu.to_string();
                run_checked(
                    Command::new("ip")
                        .args(["-n", ns, "link", "set", "dev", ifname, "mtu", &mtu, "up"]),
                )?;
                run_checked(Command::new("ip").args([
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    ifname,
                ]))?;
                if !self.tx_checksum_offload {
                    run_checked(
                        Command::new("ip")
                            .args(["netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off"]),
                    )?;
                }
                let mac_text = run_checked(Command::new("ip").args([
                    "netns",
                    "exec",
                    ns,
                    "cat",
                    &format!("/sys/class/net/{ifname}/address"),
                ]))?;
                let mac = parse_mac(mac_text.trim()).ok_or_else(|| {
                    io::Error::other(format!("cannot parse MAC {mac_text:?} of {ifname}"))
                })?;
                ends.push(Iface {
                    name: ifname.clone(),
                    host,
                    addr,
                    prefix_len: 24,
                    mac,
                    mtu: self.mtu,
                });
            }
            let b = ends.pop().expect("two ends");
            let a = ends.pop().expect("two ends");
            set.links.push(Link { index: l, a, b });
            if self.permanent_neighbours {
                set.add_neighbour(ha, l)?;
                set.add_neighbour(hb, l)?;
            }
        }
        if self.routed {
            set.add_routes()?;
        }
        Ok(set)
    }
}

/// A set of network namespaces joined by veth pairs; everything is removed
/// when it drops (processes still running in the namespaces are killed).
pub struct TestHosts {
    hosts: Vec<Host>,
    links: Vec<Link>,
}

impl fmt::Debug for TestHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestHosts")
            .field("hosts", &self.hosts)
            .field("links", &self.links)
            .finish()
    }
}

impl TestHosts {
    /// A [`Builder`] (2 hosts, no links yet).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Two hosts joined by one link with permanent neighbour entries: host
    /// 0 is `10.77.1.1`, host 1 is `10.77.1.2`.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn pair() -> io::Result<Self> {
        Self::builder()
            .hosts(2)
            .link(0, 1)
            .permanent_neighbours(true)
            .build()
    }

    /// Two hosts on one subnet joined through a bridge in a third
    /// namespace, where frames can be dropped
    /// ([`drop_frames`](Self::drop_frames)): host 0 is `10.77.1.1`
    /// (link 0), host 1 is `10.77.1.2` (link 1), host 2 ([`BRIDGE`]) holds
    /// the bridge `br0` over both links' other ends, which have no
    /// address. Hosts 0 and 1 have permanent neighbour entries for each
    /// other.
    ///
    /// # Errors
    /// As [`Builder::build`], or a failing `ip` command.
    pub fn bridged_pair() -> io::Result<Self> {
        let mut set = Self::builder()
            .hosts(3)
            .link(0, BRIDGE)
            .link(1, BRIDGE)
            .build()?;
        // Host 1 moves onto link 0's subnet: the bridge joins both links
        // into one.
        let subnet_addr = Ipv4Addr::new(10, 77, 1, 2);
        let old = set.iface(1, 1).clone();
        set.ip(1, &["addr", "flush", "dev", &old.name])?;
        set.ip(
            1,
            &[
                "addr",
                "add",
                &format!("{subnet_addr}/24"),
                "dev",
                &old.name,
            ],
        )?;
        set.links[1].a.addr = subnet_addr;
        set.ip(BRIDGE, &["link", "add", "br0", "type", "bridge"])?;
        for link in 0..2 {
            let port = set.iface(BRIDGE, link).name.clone();
            set.ip(BRIDGE, &["addr", "flush", "dev", &port])?;
            set.ip(BRIDGE, &["link", "set", "dev", &port, "master", "br0"])?;
        }
        set.ip(BRIDGE, &["link", "set", "dev", "br0", "up"])?;
        for (host, link, peer_link) in [(0, 0, 1), (1, 1, 0)] {
            let (me, peer) = (set.iface(host, link), set.iface(1 - host, peer_link));
            set.permanent_neighbour(host, me, peer)?;
        }
        Ok(set)
    }

    /// Makes the bridge in host `bridge` (see
    /// [`bridged_pair`](Self::bridged_pair)) drop about `percent` % of the
    /// UDP and TCP frames it forwards (ARP passes), chosen at random per
    /// frame (nftables,
    /// bridge family: this reaches every path through the bridge, AF_XDP
    /// included, which `tc netem` cannot on kernels without it). `0`
    /// removes the rule; a new call replaces the previous rule.
    ///
    /// # Errors
    /// `percent` above 100, `nft` missing (package `nftables`, installed
    /// by `scripts/install-deps.sh`) or failing.
    pub fn drop_frames(&self, bridge: usize, percent: u32) -> io::Result<()> {
        if percent > 100 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot drop {percent} % of frames"),
            ));
        }
        // `add table` and `add chain` are idempotent; the flush removes a
        // previous rule.
        let script = format!(
            "add table bridge insane_loss\n\
             add chain bridge insane_loss forward {{ type filter hook forward priority 0; }}\n\
             flush chain bridge insane_loss forward\n{}",
            match percent {
                0 => String::new(),
                100 => "add rule bridge insane_loss forward meta l4proto { tcp, udp } drop\n"
                    .to_string(),
                _ => format!(
                    "add rule bridge insane_loss forward meta l4proto {{ tcp, udp }} numgen random mod 100 < {percent} drop\n"
                ),
            }
        );
        let mut cmd = self.command(bridge, "nft");
        cmd.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run nft (install nftables: scripts/install-deps.sh): {e}"),
            )
        })?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "nft in {} failed ({}): {}",
                self.netns(bridge),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Whether this machine can create test hosts: running as root, `ip`
    /// and `ethtool` present, a namespace can be created, entered and
    /// deleted. The result is computed once per process.
    ///
    /// # Errors
    /// A text naming what is missing.
    pub fn available() -> Result<(), String> {
        static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
        RESULT.get_or_init(check_available).clone()
    }

    /// The CI rule for tests that need test hosts: returns `true` when they
    /// are [`available`](Self::available); otherwise prints why and returns
    /// `false` (the test should return, i.e. skip), except under `CI=true`
    /// where it panics, so nothing silently stops being tested.
    ///
    /// # Panics
    /// Under CI when test hosts are unavailable.
    #[track_caller]
    pub fn require(test: &str) -> bool {
        match Self::available() {
            Ok(()) => true,
            Err(reason) if in_ci() => {
                panic!("{test}: network-namespace test hosts are required under CI: {reason}")
            }
            Err(reason) => {
                eprintln!("skipping {test}: {reason}");
                false
            }
        }
    }

    /// The hosts, by index.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The links, by index.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Name of host `host`'s namespace.
    ///
    /// # Panics
    /// When `host` is out of range.
    pub fn netns(&self, host: usize) -> &str {
        &self.hosts[host].netns
    }

    /// Host `host`'s end of link `link`.
    ///
    /// # Panics
    /// When the link does not exist or does not touch `host`.
    #[track_caller]
    pub fn iface(&self, host: usize, link: usize) -> &Iface {
        self.links[link]
            .end(host)
            .unwrap_or_else(|| panic!("host {host} is not on link {link}"))
    }

    /// The end of link `link` opposite to `host`.
    ///
    /// # Panics
    /// When the link does not exist or does not touch `host`.
    #[track_caller]
    pub fn peer(&self, host: usize, link: usize) -> &Iface {
        self.links[link]
            .peer_of(host)
            .unwrap_or_else(|| panic!("host {host} is not on link {link}"))
    }

    /// Runs `f` on a fresh thread inside host `host`'s namespace and returns
    /// its result; the thread ends afterwards. A panic in `f` is resumed
    /// here.
    ///
    /// # Panics
    /// When entering the namespace fails, or when `f` panics.
    #[track_caller]
    pub fn run_in<T, F>(&self, host: usize, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let netns = self.netns(host).to_string();
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("in-{netns}"))
                .spawn_scoped(s, move || {
                    enter_netns(&netns).unwrap_or_else(|e| panic!("{e}"));
                    f()
                })
                .expect("cannot spawn a thread");
            match handle.join() {
                Ok(v) => v,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Starts `f` on a new thread inside host `host`'s namespace and returns
    /// its handle (join it before the `TestHosts` drops; a thread still
    /// running keeps its namespace alive, unnamed, until it ends).
    ///
    /// # Panics
    /// When the thread cannot be spawned. A failure to enter the namespace
    /// panics the new thread (seen at `join`).
    pub fn spawn_in<T, F>(&self, host: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let netns = self.netns(host).to_string();
        std::thread::Builder::new()
            .name(format!("in-{netns}"))
            .spawn(move || {
                enter_netns(&netns).unwrap_or_else(|e| panic!("{e}"));
                f()
            })
            .expect("cannot spawn a thread")
    }

    /// A command that runs `program` inside host `host`'s namespace
    /// (`ip netns exec <ns> <program>`); add arguments and spawn it.
    /// Processes still running when the `TestHosts` drops are killed.
    pub fn command(&self, host: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.netns(host), program]);
        cmd
    }

    /// Runs `args` as a command inside host `host`'s namespace and returns
    /// its standard output.
    ///
    /// # Errors
    /// The command cannot start or exits unsuccessfully (the error holds
    /// the command line and its stderr).
    pub fn exec(&self, host: usize, args: &[&str]) -> io::Result<String> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        run_checked(self.command(host, program).args(rest))
    }

    /// Runs `ip -n <ns> <args>` for host `host` and returns its output.
    ///
    /// # Errors
    /// As [`exec`](Self::exec).
    pub fn ip(&self, host: usize, args: &[&str]) -> io::Result<String> {
        run_checked(Command::new("ip").args(["-n", self.netns(host)]).args(args))
    }

    /// Installs a permanent neighbour entry in `host` for its peer on
    /// `link` (peer address → peer MAC on `host`'s end).
    ///
    /// # Errors
    /// As [`ip`](Self::ip).
    pub fn add_neighbour(&self, host: usize, link: usize) -> io::Result<()> {
        self.permanent_neighbour(host, self.iface(host, link), self.peer(host, link))
    }

    /// A permanent neighbour entry in `host` on `me`: `peer`'s address →
    /// `peer`'s MAC.
    fn permanent_neighbour(&self, host: usize, me: &Iface, peer: &Iface) -> io::Result<()> {
        self.ip(
            host,
            &[
                "neigh",
                "replace",
                &peer.addr.to_string(),
                "lladdr",
                &peer.mac_string(),
                "dev",
                &me.name,
                "nud",
                "permanent",
            ],
        )
        .map(drop)
    }

    /// Writes `value` to `/proc/sys/<key>` inside host `host` (e.g.
    /// `net/ipv4/ip_forward`).
    ///
    /// # Errors
    /// The file cannot be written (error names the key and the host).
    pub fn write_sysctl(&self, host: usize, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        let netns = self.netns(host).to_string();
        self.run_in(host, || std::fs::write(&path, value))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write {path} in {netns}: {e}")))
    }

    /// Routes along the fewest hops from every host to every link's subnet
    /// it is not on.
    fn add_routes(&self) -> io::Result<()> {
        let n = self.hosts.len();
        for from in 0..n {
            // Breadth-first search: first[h] = (link, neighbour) of the
            // first hop from `from` towards `h`.
            let mut first: Vec<Option<(usize, usize)>> = vec![None; n];
            let mut seen = vec![false; n];
            seen[from] = true;
            let mut queue = std::collections::VecDeque::from([from]);
            while let Some(h) = queue.pop_front() {
                for link in &self.links {
                    if let Some(next) = link.peer_of(h).map(|i| i.host) {
                        if !seen[next] {
                            seen[next] = true;
                            first[next] = if h == from {
                                Some((link.index, next))
                            } else {
                                first[h]
                            };
                            queue.push_back(next);
                        }
                    }
                }
            }
            for link in &self.links {
                if link.end(from).is_some() {
                    continue;
                }
                // Go towards whichever end is reachable (both are, or none).
                let Some((via_link, via_host)) = first[link.a.host].or(first[link.b.host]) else {
                    continue;
                };
                let gateway = self.iface(via_host, via_link).addr;
                self.ip(
                    from,
                    &[
                        "route",
                        "replace",
                        &format!("10.77.{}.0/24", link.index + 1),
                        "via",
                        &gateway.to_string(),
                    ],
                )?;
            }
        }
        Ok(())
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for host in self.hosts.iter().rev() {
            // Processes started inside the namespace (by this test) would
            // keep it alive: kill them by pid first.
            if let Ok(pids) = run_checked(Command::new("ip").args(["netns", "pids", &host.netns])) {
                let me = std::process::id() as i32;
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .filter(|&p| p != me)
                {
                    // SAFETY: kill has no memory-safety preconditions; the
                    // pid belongs to a process in our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = run_checked(Command::new("ip").args(["netns", "del", &host.netns])) {
                eprintln!(
                    "insane-testhosts: cannot remove namespace {}: {e}",
                    host.netns
                );
            }
        }
    }
}

fn check_available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!(
            "not running as root (euid {euid}): network namespaces and veth pairs need \
             CAP_SYS_ADMIN and CAP_NET_ADMIN"
        ));
    }
    for (tool, arg) in [("ip", "-V"), ("ethtool", "--version")] {
        match Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("`{tool} {arg}` failed ({s})")),
            Err(e) => {
                return Err(format!(
                    "`{tool}` is not available ({e}); install iproute2/ethtool"
                ));
            }
        }
    }
    let probe = TestHosts::builder()
        .hosts(1)
        .build()
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    probe
        .ip(0, &["link", "show", "lo"])
        .map_err(|e| format!("cannot use a network namespace: {e}"))?;
    let netns = probe.netns(0).to_string();
    std::thread::spawn(move || enter_netns(&netns))
        .join()
        .map_err(|_| "a thread entering a namespace panicked".to_string())?
        .map_err(|e| format!("cannot enter a network namespace: {e}"))?;
    Ok(())
}

/// Runs `cmd`, returning stdout, or an error with the command line, exit
/// status and stderr.
fn run_checked(cmd: &mut Command) -> io::Result<String> {
    let line = format!("{cmd:?}");
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {line}: {e}")))?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "{line} failed ({status}): {}",
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

fn format_mac(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = parse_mac("02:0a:ff:00:10:9c").unwrap();
        assert_eq!(mac, [2, 10, 255, 0, 16, 156]);
        assert_eq!(format_mac(&mac), "02:0a:ff:00:10:9c");
        assert!(parse_mac("02:0a:ff:00:10").is_none());
        assert!(parse_mac("02:0a:ff:00:10:9c:11").is_none());
        assert!(parse_mac("zz:0a:ff:00:10:9c").is_none());
    }

    #[test]
    fn invalid_descriptions_are_rejected_before_creating_anything() {
        let err = TestHosts::builder()
            .hosts(2)
            .link(0, 2)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = TestHosts::builder().hosts(0).build().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = TestHosts::builder()
            .hosts(2)
            .link(1, 1)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
}
