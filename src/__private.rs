//! What `#[insane::main]` and `#[insane::test]` expand to. Not public API.

use std::future::Future;
use std::io;

use crate::runtime::{Builder, Driver};

/// Which macro produced the entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `#[insane::main]`: defaults to one core per allowed CPU.
    Main,
    /// `#[insane::test]`: defaults to one core, like tokio's tests.
    Test,
}

/// The macro's arguments, checked at compile time.
#[derive(Clone, Copy, Debug)]
pub struct MacroConfig {
    /// `cores = N`.
    pub cores: Option<usize>,
    /// `driver = "..."`.
    pub driver: Option<&'static str>,
    /// `pin_cores = bool`.
    pub pin_cores: Option<bool>,
    /// `tokio_compat = bool` (default false).
    pub tokio_compat: bool,
    /// `start_paused = bool` (default false): time is paused
    /// (`insane::time::pause`) before the body runs; one core.
    pub start_paused: bool,
    /// main or test.
    pub kind: EntryKind,
}

/// The runtime builder for a macro entry point: the attribute's values,
/// then the process configuration over them (`insane.toml`'s `[runtime]`,
/// then the `INSANE_*` variables: [`Builder::load_config`]).
///
/// # Errors
/// A bad value in the file or a variable, named in the error.
pub fn builder(config: MacroConfig) -> io::Result<Builder> {
    let mut builder = attribute_builder(config)?;
    builder.load_config()?;
    // Paused time needs a runtime of one core (`time::pause` panics on
    // more), so `start_paused` keeps one core whatever the configuration
    // says: the attribute asked for a paused test, not a panic.
    if config.start_paused {
        builder.cores(1).start_paused(true);
    }
    Ok(builder)
}

/// The builder the attribute alone describes.
fn attribute_builder(config: MacroConfig) -> io::Result<Builder> {
    let mut builder = Builder::new();
    match (config.cores, config.kind) {
        (Some(n), _) => {
            builder.cores(n);
        }
        (None, EntryKind::Test) => {
            builder.cores(1);
        }
        (None, EntryKind::Main) => {}
    }
    if let Some(pin) = config.pin_cores {
        builder.pin_cores(pin);
    }
    if let Some(name) = config.driver {
        builder.driver(name.parse::<Driver>()?);
    }
    if config.tokio_compat {
        builder.tokio_compat(true);
    }
    Ok(builder)
}

/// Builds the runtime for a macro entry point and runs `future` on core 0.
///
/// # Panics
/// If the runtime cannot start (the message names the cause), or if
/// `future` panics.
pub fn block_on<F: Future>(config: MacroConfig, future: F) -> F::Output {
    let runtime = match builder(config).and_then(|mut b| b.build()) {
        Ok(rt) => rt,
        Err(e) => panic!("insane: failed to start the runtime: {e}"),
    };
    runtime.block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RuntimeConfig};

    fn attribute(cores: Option<usize>, driver: Option<&'static str>, kind: EntryKind) -> Builder {
        attribute_builder(MacroConfig {
            cores,
            driver,
            pin_cores: None,
            tokio_compat: false,
            start_paused: false,
            kind,
        })
        .unwrap()
    }

    /// `[runtime]` of a file holding `text`, with the variables `vars`.
    fn process_config(text: &str, vars: &[(&'static str, &'static str)]) -> RuntimeConfig {
        Config::from_toml_str(text, "insane.toml")
            .unwrap()
            .apply_env(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap()
            .runtime
    }

    #[test]
    fn the_attribute_is_the_lowest_layer() {
        let mut b = attribute(Some(2), Some("uring"), EntryKind::Main);
        assert_eq!(b.settings().cores, Some(2));
        assert_eq!(b.settings().driver, Some(Driver::Uring));
        b.with_config(&process_config("", &[]));
        assert_eq!(
            b.settings().cores,
            Some(2),
            "no file, no variable: the attribute's"
        );
    }

    #[test]
    fn the_file_overrides_the_attribute_and_the_environment_the_file() {
        let config = process_config(
            "[runtime]\ncores = 3\ndriver = \"epoll\"\n",
            &[("INSANE_DRIVER", "auto")],
        );
        let mut b = attribute(Some(2), Some("uring"), EntryKind::Main);
        b.with_config(&config);
        assert_eq!(b.settings().cores, Some(3), "file over attribute");
        assert_eq!(
            b.settings().driver,
            Some(Driver::Auto),
            "environment over file"
        );
    }

    #[test]
    fn start_paused_keeps_one_core_over_any_configuration() {
        let config = MacroConfig {
            cores: None,
            driver: None,
            pin_cores: None,
            tokio_compat: false,
            start_paused: true,
            kind: EntryKind::Main,
        };
        // Whatever this process's insane.toml and INSANE_* say.
        assert_eq!(builder(config).unwrap().settings().cores, Some(1));
    }

    #[test]
    fn tests_default_to_one_core_unless_configured() {
        let mut b = attribute(None, None, EntryKind::Test);
        assert_eq!(b.settings().cores, Some(1));
        b.with_config(&process_config("[runtime]\ncores = 2\n", &[]));
        assert_eq!(b.settings().cores, Some(2));
        let b = attribute(None, None, EntryKind::Main);
        assert_eq!(b.settings().cores, None, "main: every allowed CPU");
    }
}
