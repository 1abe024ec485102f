//! `insane_net::fs` (tokio's `fs`) on both kernel drivers: each test is a
//! specification of tokio's behaviour that insane keeps.

mod common;

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use common::on_each_driver;
use insane_net::fs::{self, File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, SeekFrom};

/// Upper bound of any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match insane_runtime::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {LIMIT:?}"),
    }
}

/// `len` bytes that differ from their neighbours, so a misplaced chunk
/// shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn write_then_read_gives_the_bytes_back() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        fs::write(&path, b"hello").await.unwrap();
        assert_eq!(fs::read(&path).await.unwrap(), b"hello", "{driver}");
        assert_eq!(fs::read_to_string(&path).await.unwrap(), "hello");

        let mut file = File::create(&path).await.unwrap();
        file.write_all(b"replaced").await.unwrap();
        file.flush().await.unwrap();
        let mut back = Vec::new();
        File::open(&path)
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert_eq!(back, b"replaced", "{driver}: create truncates");
        assert_eq!(fs::metadata(&path).await.unwrap().len(), 8);
    });
}

#[test]
fn append_writes_at_the_end() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, b"one\n").await.unwrap();
        let mut log = OpenOptions::new().append(true).open(&path).await.unwrap();
        log.write_all(b"two\n").await.unwrap();
        log.flush().await.unwrap();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .unwrap();
        log.write_all(b"three\n").await.unwrap();
        log.shutdown().await.unwrap();
        assert_eq!(
            fs::read_to_string(&path).await.unwrap(),
            "one\ntwo\nthree\n",
            "{driver}"
        );
    });
}

#[test]
fn seek_moves_reads_and_writes() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digits");
        fs::write(&path, b"0123456789").await.unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        assert_eq!(file.seek(SeekFrom::Start(6)).await.unwrap(), 6);
        let mut two = [0; 2];
        file.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"67", "{driver}");
        // The file read ahead of what was returned: a relative seek and a
        // write start where the reader is, as in tokio.
        assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), 8);
        assert_eq!(file.seek(SeekFrom::Current(-7)).await.unwrap(), 1);
        file.write_all(b"ab").await.unwrap();
        file.flush().await.unwrap();
        assert_eq!(file.seek(SeekFrom::End(-1)).await.unwrap(), 9);
        let mut last = String::new();
        file.read_to_string(&mut last).await.unwrap();
        assert_eq!(last, "9");
        assert_eq!(fs::read(&path).await.unwrap(), b"0ab3456789", "{driver}");
    });
}

#[test]
fn a_write_after_a_short_read_lands_where_the_reader_is() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"abcdef").await.unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        // One read of up to 64 bytes takes the whole file into the buffer;
        // read_exact returns two of them.
        let mut two = [0; 2];
        file.read_exact(&mut two).await.unwrap();
        file.write_all(b"XY").await.unwrap();
        file.flush().await.unwrap();
        assert_eq!(fs::read(&path).await.unwrap(), b"abXYef", "{driver}");
    });
}

#[test]
fn set_len_truncates_and_extends_and_metadata_follows() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sized");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap();
        file.set_len(4096).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 4096, "{driver}");
        file.set_len(10).await.unwrap();
        assert_eq!(fs::metadata(&path).await.unwrap().len(), 10);
        assert_eq!(fs::read(&path).await.unwrap(), vec![0; 10]);
        file.sync_all().await.unwrap();
        file.sync_data().await.unwrap();
        let read_only = File::open(&path).await.unwrap();
        let err = read_only.set_len(0).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{driver}: {err}");
    });
}

#[test]
fn read_dir_lists_every_entry_with_its_type() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            fs::write(dir.path().join(format!("f{i:02}")), b"x")
                .await
                .unwrap();
        }
        fs::create_dir(dir.path().join("sub")).await.unwrap();
        let mut entries = fs::read_dir(dir.path()).await.unwrap();
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        while let Some(entry) = entries.next_entry().await.unwrap() {
            assert_eq!(entry.path(), dir.path().join(entry.file_name()));
            let kind = entry.file_type().await.unwrap();
            assert_eq!(kind.is_dir(), entry.metadata().await.unwrap().is_dir());
            let name = entry.file_name().into_string().unwrap();
            if kind.is_dir() { &mut dirs } else { &mut files }.push(name);
        }
        assert!(entries.next_entry().await.unwrap().is_none());
        files.sort();
        let expected: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        assert_eq!(files, expected, "{driver}: more than one chunk of 32");
        assert_eq!(dirs, ["sub"]);
    });
}

#[test]
fn errors_carry_the_operating_systems_kind() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let kind = |r: std::io::Error| r.kind();
        assert_eq!(
            kind(File::open(&missing).await.unwrap_err()),
            ErrorKind::NotFound,
            "{driver}"
        );
        assert_eq!(
            kind(fs::read(&missing).await.unwrap_err()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs::remove_file(&missing).await.unwrap_err()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs::metadata(&missing).await.unwrap_err()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs::read_dir(&missing).await.unwrap_err()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(
                fs::rename(&missing, dir.path().join("x"))
                    .await
                    .unwrap_err()
            ),
            ErrorKind::NotFound
        );
        assert!(!fs::try_exists(&missing).await.unwrap());
        let present = dir.path().join("present");
        fs::write(&present, [0xff, 0xfe]).await.unwrap();
        assert!(fs::try_exists(&present).await.unwrap());
        assert_eq!(
            kind(File::create_new(&present).await.unwrap_err()),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs::create_dir(dir.path()).await.unwrap_err()),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs::read_to_string(&present).await.unwrap_err()),
            ErrorKind::InvalidData
        );
        assert_eq!(
            kind(fs::read("bad\0path").await.unwrap_err()),
            ErrorKind::InvalidInput
        );
        // Writing to a file opened read-only fails at the write or, since
        // writes complete in the background, at the flush.
        let mut read_only = File::open(&present).await.unwrap();
        let write = read_only.write_all(b"no").await;
        let failed = match write {
            Err(e) => e,
            Ok(()) => read_only.flush().await.unwrap_err(),
        };
        assert_eq!(failed.raw_os_error(), Some(libc::EBADF), "{driver}");
    });
}

#[test]
fn megabytes_round_trip_through_file_and_free_functions() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(5 * 1024 * 1024 + 17);
        let path = dir.path().join("big");
        let mut file = File::create(&path).await.unwrap();
        bounded("write 5 MiB", file.write_all(&data)).await.unwrap();
        file.flush().await.unwrap();
        let back = bounded("fs::read 5 MiB", fs::read(&path)).await.unwrap();
        assert_eq!(back.len(), data.len(), "{driver}");
        let first = back.iter().zip(&data).position(|(a, b)| a != b);
        assert!(
            back == data,
            "{driver}: fs::read gives the written bytes ({first:?})"
        );

        let copy = dir.path().join("big2");
        bounded("fs::write 5 MiB", fs::write(&copy, &data))
            .await
            .unwrap();
        let mut file = File::open(&copy).await.unwrap();
        file.set_max_buf_size(64 * 1024);
        let mut back = Vec::new();
        bounded("read_to_end 5 MiB", file.read_to_end(&mut back))
            .await
            .unwrap();
        assert!(back == data, "{driver}: File reads give the written bytes");
    });
}

#[test]
fn a_dropped_read_loses_nothing_and_corrupts_nothing() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data = pattern(1024 * 1024);
        fs::write(&path, &data).await.unwrap();
        let mut file = File::open(&path).await.unwrap();
        let mut back = Vec::new();
        for _ in 0..20 {
            // Start a read into a buffer that then goes away with its
            // future: the read in flight keeps its own buffer, and the
            // next read returns its bytes.
            let mut scratch = vec![0u8; 64 * 1024];
            let mut read = Box::pin(file.read(&mut scratch));
            let polled = futures::poll!(read.as_mut());
            drop(read);
            if let std::task::Poll::Ready(n) = polled {
                back.extend_from_slice(&scratch[..n.unwrap()]);
            }
            drop(scratch);
            let mut chunk = vec![0u8; 4096];
            let n = bounded("read after a dropped read", file.read(&mut chunk))
                .await
                .unwrap();
            back.extend_from_slice(&chunk[..n]);
        }
        bounded("read the rest", file.read_to_end(&mut back))
            .await
            .unwrap();
        assert!(back == data, "{driver}: every byte once, in order");
    });
}

#[test]
fn a_file_dropped_with_a_write_in_flight_still_writes_it() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unflushed");
        let data = pattern(256 * 1024);
        let mut file = File::create(&path).await.unwrap();
        file.write_all(&data).await.unwrap();
        drop(file);
        let start = std::time::Instant::now();
        loop {
            if fs::read(&path).await.unwrap() == data {
                break;
            }
            assert!(start.elapsed() < LIMIT, "{driver}: the write never landed");
            insane_runtime::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

#[test]
fn directories_links_renames_and_removal() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let deep = root.join("a/b/c");
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(&deep).await.unwrap();
        assert!(fs::metadata(&deep).await.unwrap().is_dir(), "{driver}");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join("a/x/y"))
            .await
            .unwrap();
        let file = deep.join("f");
        fs::write(&file, b"content").await.unwrap();
        let not_dir = file.join("below");
        assert!(fs::create_dir_all(&not_dir).await.is_err());

        fs::hard_link(&file, root.join("hard")).await.unwrap();
        assert_eq!(fs::read(root.join("hard")).await.unwrap(), b"content");
        fs::symlink(&file, root.join("soft")).await.unwrap();
        assert_eq!(fs::read_link(root.join("soft")).await.unwrap(), file);
        assert!(
            fs::symlink_metadata(root.join("soft"))
                .await
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::canonicalize(root.join("soft")).await.unwrap(),
            fs::canonicalize(&file).await.unwrap()
        );
        assert_eq!(fs::copy(&file, root.join("copy")).await.unwrap(), 7);
        fs::rename(root.join("copy"), root.join("moved"))
            .await
            .unwrap();
        assert!(!fs::try_exists(root.join("copy")).await.unwrap());
        assert_eq!(fs::read(root.join("moved")).await.unwrap(), b"content");

        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join("moved"), std::fs::Permissions::from_mode(0o600))
            .await
            .unwrap();
        let mode = fs::metadata(root.join("moved"))
            .await
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);

        assert_eq!(
            fs::remove_dir(root.join("a")).await.unwrap_err().kind(),
            ErrorKind::DirectoryNotEmpty
        );
        fs::remove_dir(root.join("a/x/y")).await.unwrap();
        fs::remove_dir_all(root.join("a")).await.unwrap();
        assert!(!fs::try_exists(root.join("a")).await.unwrap(), "{driver}");
    });
}

#[test]
fn clones_share_the_position_and_into_std_gives_the_file_back() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        fs::write(&path, b"abcd").await.unwrap();
        let mut file = File::open(&path).await.unwrap();
        let mut clone = file.try_clone().await.unwrap();
        let mut one = [0; 1];
        clone.read_exact(&mut one).await.unwrap();
        assert_eq!(clone.stream_position().await.unwrap(), 1);
        assert_eq!(file.stream_position().await.unwrap(), 1, "{driver}");
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        file.set_modified(an_hour_ago).await.unwrap();
        assert_eq!(
            file.metadata().await.unwrap().modified().unwrap(),
            an_hour_ago
        );
        let std = file.into_std().await;
        assert_eq!(std.metadata().unwrap().len(), 4);
        let file = File::from_std(std);
        assert!(file.try_into_std().is_ok());
    });
}

#[test]
fn on_io_uring_file_operations_do_not_wait_for_the_blocking_pool() {
    // One blocking thread, kept busy: operations that went through the pool
    // would wait for it; io_uring ones complete.
    let rt = insane_runtime::runtime::Runtime::builder()
        .cores(1)
        .max_blocking_threads(1)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
        }))
        .build()
        .unwrap();
    rt.block_on(async {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = insane_runtime::task::spawn_blocking(move || held.recv_timeout(LIMIT));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        bounded("io_uring file operations", async {
            fs::write(&path, b"via io_uring").await.unwrap();
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).await.unwrap();
            assert_eq!(text, "via io_uring");
            file.write_all(b"!").await.unwrap();
            file.sync_data().await.unwrap();
            file.set_len(3).await.unwrap();
            assert_eq!(fs::read(&path).await.unwrap(), b"via");
            fs::create_dir_all(dir.path().join("d/e")).await.unwrap();
            fs::rename(&path, dir.path().join("d/e/g")).await.unwrap();
            fs::remove_file(dir.path().join("d/e/g")).await.unwrap();
            fs::remove_dir(dir.path().join("d/e")).await.unwrap();
            assert!(!fs::try_exists(&path).await.unwrap());
        })
        .await;
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
    });
}
