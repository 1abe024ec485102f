//! Channels: INSANE's publish/subscribe model. A [`Session`] (one per
//! process, usually) holds channels named by a `u32` id; applications
//! *send* through a [`Publisher`] ([`Session::publisher`]) and *receive*
//! from a [`Subscriber`] ([`Session::subscriber`]). Every message
//! published on channel `C` is received by every subscriber of `C` — in
//! this process, and on every peer host listed in the session's
//! configuration.
//!
//! ```
//! use insane_net::qos::{Qos, Session, SessionConfig, channel_id};
//! # use std::sync::Arc;
//! # let rt = insane_runtime::runtime::Runtime::builder()
//! #     .cores(1)
//! #     .on_core_start(Arc::new(|_| {
//! #         insane_uring::install_on_current_core(&Default::default())
//! #             .or_else(|_| insane_epoll::install_on_current_core())
//! #     }))
//! #     .build()?;
//! # rt.block_on(async {
//! let session = Session::new(SessionConfig::local())?;
//! let topic = channel_id("sensors/temperature");
//! let mut a = session.subscriber(topic, Qos::default());
//! let mut b = session.subscriber(topic, Qos::default());
//! let mut publisher = session.publisher(topic, Qos::default());
//!
//! let mut buf = publisher.buffer().await;
//! buf.extend_from_slice(b"21.5")?;
//! publisher.send(buf).await?;
//!
//! let (ma, mb) = (a.recv().await?, b.recv().await?);
//! assert_eq!(&ma[..], b"21.5");
//! assert_eq!(ma.as_ptr(), mb.as_ptr()); // one buffer, shared: no copy
//! # std::io::Result::Ok(())
//! # })?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Names: INSANE's sources and sinks
//!
//! INSANE names a channel's ends from the application's side: a *source*
//! is where the application emits messages, a *sink* is where it receives
//! them. Rust's `futures` names them from the data's side, the other way
//! round: a `Sink` is what you send into, a `Stream` what you read from.
//! So that neither reading can mislead, the ends are named after what the
//! application does with them:
//!
//! | INSANE | here | made by | implements |
//! |---|---|---|---|
//! | *source*: the application emits | [`Publisher`] | [`Session::publisher`] | `futures::Sink<TxBuf>` |
//! | *sink*: the application receives | [`Subscriber`] | [`Session::subscriber`] | `futures::Stream` |
//!
//! They used to be called `Sink` (made by `Session::sink`: the sending
//! end, named in `futures`' terms) and `Source` (`Session::source`: the
//! receiving end), which reads backwards to anyone who knows INSANE. The
//! old names ([`Sink`], [`Source`], [`Session::sink`],
//! [`Session::source`]) remain for one release as deprecated aliases; the
//! changelog has the full list.
//!
//! # Channel ids
//!
//! Ids are `u32`. [`channel_id`] maps a topic string to an id with the
//! 32-bit FNV-1a hash of its UTF-8 bytes (offset basis `0x811c9dc5`,
//! prime `0x01000193`): stable across processes, hosts, versions and
//! architectures, so peers agree on ids without coordination. Distinct
//! topics may collide (birthday bound: about 1 in 10⁵ for 300 topics);
//! applications with many topics should check their set once.
//!
//! # Local delivery: by reference
//!
//! [`Publisher::buffer`] lends a buffer from the publisher's pool; the
//! application writes the payload in place and [`Publisher::send`] turns
//! it, without a copy, into an [`RxBuf`] whose storage is shared
//! ([`RxBuf::share`]) by every local subscriber's copy of the message: N
//! subscribers hold N references to one buffer, which returns to the
//! publisher's pool when the last drops. Subscribers may live on any
//! core: each subscriber has its own thread-safe bounded queue; pushing
//! into it wakes the receiving task on its core. Messages from one
//! publisher arrive at each subscriber in the order sent. A message sent
//! in this process tells `0.0.0.0:0` as its [`peer`](RxBuf::peer); one
//! from a peer host, the address it was sent from.
//!
//! # Queues: backpressure or drop-oldest, by the subscriber's QoS
//!
//! Each subscriber has a bounded queue ([`SessionConfig::queue_depth`],
//! default 256 messages). What happens when it is full is decided by the
//! *subscriber's* QoS:
//!
//! - **Reliable** subscribers never lose a message: a sender (a local
//!   publisher's `send`, or the session's receiver of a peer's messages)
//!   waits until the subscriber made room. A slow reliable subscriber
//!   therefore slows down every publisher of its channel (and, for
//!   messages from peers, TCP flow control slows the peer's publisher). A
//!   task that publishes on a channel must not also be the one that
//!   drains a reliable subscriber of that channel, or a full queue makes
//!   it wait for itself.
//! - **Best-effort** subscribers never slow anyone down: when full, the
//!   oldest queued message is dropped to make room, and counted
//!   ([`Subscriber::dropped`]).
//!
//! # Peers: other hosts
//!
//! A session with a [`listen`](SessionConfig::listen) address or
//! [`peers`](SessionConfig::peers) binds, on the core that created it, a
//! best-effort [`Endpoint`] (UDP) and a reliable one (TCP) on the same
//! port, and delivers the messages peers send there to its local
//! subscribers. Every message sent through a publisher also goes to every
//! peer through an endpoint of the *publisher's* QoS (bound on first use,
//! on the core that sends): best-effort publishers send one UDP datagram
//! per peer, reliable publishers a framed message over TCP (per peer:
//! once, intact, in order). On the wire a message is an 8-byte header —
//! the channel id and the publisher's sequence number, both `u32`
//! big-endian — then the payload. The payload is copied once per peer
//! into the endpoint's send buffer (local subscribers still share the
//! original). Peer hosts are named by their session's `listen` address;
//! see [`ChannelsConfig`](crate::config::ChannelsConfig) for the
//! `[channels]` section of `insane.toml`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use insane_runtime::runtime::CoreHandle;
use insane_runtime::task::{JoinHandle, spawn};

use super::endpoint::Endpoint;
use super::rxbuf::RxBuf;
use super::transport::{lock, udp_payload_limit};
use super::txbuf::{Pool, TxBuf};
use super::{Qos, Reliability};
use crate::config::Config;

/// Bytes in front of every message on the wire: channel id and sequence
/// number, `u32` big-endian each.
pub const WIRE_HEADER: usize = 8;

/// The id of channel `topic`: the 32-bit FNV-1a hash of its UTF-8 bytes
/// (offset basis `0x811c9dc5`, prime `0x01000193`). Stable everywhere;
/// see the [module docs](self#channel-ids).
///
/// ```
/// use insane_net::qos::channel_id;
/// assert_eq!(channel_id(""), 0x811c_9dc5);
/// assert_eq!(channel_id("a"), 0xe40c_292c);
/// assert_eq!(channel_id("foobar"), 0xbf9c_f968);
/// ```
pub const fn channel_id(topic: &str) -> u32 {
    let bytes = topic.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

// ---- configuration -------------------------------------------------------

/// What a [`Session`] needs: where to listen for peers' messages, the
/// peers, and queue sizes.
///
/// ```
/// use insane_net::qos::SessionConfig;
/// let local = SessionConfig::local();
/// assert!(local.listen.is_none() && local.peers.is_empty());
/// let networked = SessionConfig {
///     listen: Some("127.0.0.1:7200".parse().unwrap()),
///     peers: vec!["127.0.0.1:7201".parse().unwrap()],
///     ..SessionConfig::local()
/// };
/// assert_eq!(networked.queue_depth, 256);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The address peers send to (UDP for best-effort, TCP for reliable
    /// channels, both on this port; port 0 picks a free one). `None`
    /// with no peers: local delivery only; `None` with peers: an
    /// ephemeral port on the unspecified address.
    pub listen: Option<SocketAddr>,
    /// Peer hosts' `listen` addresses: every message sent through a
    /// publisher of this session also goes to each.
    pub peers: Vec<SocketAddr>,
    /// Messages each subscriber queues at most (default 256).
    pub queue_depth: usize,
    /// Send buffers each publisher lends at most at a time (default
    /// 1024). Local subscribers hold a sent buffer until they drop the
    /// message, so this bounds the messages of one publisher alive in the
    /// process. (Called `sink_buffers` before publishers were renamed; see
    /// the [module docs](self#names-insanes-sources-and-sinks).)
    pub publisher_buffers: usize,
}

impl SessionConfig {
    /// Local delivery only, default sizes.
    pub fn local() -> Self {
        Self {
            listen: None,
            peers: Vec::new(),
            queue_depth: 256,
            publisher_buffers: 1024,
        }
    }
}

impl Default for SessionConfig {
    /// [`SessionConfig::local`].
    fn default() -> Self {
        Self::local()
    }
}

impl From<&Config> for SessionConfig {
    /// The `[channels]` section of the configuration, default sizes.
    ///
    /// ```
    /// use insane_net::config::Config;
    /// use insane_net::qos::SessionConfig;
    /// let text = "[channels]\nlisten = \"0.0.0.0:7200\"\npeers = [\"10.0.0.2:7200\"]\n";
    /// let config = Config::from_toml_str(text, "insane.toml").unwrap();
    /// let session = SessionConfig::from(&config);
    /// assert_eq!(session.peers, vec!["10.0.0.2:7200".parse().unwrap()]);
    /// ```
    fn from(config: &Config) -> Self {
        Self {
            listen: config.channels.listen,
            peers: config.channels.peers.clone(),
            ..Self::local()
        }
    }
}

// ---- per-subscriber queues -------------------------------------------------

/// One subscriber's bounded queue; thread-safe, so senders on any core push
/// and wake the receiving task on its core.
struct Queue {
    reliable: bool,
    depth: usize,
    state: Mutex<QueueState>,
    dropped: AtomicU64,
}

struct QueueState {
    items: VecDeque<RxBuf>,
    closed: bool,
    receiver: Option<Waker>,
    senders: Vec<Waker>,
}

impl Queue {
    fn new(reliable: bool, depth: usize) -> Self {
        Self {
            reliable,
            depth: depth.max(1),
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(depth.clamp(1, 1024)),
                closed: false,
                receiver: None,
                senders: Vec::new(),
            }),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a reference to `msg`; a full reliable queue waits.
    fn poll_push(&self, cx: &mut Context<'_>, msg: &mut RxBuf) -> Poll<()> {
        let mut st = lock(&self.state);
        if st.closed {
            return Poll::Ready(());
        }
        let mut evicted = None;
        if st.items.len() >= self.depth {
            if self.reliable {
                if !st.senders.iter().any(|w| w.will_wake(cx.waker())) {
                    st.senders.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            evicted = st.items.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        st.items.push_back(msg.share());
        let receiver = st.receiver.take();
        drop(st);
        drop(evicted);
        if let Some(w) = receiver {
            w.wake();
        }
        Poll::Ready(())
    }

    fn wake_senders(mut st: MutexGuard<'_, QueueState>) {
        if st.senders.is_empty() {
            return;
        }
        let senders = std::mem::take(&mut st.senders);
        drop(st);
        for w in senders {
            w.wake();
        }
    }

    fn try_pop(&self) -> Option<RxBuf> {
        let mut st = lock(&self.state);
        let msg = st.items.pop_front()?;
        Self::wake_senders(st);
        Some(msg)
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<RxBuf> {
        let mut st = lock(&self.state);
        match st.items.pop_front() {
            Some(msg) => {
                Self::wake_senders(st);
                Poll::Ready(msg)
            }
            None => {
                st.receiver = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// No more messages: pushes are discarded, waiting senders released.
    fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        let items = std::mem::take(&mut st.items);
        Self::wake_senders(st);
        drop(items);
    }
}

/// The subscribers of one channel, as a snapshot replaced on change so
/// a sender clones one `Arc` per message.
#[derive(Default)]
struct Channel {
    subscribers: Mutex<Arc<Vec<Arc<Queue>>>>,
}

impl Channel {
    fn targets(&self) -> Arc<Vec<Arc<Queue>>> {
        lock(&self.subscribers).clone()
    }

    fn add(&self, q: Arc<Queue>) {
        let mut subscribers = lock(&self.subscribers);
        let mut next = Vec::clone(&subscribers);
        next.push(q);
        *subscribers = Arc::new(next);
    }

    fn remove(&self, q: &Arc<Queue>) {
        let mut subscribers = lock(&self.subscribers);
        let next: Vec<_> = subscribers
            .iter()
            .filter(|s| !Arc::ptr_eq(s, q))
            .cloned()
            .collect();
        *subscribers = Arc::new(next);
    }
}

/// The session's channels by id.
#[derive(Default)]
struct Registry {
    channels: Mutex<HashMap<u32, Arc<Channel>>>,
}

impl Registry {
    fn channel(&self, id: u32) -> Arc<Channel> {
        lock(&self.channels).entry(id).or_default().clone()
    }

    fn existing(&self, id: u32) -> Option<Arc<Channel>> {
        lock(&self.channels).get(&id).cloned()
    }
}

/// One message on its way into the queues of its channel's subscribers.
struct Fanout {
    msg: RxBuf,
    targets: Arc<Vec<Arc<Queue>>>,
    next: usize,
}

impl Fanout {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(q) = self.targets.get(self.next) {
            if q.poll_push(cx, &mut self.msg).is_pending() {
                return Poll::Pending;
            }
            self.next += 1;
        }
        Poll::Ready(())
    }
}

// ---- the session -------------------------------------------------------------

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

enum NetState {
    /// Local only.
    None,
    Starting(Vec<Waker>),
    Ready {
        addr: SocketAddr,
        tasks: Vec<JoinHandle<()>>,
    },
    Failed(io::ErrorKind, String),
    Closed,
}

struct SessionInner {
    config: SessionConfig,
    /// `config.peers`, shared with every message in flight to them.
    peers: Arc<[SocketAddr]>,
    registry: Arc<Registry>,
    net: Arc<Mutex<NetState>>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let mut net = lock(&self.net);
        if let NetState::Ready { tasks, .. } = &*net {
            for t in tasks {
                t.abort();
            }
        }
        *net = NetState::Closed;
    }
}

/// A pub/sub session: the channels of this process and their peers on
/// other hosts. See the [module docs](self).
///
/// Cheap to clone (a reference); `Send + Sync`. Its network receivers
/// stop when the session and all its publishers and subscribers are
/// dropped.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl Session {
    /// A session. With a `listen` address or peers, it starts listening
    /// for peers' messages in the background on the current core
    /// ([`local_addr`](Self::local_addr) waits for that and reports its
    /// errors); that needs an insane runtime with an I/O driver.
    ///
    /// ```no_run
    /// use insane_net::config::Config;
    /// use insane_net::qos::{Session, SessionConfig};
    /// # async fn f() -> std::io::Result<()> {
    /// let session = Session::new(SessionConfig::from(&Config::load()?))?;
    /// println!("peers send to {:?}", session.local_addr().await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A networked session created outside an insane runtime.
    pub fn new(config: SessionConfig) -> io::Result<Session> {
        let networked = config.listen.is_some() || !config.peers.is_empty();
        let net = Arc::new(Mutex::new(if networked {
            NetState::Starting(Vec::new())
        } else {
            NetState::None
        }));
        let registry = Arc::new(Registry::default());
        if networked {
            if CoreHandle::current().is_none() {
                return Err(io::Error::other(
                    "a session with peers or a listen address must be created inside an insane runtime",
                ));
            }
            let listen = config.listen.unwrap_or_else(|| {
                let ip = match config.peers.first() {
                    Some(SocketAddr::V6(_)) => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
                    _ => IpAddr::from(Ipv4Addr::UNSPECIFIED),
                };
                SocketAddr::new(ip, 0)
            });
            let (net2, registry2) = (net.clone(), registry.clone());
            spawn(async move {
                let started = start_network(listen, registry2).await;
                let mut st = lock(&net2);
                let waiters = match std::mem::replace(&mut *st, NetState::None) {
                    NetState::Starting(w) => w,
                    other => {
                        // Closed while starting: stop what was started.
                        if let Ok((_, tasks)) = &started {
                            tasks.iter().for_each(JoinHandle::abort);
                        }
                        *st = other;
                        return;
                    }
                };
                *st = match started {
                    Ok((addr, tasks)) => NetState::Ready { addr, tasks },
                    Err(e) => NetState::Failed(e.kind(), e.to_string()),
                };
                drop(st);
                waiters.into_iter().for_each(Waker::wake);
            });
        }
        Ok(Session {
            inner: Arc::new(SessionInner {
                peers: config.peers.clone().into(),
                config,
                registry,
                net,
            }),
        })
    }

    /// The address peers send to, once the session listens: `None` for a
    /// local-only session.
    ///
    /// ```no_run
    /// # async fn f(session: insane_net::qos::Session) -> std::io::Result<()> {
    /// if let Some(addr) = session.local_addr().await? {
    ///     println!("list {addr} in the peers' [channels] peers");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Binding the listening endpoints failed (the error says why).
    pub async fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        poll_fn(|cx| {
            let mut st = lock(&self.inner.net);
            match &mut *st {
                NetState::None => Poll::Ready(Ok(None)),
                NetState::Starting(waiters) => {
                    waiters.push(cx.waker().clone());
                    Poll::Pending
                }
                NetState::Ready { addr, .. } => Poll::Ready(Ok(Some(*addr))),
                NetState::Failed(kind, msg) => Poll::Ready(Err(io::Error::new(*kind, msg.clone()))),
                NetState::Closed => Poll::Ready(Err(io::Error::other("session closed"))),
            }
        })
        .await
    }

    /// The session's configuration.
    ///
    /// ```
    /// # use insane_net::qos::{Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.config().queue_depth, 256);
    /// ```
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// A new subscriber of channel `channel` (INSANE's *sink*: where the
    /// application receives): it receives every message published on the
    /// channel from now on, by any publisher of this session or of a
    /// peer. `qos.reliability` picks what a full queue does
    /// (backpressure or drop-oldest, see the [module docs](self)).
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig, channel_id};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let subscriber = session.subscriber(channel_id("logs"), Qos::builder().best_effort().build());
    /// assert_eq!(subscriber.channel(), channel_id("logs"));
    /// ```
    pub fn subscriber(&self, channel: u32, qos: Qos) -> Subscriber {
        let queue = Arc::new(Queue::new(
            qos.reliability == Reliability::Reliable,
            self.inner.config.queue_depth,
        ));
        let chan = self.inner.registry.channel(channel);
        chan.add(queue.clone());
        Subscriber {
            id: channel,
            qos,
            queue,
            channel: chan,
            _session: self.inner.clone(),
        }
    }

    /// A new publisher of channel `channel` (INSANE's *source*: where the
    /// application emits): what is sent through it reaches every
    /// subscriber of the channel, here and on the peers. `qos` picks the
    /// transport to the peers and the largest message
    /// ([`max_payload`](Publisher::max_payload)).
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig, channel_id};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let publisher = session.publisher(channel_id("logs"), Qos::default());
    /// assert_eq!(publisher.max_payload(), (16 << 20) - 8);
    /// ```
    pub fn publisher(&self, channel: u32, qos: Qos) -> Publisher {
        let cfg = &self.inner.config;
        let max_payload = match qos.reliability {
            Reliability::BestEffort => {
                let limit =
                    cfg.peers
                        .iter()
                        .map(udp_payload_limit)
                        .min()
                        .unwrap_or(udp_payload_limit(&SocketAddr::from((
                            Ipv4Addr::LOCALHOST,
                            0,
                        ))));
                limit - WIRE_HEADER
            }
            Reliability::Reliable => super::TransportConfig::default().max_message - WIRE_HEADER,
        };
        Publisher {
            id: channel,
            qos,
            channel: self.inner.registry.channel(channel),
            pool: Pool::new(cfg.publisher_buffers, 256, 64 << 10),
            max_payload,
            seq: 0,
            remote: Arc::new(Mutex::new(None)),
            pending: None,
            session: self.inner.clone(),
        }
    }

    /// Renamed [`subscriber`](Self::subscriber) (the receiving end); see
    /// the [module docs](self#names-insanes-sources-and-sinks).
    #[deprecated(
        note = "renamed to `Session::subscriber` (the receiving end, INSANE's sink); the old name is kept for one release only"
    )]
    pub fn source(&self, channel: u32, qos: Qos) -> Subscriber {
        self.subscriber(channel, qos)
    }

    /// Renamed [`publisher`](Self::publisher) (the sending end); see the
    /// [module docs](self#names-insanes-sources-and-sinks).
    #[deprecated(
        note = "renamed to `Session::publisher` (the sending end, INSANE's source); the old name is kept for one release only"
    )]
    pub fn sink(&self, channel: u32, qos: Qos) -> Publisher {
        self.publisher(channel, qos)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Binds the listening endpoints (UDP and TCP on one port) and starts a
/// receiver task for each.
async fn start_network(
    listen: SocketAddr,
    registry: Arc<Registry>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let best_effort = Qos::builder().best_effort().build();
    let mut attempts = 0;
    let (udp, tcp) = loop {
        let udp = Endpoint::bind(listen, best_effort).await?;
        let addr = udp.local_addr()?;
        match Endpoint::bind(addr, Qos::default()).await {
            Ok(tcp) => break (udp, tcp),
            // An ephemeral UDP port whose TCP twin is taken: try another.
            Err(e) if listen.port() == 0 && attempts < 16 => {
                attempts += 1;
                tracing::debug!("channel listener on {addr}: {e}; retrying");
            }
            Err(e) => return Err(e),
        }
    };
    let addr = udp.local_addr()?;
    let tasks = vec![
        spawn(receive_loop(udp, registry.clone())),
        spawn(receive_loop(tcp, registry)),
    ];
    Ok((addr, tasks))
}

/// Delivers the messages peers send to `ep` to the local subscribers.
async fn receive_loop(ep: Endpoint, registry: Arc<Registry>) {
    loop {
        let mut msg = match ep.recv().await {
            Ok(msg) => msg,
            Err(e) => {
                // A reliable connection's failure is reported once; the
                // endpoint stays usable.
                tracing::debug!("channel receiver on {:?}: {e}", ep.local_addr());
                insane_runtime::task::yield_now().await;
                continue;
            }
        };
        if msg.len() < WIRE_HEADER {
            tracing::debug!("channel message of {} bytes without header", msg.len());
            continue;
        }
        let id = u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]]);
        msg.advance(WIRE_HEADER);
        let Some(channel) = registry.existing(id) else {
            continue;
        };
        let mut fanout = Fanout {
            msg,
            targets: channel.targets(),
            next: 0,
        };
        poll_fn(|cx| fanout.poll(cx)).await;
    }
}

// ---- subscribers -------------------------------------------------------------

/// The receiving end of a channel (INSANE's *sink*): `recv().await` or
/// a [`Stream`] of messages. Made by [`Session::subscriber`]. See the
/// [module docs](self).
///
/// The stream never ends (new publishers may appear at any time).
/// `Send`: a subscriber may move to, and receive on, any core.
pub struct Subscriber {
    id: u32,
    qos: Qos,
    queue: Arc<Queue>,
    channel: Arc<Channel>,
    _session: Arc<SessionInner>,
}

impl Subscriber {
    /// The next message of the channel.
    ///
    /// ```no_run
    /// # async fn f(mut subscriber: insane_net::qos::Subscriber) -> std::io::Result<()> {
    /// let msg = subscriber.recv().await?;
    /// println!("{} bytes from {}", msg.len(), msg.peer());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// None today (the `Result` leaves room for transport errors).
    pub async fn recv(&mut self) -> io::Result<RxBuf> {
        Ok(poll_fn(|cx| self.queue.poll_pop(cx)).await)
    }

    /// A queued message now, if there is one.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let mut subscriber = session.subscriber(1, Qos::default());
    /// assert!(subscriber.try_recv().is_none());
    /// ```
    pub fn try_recv(&mut self) -> Option<RxBuf> {
        self.queue.try_pop()
    }

    /// Messages dropped from this subscriber's full queue (best-effort
    /// subscribers only; reliable subscribers make senders wait instead).
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let subscriber = session.subscriber(1, Qos::builder().best_effort().build());
    /// assert_eq!(subscriber.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting in the queue.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.subscriber(1, Qos::default()).queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The channel id.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.subscriber(7, Qos::default()).channel(), 7);
    /// ```
    pub fn channel(&self) -> u32 {
        self.id
    }

    /// The QoS it was created with.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.subscriber(7, Qos::default()).qos(), Qos::default());
    /// ```
    pub fn qos(&self) -> Qos {
        self.qos
    }
}

impl Stream for Subscriber {
    type Item = io::Result<RxBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.queue.poll_pop(cx).map(|m| Some(Ok(m)))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.channel.remove(&self.queue);
        self.queue.close();
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("channel", &self.id)
            .field("qos", &self.qos)
            .field("queued", &self.queued())
            .field("dropped", &self.dropped())
            .finish()
    }
}

// ---- publishers --------------------------------------------------------------

/// A message being delivered: to the local subscribers, then to the peers.
struct Delivery {
    local: Fanout,
    /// In a `Mutex` only to make `Publisher` `Sync` (polled through
    /// `get_mut`, never locked).
    remote: Option<Mutex<BoxFuture<io::Result<()>>>>,
}

/// The sending end of a channel (INSANE's *source*):
/// [`buffer`](Self::buffer), write the payload in place,
/// [`send`](Self::send); or use it as a `futures::Sink<TxBuf>`. Made by
/// [`Session::publisher`]. See the [module docs](self).
///
/// `Send + Sync`: a publisher may move to, and send from, any core.
///
/// With `futures::SinkExt` in scope, `publisher.buffer()` on an owned
/// `Publisher` resolves to `SinkExt::buffer` (which takes the publisher
/// by value); write `Publisher::buffer(&publisher)` or
/// `(&publisher).buffer()` there.
pub struct Publisher {
    id: u32,
    qos: Qos,
    channel: Arc<Channel>,
    pool: Pool,
    max_payload: usize,
    seq: u32,
    /// The endpoint to the peers, bound on first use.
    remote: Arc<Mutex<Option<Arc<Endpoint>>>>,
    pending: Option<Delivery>,
    session: Arc<SessionInner>,
}

impl Publisher {
    /// Lends a buffer for the next message: empty, with
    /// [`capacity`](TxBuf::capacity) = [`max_payload`](Self::max_payload).
    /// Waits while all of the publisher's buffers are in use (held by
    /// subscribers or applications that did not drop their messages
    /// yet).
    ///
    /// ```no_run
    /// # async fn f(mut publisher: insane_net::qos::Publisher) -> std::io::Result<()> {
    /// let mut buf = publisher.buffer().await;
    /// buf.extend_from_slice(b"hello")?;
    /// publisher.send(buf).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn buffer(&self) -> TxBuf {
        poll_fn(|cx| self.pool.poll_lend(cx, 0, self.max_payload)).await
    }

    /// A buffer now, or `None` when all are in use.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let publisher = session.publisher(1, Qos::default());
    /// assert!(publisher.try_buffer().is_some());
    /// ```
    pub fn try_buffer(&self) -> Option<TxBuf> {
        self.pool.try_lend(0, self.max_payload)
    }

    /// Sends `buf` (its `len()` bytes) to every subscriber of the
    /// channel: local ones by reference, peers through the publisher's
    /// endpoint. Waits while a reliable subscriber's queue is full, and
    /// for the peers' sends.
    ///
    /// Cancel safety: dropping the future may leave the message
    /// delivered to some subscribers only; the next `send` (or `flush`)
    /// completes that delivery first.
    ///
    /// ```no_run
    /// # async fn f(mut publisher: insane_net::qos::Publisher) -> std::io::Result<()> {
    /// let mut buf = publisher.buffer().await;
    /// buf.extend_from_slice(b"hello")?;
    /// publisher.send(buf).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A message over [`max_payload`](Self::max_payload) (`InvalidInput`),
    /// or a peer's send failing (local subscribers got the message).
    pub async fn send(&mut self, buf: TxBuf) -> io::Result<()> {
        poll_fn(|cx| self.poll_deliver(cx)).await?;
        self.start(buf)?;
        poll_fn(|cx| self.poll_deliver(cx)).await
    }

    /// Completes the delivery in flight, if any.
    fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(d) = &mut self.pending else {
            return Poll::Ready(Ok(()));
        };
        let local = d.local.poll(cx);
        if let Some(remote) = &mut d.remote {
            let remote = remote.get_mut().unwrap_or_else(|p| p.into_inner());
            match remote.as_mut().poll(cx) {
                Poll::Ready(res) => {
                    d.remote = None;
                    if let Err(e) = res {
                        if local.is_ready() {
                            self.pending = None;
                        }
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if local.is_pending() {
            return Poll::Pending;
        }
        self.pending = None;
        Poll::Ready(Ok(()))
    }

    /// Starts delivering `buf` (nothing may be in flight).
    fn start(&mut self, buf: TxBuf) -> io::Result<()> {
        debug_assert!(self.pending.is_none());
        if buf.len() > self.max_payload {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message of {} bytes over this publisher's limit of {} bytes",
                    buf.len(),
                    self.max_payload
                ),
            ));
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let (data, headroom, pool) = buf.into_parts();
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut msg = RxBuf::from_parts(data, headroom, unspecified, pool);
        let remote = if self.session.peers.is_empty() {
            None
        } else {
            let payload = msg.share();
            let peers = self.session.peers.clone();
            let (qos, id, slot) = (self.qos, self.id, self.remote.clone());
            let fut: BoxFuture<io::Result<()>> = Box::pin(async move {
                let ep = remote_endpoint(&slot, qos, peers[0]).await?;
                let mut header = [0u8; WIRE_HEADER];
                header[..4].copy_from_slice(&id.to_be_bytes());
                header[4..].copy_from_slice(&seq.to_be_bytes());
                for &peer in peers.iter() {
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&header)?;
                    out.extend_from_slice(&payload)?;
                    ep.send_to(out, peer).await?;
                }
                Ok(())
            });
            Some(Mutex::new(fut))
        };
        self.pending = Some(Delivery {
            local: Fanout {
                msg,
                targets: self.channel.targets(),
                next: 0,
            },
            remote,
        });
        Ok(())
    }

    /// The largest message: 65499 bytes for best-effort publishers (a UDP
    /// datagram over IPv4 less the channel header), 16 MiB - 8 for
    /// reliable ones.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// let publisher = session.publisher(1, Qos::builder().best_effort().build());
    /// assert_eq!(publisher.max_payload(), 65_499);
    /// ```
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The channel id.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.publisher(7, Qos::default()).channel(), 7);
    /// ```
    pub fn channel(&self) -> u32 {
        self.id
    }

    /// The QoS it was created with.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert_eq!(session.publisher(7, Qos::default()).qos(), Qos::default());
    /// ```
    pub fn qos(&self) -> Qos {
        self.qos
    }

    /// Why the transport to the peers is what it is
    /// ([`Endpoint::explain`]), once the first message went to them;
    /// `None` before, or without peers.
    ///
    /// ```
    /// # use insane_net::qos::{Qos, Session, SessionConfig};
    /// let session = Session::new(SessionConfig::local()).unwrap();
    /// assert!(session.publisher(7, Qos::default()).explain().is_none());
    /// ```
    pub fn explain(&self) -> Option<String> {
        lock(&self.remote)
            .as_ref()
            .map(|ep| ep.explain().to_owned())
    }
}

/// The publisher's endpoint to the peers, bound with its QoS on first use.
async fn remote_endpoint(
    slot: &Mutex<Option<Arc<Endpoint>>>,
    qos: Qos,
    first_peer: SocketAddr,
) -> io::Result<Arc<Endpoint>> {
    if let Some(ep) = lock(slot).clone() {
        return Ok(ep);
    }
    let any = match first_peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let ep = Arc::new(Endpoint::bind(any, qos).await?);
    *lock(slot) = Some(ep.clone());
    Ok(ep)
}

impl futures_sink::Sink<TxBuf> for Publisher {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_deliver(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: TxBuf) -> io::Result<()> {
        let this = self.get_mut();
        if this.pending.is_some() {
            return Err(io::Error::other("start_send without poll_ready"));
        }
        this.start(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_deliver(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_deliver(cx)
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.id)
            .field("qos", &self.qos)
            .field("max_payload", &self.max_payload)
            .finish()
    }
}

// ---- the old names ---------------------------------------------------------

/// Renamed [`Publisher`] (the sending end, INSANE's *source*); see the
/// [module docs](self#names-insanes-sources-and-sinks).
#[deprecated(
    note = "renamed to `Publisher` (the sending end, INSANE's source); the old name is kept for one release only"
)]
pub type Sink = Publisher;

/// Renamed [`Subscriber`] (the receiving end, INSANE's *sink*); see the
/// [module docs](self#names-insanes-sources-and-sinks).
#[deprecated(
    note = "renamed to `Subscriber` (the receiving end, INSANE's sink); the old name is kept for one release only"
)]
pub type Source = Subscriber;

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(AtomicU64);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn msg(pool: &Pool, byte: u8) -> RxBuf {
        let mut data = pool.try_take().unwrap();
        data.push(byte);
        RxBuf::from_parts(data, 0, "0.0.0.0:0".parse().unwrap(), Some(pool.clone()))
    }

    #[test]
    fn best_effort_queue_drops_oldest_and_counts() {
        let pool = Pool::new(8, 1, 1);
        let q = Queue::new(false, 2);
        let waker = Waker::from(Arc::new(Count(AtomicU64::new(0))));
        let mut cx = Context::from_waker(&waker);
        for b in 0..4u8 {
            let mut m = msg(&pool, b);
            assert!(q.poll_push(&mut cx, &mut m).is_ready());
        }
        assert_eq!(q.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.try_pop().map(|m| m[0]), Some(2));
        assert_eq!(q.try_pop().map(|m| m[0]), Some(3));
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn reliable_queue_makes_the_sender_wait() {
        let pool = Pool::new(8, 1, 1);
        let q = Queue::new(true, 1);
        let count = Arc::new(Count(AtomicU64::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut a, mut b) = (msg(&pool, 1), msg(&pool, 2));
        assert!(q.poll_push(&mut cx, &mut a).is_ready());
        assert!(q.poll_push(&mut cx, &mut b).is_pending());
        assert_eq!(q.try_pop().map(|m| m[0]), Some(1));
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "sender woken");
        assert!(q.poll_push(&mut cx, &mut b).is_ready());
        assert_eq!(q.dropped.load(Ordering::Relaxed), 0);
    }
}
