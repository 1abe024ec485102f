//! The Environment Abstraction Layer: initialised once per process.

use std::ffi::{CStr, CString};
use std::io;
use std::os::raw::{c_char, c_int};
use std::sync::Mutex;

use insane_dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::types::PortInfo;

/// The initialised EAL of this process (see [`Eal::init`]).
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
    version: String,
}

/// The outcome of the one `rte_eal_init` of this process.
static EAL: Mutex<Option<Result<&'static Eal>>> = Mutex::new(None);

impl Eal {
    /// Initialises DPDK's EAL with `args` (without a program name: e.g.
    /// `["-l", "0", "--no-pci", "--no-huge", "-m", "256",
    /// "--file-prefix=app", "--vdev=net_ring0"]`), once per process.
    ///
    /// The PMD libraries this build links (`net_ring`, `net_memif`,
    /// `net_af_packet`, `net_null`) are also loaded with `-d`, because the
    /// linker drops them as unused; Debian loads them as plugins too, which
    /// resolves to the same objects.
    ///
    /// DPDK allows one EAL per process: a second call with the same
    /// arguments returns the first result (the same `&Eal`, or the same
    /// error, since a failed `rte_eal_init` cannot be retried reliably);
    /// with different arguments it is an error naming both. The calling
    /// thread becomes the EAL's main lcore: the EAL pins it to the first
    /// CPU of `-l` and gives it the mempool caches of that lcore.
    ///
    /// With `--no-shconf` (no shared configuration files, no secondary
    /// processes) the empty runtime directory the EAL still creates
    /// (`/var/run/dpdk/<file-prefix>` as root) is removed after
    /// initialisation, so short-lived processes leave nothing behind.
    ///
    /// A bad argument is an error (`rte_eal_init` prints its usage text and
    /// returns `EINVAL`), not an abort. A `--vdev` whose probe fails is
    /// only logged by the EAL; [`Port::open`](crate::Port::open) then
    /// reports the missing port.
    ///
    /// # Errors
    /// DPDK is not available in this build; an argument contains NUL; the
    /// EAL rejected the arguments or failed to start (the message has
    /// `rte_errno`'s text); the EAL was initialised with other arguments.
    ///
    /// # Examples
    /// ```no_run
    /// let eal = insane_dpdk::Eal::init([
    ///     "-l", "0", "--no-pci", "--no-huge", "-m", "256",
    ///     "--file-prefix=doc", "--vdev=net_ring0",
    /// ])?;
    /// assert_eq!(eal.port_count(), 1);
    /// # Ok::<(), insane_dpdk::Error>(())
    /// ```
    pub fn init<I, S>(args: I) -> Result<&'static Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        if !sys::AVAILABLE {
            return Err(Error::unavailable());
        }
        if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
            return Err(Error::other(
                io::ErrorKind::InvalidInput,
                format!("EAL argument {bad:?} contains a NUL byte"),
            ));
        }
        let mut state = EAL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = state.as_ref() {
            let first_args = match first {
                Ok(eal) => eal.args.clone(),
                Err(_) => FIRST_ARGS.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            };
            if first_args != args {
                return Err(Error::other(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "the DPDK EAL was already initialised in this process with {first_args:?} \
                         (DPDK allows one EAL per process); cannot initialise it with {args:?}"
                    ),
                ));
            }
            return first.clone();
        }
        *FIRST_ARGS.lock().unwrap_or_else(|p| p.into_inner()) = args.clone();
        let result = init_once(&args);
        *state = Some(result.clone());
        result
    }

    /// The EAL, when [`init`](Self::init) succeeded in this process.
    pub fn get() -> Option<&'static Eal> {
        match EAL.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(Ok(eal)) => Some(eal),
            _ => None,
        }
    }

    /// The arguments it was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// DPDK's version string (`DPDK 22.11.11`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Ports available (`rte_eth_dev_count_avail`).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (`self` exists only then).
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Information on every available port.
    ///
    /// # Errors
    /// A port's information cannot be read.
    pub fn ports(&self) -> Result<Vec<PortInfo>> {
        let mut out = Vec::new();
        let mut id: u16 = 0;
        // Port ids are below RTE_MAX_ETHPORTS; walk them all (bounded).
        while u32::from(id) < sys::RTE_MAX_ETHPORTS {
            // SAFETY: any id may be asked about.
            if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1 {
                out.push(crate::port::port_info(id)?);
            }
            id += 1;
        }
        Ok(out)
    }

    /// The id of the port named `name` (`net_memif0`, `net_ring0`).
    ///
    /// # Errors
    /// No port has that name.
    pub fn port_by_name(&self, name: &str) -> Result<u16> {
        let c = CString::new(name).map_err(|_| {
            Error::other(
                io::ErrorKind::InvalidInput,
                format!("port name {name:?} contains NUL"),
            )
        })?;
        let mut id = 0u16;
        // SAFETY: `c` is NUL-terminated; `id` is writable.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(Error::errno(format!("no DPDK port named {name:?}"), rc));
        }
        Ok(id)
    }

    /// Registers the calling (non-EAL) thread with the EAL, giving it an
    /// lcore id and with it the mempools' per-lcore caches (faster mbuf
    /// allocation and free). Threads that are not registered still work:
    /// their allocations and frees go to the pools' rings directly. The
    /// lcore id stays taken for the rest of the process, also after the
    /// thread exits (`rte_thread_unregister` is not wrapped here), so
    /// register long-lived core threads only; calling it again on the same
    /// thread returns the same id.
    ///
    /// # Errors
    /// No lcore id is free (`RTE_MAX_LCORE`), or the thread is already an
    /// EAL thread.
    pub fn register_thread(&self) -> Result<u32> {
        // SAFETY: the EAL is initialised; registration concerns only the
        // calling thread.
        let current = unsafe { sys::insane_rte_lcore_id() };
        if current != sys::LCORE_ID_ANY {
            return Ok(current);
        }
        // SAFETY: as above.
        if unsafe { sys::rte_thread_register() } != 0 {
            return Err(Error::rte_errno("rte_thread_register"));
        }
        // SAFETY: as above.
        Ok(unsafe { sys::insane_rte_lcore_id() })
    }
}

/// The arguments of the first `init` (also when it failed).
static FIRST_ARGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn init_once(args: &[String]) -> Result<&'static Eal> {
    let mut argv_owned: Vec<CString> = Vec::with_capacity(args.len() + 1 + 2 * 4);
    argv_owned.push(c"insane".to_owned());
    for a in args {
        // Checked by `init`: no NUL inside.
        argv_owned.push(CString::new(a.as_str()).map_err(|_| {
            Error::other(
                io::ErrorKind::InvalidInput,
                format!("EAL argument {a:?} contains NUL"),
            )
        })?);
    }
    for pmd in sys::PMD_LIBRARIES {
        if std::path::Path::new(pmd).exists() {
            argv_owned.push(c"-d".to_owned());
            // The path came from the file system: no NUL inside.
            if let Ok(p) = CString::new(*pmd) {
                argv_owned.push(p);
            }
        }
    }
    // The EAL keeps pointers into argv (it permutes it and may keep
    // option values), so argv and its strings live for the process.
    let strings: &'static mut [CString] = Box::leak(argv_owned.into_boxed_slice());
    let argv: &'static mut [*mut c_char] = Box::leak(
        strings
            .iter()
            .map(|s| s.as_ptr().cast_mut())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let argc = c_int::try_from(argv.len())
        .map_err(|_| Error::other(io::ErrorKind::InvalidInput, "too many EAL arguments"))?;
    // SAFETY: argv holds argc pointers to NUL-terminated strings, all
    // leaked (valid for the rest of the process); rte_eal_init is called
    // at most once per process (the EAL mutex is held).
    let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if rc < 0 {
        return Err(Error::rte_errno(format!(
            "rte_eal_init({}) failed",
            args.join(" ")
        )));
    }
    if args.iter().any(|a| a == "--no-shconf") {
        // Without shared config files the runtime directory
        // (/var/run/dpdk/<file-prefix>) stays empty but is still created,
        // and DPDK never removes it: remove it now (only if empty).
        // SAFETY: the EAL is initialised; a NUL-terminated path comes back.
        let dir = unsafe { sys::rte_eal_get_runtime_dir() };
        if !dir.is_null() {
            // SAFETY: as above; copied at once.
            let dir = unsafe { CStr::from_ptr(dir) }
                .to_string_lossy()
                .into_owned();
            let _ = std::fs::remove_dir(dir);
        }
    }
    // SAFETY: returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(sys::insane_rte_version()) }
        .to_string_lossy()
        .into_owned();
    Ok(Box::leak(Box::new(Eal {
        args: args.to_vec(),
        version,
    })))
}
