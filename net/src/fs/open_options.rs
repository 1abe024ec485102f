//! [`OpenOptions`]: std's options for opening a file, kept both as a
//! `std::fs::OpenOptions` (for the blocking pool) and as the open(2)
//! flags io_uring's `OPENAT` takes.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{File, asyncify, c_path, on_core, uring_has};

/// Options and flags to open a file (tokio's `fs::OpenOptions`).
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// use insane_net::fs::OpenOptions;
/// use tokio::io::AsyncWriteExt;
///
/// let path = std::env::temp_dir().join(format!("insane-oo-doc-{}", std::process::id()));
/// let mut log = OpenOptions::new().create(true).append(true).open(&path).await?;
/// log.write_all(b"started\n").await?;
/// log.flush().await?;
/// # std::fs::remove_file(&path)?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
    /// The same options as open(2) arguments, when known (not for options
    /// converted from a `std::fs::OpenOptions`, whose fields are private).
    flags: Option<Flags>,
}

/// What `OpenOptions`' setters recorded, for open(2).
#[derive(Clone, Copy, Debug)]
struct Flags {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    custom: i32,
    mode: u32,
}

impl Flags {
    /// The open(2) flags, with std's checks (`library/std/src/sys/fs/unix.rs`):
    /// the same combinations fail, with the same errors.
    fn open_flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        if !self.write && !self.append && (self.truncate || self.create || self.create_new) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "creating or truncating a file requires write or append access",
            ));
        }
        if self.append && self.truncate && !self.create_new {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "creating or truncating a file requires write or append access",
            ));
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        Ok(libc::O_CLOEXEC | access | creation | (self.custom & !libc::O_ACCMODE))
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! option {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name(&mut self, $name: bool) -> &mut OpenOptions {
            self.std.$name($name);
            if let Some(f) = &mut self.flags {
                f.$name = $name;
            }
            self
        }
    };
}

impl OpenOptions {
    /// Options with everything off (std's defaults; mode `0o666`).
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
            flags: Some(Flags {
                read: false,
                write: false,
                append: false,
                truncate: false,
                create: false,
                create_new: false,
                custom: 0,
                mode: 0o666,
            }),
        }
    }

    option!(
        /// Open for reading.
        read
    );
    option!(
        /// Open for writing.
        write
    );
    option!(
        /// Open for appending: every write goes to the end of the file.
        append
    );
    option!(
        /// Truncate the file to 0 bytes when it opens (needs write access).
        truncate
    );
    option!(
        /// Create the file if it does not exist (needs write or append).
        create
    );
    option!(
        /// Create the file, failing with `AlreadyExists` if it exists
        /// (`O_EXCL`; `create` and `truncate` are then ignored).
        create_new
    );

    /// The permission bits of a created file, before the umask (default
    /// `0o666`).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.std.mode(mode);
        if let Some(f) = &mut self.flags {
            f.mode = mode;
        }
        self
    }

    /// Extra open(2) flags (`O_DIRECT`, `O_NOFOLLOW`, ...); the access mode
    /// bits are ignored, as in std.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.std.custom_flags(flags);
        if let Some(f) = &mut self.flags {
            f.custom = flags;
        }
        self
    }

    /// Opens `path` with these options: io_uring `OPENAT` on an io_uring
    /// core, `std::fs::OpenOptions::open` on the blocking pool otherwise.
    ///
    /// # Errors
    /// Those of open(2) (`NotFound`, `PermissionDenied`, `AlreadyExists`
    /// with `create_new`, ...), and std's `InvalidInput` for an option
    /// combination that cannot work.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        if let Some(flags) = self.flags.filter(|_| uring_has(|ops| ops.openat)) {
            let open_flags = flags.open_flags()?;
            let c = c_path(path)?;
            // SAFETY: the operation holds only the path until polled.
            let fd =
                unsafe { on_core(insane_uring::op::open_at(c, open_flags, flags.mode)) }.await?;
            return Ok(File::from_std(std::fs::File::from(fd)));
        }
        let std = self.std.clone();
        let path = path.to_owned();
        let file = asyncify(move || std.open(path)).await?;
        Ok(File::from_std(file))
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    /// Options from std's. Files opened with them are opened on the
    /// blocking pool (std's options cannot be read back as open(2) flags).
    fn from(std: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions { std, flags: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut OpenOptions) -> &mut OpenOptions) -> io::Result<i32> {
        let mut o = OpenOptions::new();
        f(&mut o);
        o.flags.expect("built with new()").open_flags()
    }

    #[test]
    fn flags_match_std_open() {
        let base = libc::O_CLOEXEC;
        assert_eq!(flags(|o| o.read(true)).unwrap(), base | libc::O_RDONLY);
        assert_eq!(
            flags(|o| o.write(true).create(true).truncate(true)).unwrap(),
            base | libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
        assert_eq!(
            flags(|o| o.append(true).create(true)).unwrap(),
            base | libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT
        );
        assert_eq!(
            flags(|o| o.read(true).write(true).create_new(true)).unwrap(),
            base | libc::O_RDWR | libc::O_CREAT | libc::O_EXCL
        );
    }

    #[test]
    fn impossible_combinations_fail_as_in_std() {
        let none = flags(|o| o).unwrap_err();
        assert_eq!(none.raw_os_error(), Some(libc::EINVAL));
        let create_read_only = flags(|o| o.read(true).create(true)).unwrap_err();
        assert_eq!(create_read_only.kind(), io::ErrorKind::InvalidInput);
        let append_truncate = flags(|o| o.append(true).truncate(true)).unwrap_err();
        assert_eq!(append_truncate.kind(), io::ErrorKind::InvalidInput);
        // std agrees on the same combinations.
        let dir = std::env::temp_dir();
        assert_eq!(
            std::fs::OpenOptions::new()
                .read(true)
                .create(true)
                .truncate(false)
                .open(&dir)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
