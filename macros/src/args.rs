//! Parsing of the attribute arguments: `cores = N`, `driver = "name"`,
//! `pin_cores = bool`, `tokio_compat = bool`, `start_paused = bool`, plus
//! tokio's spellings `worker_threads = N` and
//! `flavor = "current_thread" | "multi_thread"` (insane is always
//! thread-per-core: `current_thread` means one core, `multi_thread` the
//! default number of cores or `worker_threads`).

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Token};

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute as the user writes it, for error messages.
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Kind::Main => "#[insane::main]",
            Kind::Test => "#[insane::test]",
        }
    }
}

/// The I/O drivers a user may ask for by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    Auto,
    Uring,
    Epoll,
}

impl Driver {
    pub(crate) const ALL: [Driver; 3] = [Driver::Auto, Driver::Uring, Driver::Epoll];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }

    fn from_name(name: &str) -> Option<Driver> {
        Driver::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// The validated arguments of one `#[insane::main(..)]` / `#[insane::test(..)]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Args {
    pub(crate) cores: Option<usize>,
    pub(crate) driver: Option<Driver>,
    pub(crate) pin_cores: Option<bool>,
    pub(crate) tokio_compat: Option<bool>,
    /// `start_paused = bool`: the runtime starts with time paused
    /// (`insane::time::pause`); implies one core.
    pub(crate) start_paused: Option<bool>,
}

impl Args {
    /// The `::insane::__private::MacroConfig { .. }` expression for these
    /// arguments.
    pub(crate) fn config_tokens(&self, kind: Kind) -> TokenStream2 {
        let some_or_none = |value: Option<TokenStream2>| match value {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        let cores = some_or_none(self.cores.map(|n| quote!(#n)));
        let driver = some_or_none(self.driver.map(|d| d.as_str().into_token_stream()));
        let pin_cores = some_or_none(self.pin_cores.map(|b| quote!(#b)));
        let tokio_compat = self.tokio_compat.unwrap_or(false);
        let start_paused = self.start_paused.unwrap_or(false);
        let kind = match kind {
            Kind::Main => quote!(::insane::__private::EntryKind::Main),
            Kind::Test => quote!(::insane::__private::EntryKind::Test),
        };
        quote! {
            ::insane::__private::MacroConfig {
                cores: #cores,
                driver: #driver,
                pin_cores: #pin_cores,
                tokio_compat: #tokio_compat,
                start_paused: #start_paused,
                kind: #kind,
            }
        }
    }
}

const EXPECTED_ARGS: &str = "expected `cores`, `driver`, `pin_cores`, `tokio_compat`, \
     `start_paused`, `flavor` or `worker_threads`";

/// Parses the tokens between the attribute's parentheses.
///
/// Every problem found is reported (combined into one `syn::Error`), each
/// spanned at the offending token.
pub(crate) fn parse_args(tokens: TokenStream2) -> syn::Result<Args> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;

    let mut args = Args::default();
    // Where each argument was first given, to report duplicates.
    let mut seen_cores: Option<String> = None;
    let mut seen_driver = false;
    // The boolean arguments given so far.
    let mut seen_bools: Vec<String> = Vec::new();
    // `start_paused = true`, where it was given.
    let mut start_paused: Option<Span> = None;
    // `flavor = "current_thread"`, where it was given.
    let mut current_thread: Option<Span> = None;
    // `flavor = "multi_thread"`, where it was given.
    let mut multi_thread: Option<Span> = None;
    let mut seen_flavor = false;
    let mut errors = Errors::default();

    for meta in metas {
        let name_value = match meta {
            Meta::NameValue(nv) => nv,
            Meta::Path(path) => {
                errors.push(path_without_value(&path));
                continue;
            }
            Meta::List(list) => {
                let msg = format!(
                    "expected `name = value`, e.g. `{} = ..`",
                    path_to_string(&list.path)
                );
                errors.push(syn::Error::new_spanned(list, msg));
                continue;
            }
        };
        let Some(ident) = name_value.path.get_ident() else {
            let msg = format!(
                "unknown argument `{}`: {EXPECTED_ARGS}",
                path_to_string(&name_value.path)
            );
            errors.push(syn::Error::new_spanned(&name_value.path, msg));
            continue;
        };
        let name = ident.to_string();
        let value = &name_value.value;
        match name.as_str() {
            "cores" | "worker_threads" => {
                if let Some(first) = &seen_cores {
                    let msg = if *first == name {
                        format!("duplicate argument `{name}`")
                    } else {
                        format!(
                            "duplicate argument `{name}`: `{first}` was already given \
                             (`worker_threads` is another name for `cores`)"
                        )
                    };
                    errors.push(syn::Error::new_spanned(ident, msg));
                    continue;
                }
                seen_cores = Some(name.clone());
                match parse_cores(&name, value) {
                    Ok(n) => args.cores = Some(n),
                    Err(e) => errors.push(e),
                }
            }
            "driver" => {
                if seen_driver {
                    errors.push(syn::Error::new_spanned(
                        ident,
                        "duplicate argument `driver`",
                    ));
                    continue;
                }
                seen_driver = true;
                match parse_driver(value) {
                    Ok(d) => args.driver = Some(d),
                    Err(e) => errors.push(e),
                }
            }
            "pin_cores" | "tokio_compat" | "start_paused" => {
                if seen_bools.contains(&name) {
                    errors.push(syn::Error::new_spanned(
                        ident,
                        format!("duplicate argument `{name}`"),
                    ));
                    continue;
                }
                seen_bools.push(name.clone());
                let Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) = value
                else {
                    errors.push(syn::Error::new_spanned(
                        value,
                        format!("`{name}` expects `true` or `false`"),
                    ));
                    continue;
                };
                let slot = match name.as_str() {
                    "pin_cores" => &mut args.pin_cores,
                    "tokio_compat" => &mut args.tokio_compat,
                    _ => &mut args.start_paused,
                };
                *slot = Some(b.value);
                if name == "start_paused" && b.value {
                    start_paused = Some(ident.span());
                }
            }
            "flavor" => {
                if seen_flavor {
                    errors.push(syn::Error::new_spanned(
                        ident,
                        "duplicate argument `flavor`",
                    ));
                    continue;
                }
                seen_flavor = true;
                match value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) if s.value() == "current_thread" => current_thread = Some(ident.span()),
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) if s.value() == "multi_thread" => multi_thread = Some(ident.span()),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "`flavor` expects \"current_thread\" (one core) or \"multi_thread\" \
                         (insane is always thread-per-core: the flavor only chooses how many \
                         cores, like `cores = N`)",
                    )),
                }
            }
            other => {
                let msg = format!("unknown argument `{other}`: {EXPECTED_ARGS}");
                errors.push(syn::Error::new_spanned(ident, msg));
            }
        }
    }

    if let Some(span) = current_thread {
        match args.cores {
            None => args.cores = Some(1),
            Some(1) => {}
            Some(n) => errors.push(syn::Error::new(
                span,
                format!(
                    "`flavor = \"current_thread\"` runs on one core, but {} = {n} was given: \
                     remove one of them",
                    seen_cores.as_deref().unwrap_or("cores")
                ),
            )),
        }
    }
    if let Some(span) = start_paused {
        // Paused time needs a runtime of one core (tokio: the
        // current_thread flavor), so `start_paused` means one core.
        const WHY: &str = "`start_paused = true` runs on one core (paused time belongs to a \
                           one-core runtime, like tokio's `current_thread` flavor)";
        if multi_thread.is_some() {
            errors.push(syn::Error::new(
                span,
                format!("{WHY}, but `flavor = \"multi_thread\"` was given: remove one of them"),
            ));
        } else {
            match args.cores {
                None => args.cores = Some(1),
                Some(1) => {}
                Some(n) => errors.push(syn::Error::new(
                    span,
                    format!(
                        "{WHY}, but {} = {n} was given: remove one of them",
                        seen_cores.as_deref().unwrap_or("cores")
                    ),
                )),
            }
        }
    }
    errors.finish()?;
    Ok(args)
}

fn parse_cores(name: &str, value: &Expr) -> syn::Result<usize> {
    let expects = || format!("`{name}` expects an integer literal, e.g. `{name} = 4`");
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    else {
        if let Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) = value
        {
            return Err(syn::Error::new_spanned(value, "cores must be at least 1"));
        }
        return Err(syn::Error::new_spanned(value, expects()));
    };
    // `-2` may arrive as one negative literal rather than `-` and `2`.
    if int.base10_digits().starts_with('-') {
        return Err(syn::Error::new_spanned(int, "cores must be at least 1"));
    }
    let n: usize = int.base10_parse().map_err(|_| {
        syn::Error::new_spanned(int, format!("`{name}` is too large for a core count"))
    })?;
    if n == 0 {
        return Err(syn::Error::new_spanned(int, "cores must be at least 1"));
    }
    Ok(n)
}

/// `"auto", "uring", "epoll"`.
fn driver_names() -> String {
    let names: Vec<String> = Driver::ALL
        .iter()
        .map(|d| format!("\"{}\"", d.as_str()))
        .collect();
    names.join(", ")
}

fn parse_driver(value: &Expr) -> syn::Result<Driver> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let name = s.value();
            Driver::from_name(&name).ok_or_else(|| {
                let msg = format!(
                    "unknown driver \"{name}\": expected one of {}",
                    driver_names()
                );
                syn::Error::new_spanned(s, msg)
            })
        }
        other => {
            // `driver = epoll` instead of `driver = "epoll"`: say so.
            let hint = match other {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let name = p
                        .path
                        .get_ident()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    format!("; write `driver = \"{name}\"`")
                }
                _ => String::new(),
            };
            Err(syn::Error::new_spanned(
                other,
                format!(
                    "`driver` expects a string literal: one of {}{hint}",
                    driver_names()
                ),
            ))
        }
    }
}

fn flavor_error(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`flavor` requires a value: `flavor = \"current_thread\"` (one core) or \
         `flavor = \"multi_thread\"`; insane is always thread-per-core (one executor \
         thread per core; a task stays on the core it was spawned on)",
    )
}

/// An argument written without `= value`.
fn path_without_value(path: &syn::Path) -> syn::Error {
    let name = path_to_string(path);
    let msg = match name.as_str() {
        "cores" | "worker_threads" => format!("`{name}` requires a value, e.g. `{name} = 4`"),
        "driver" => format!(
            "`driver` requires a value, e.g. `driver = \"epoll\"` (one of {})",
            driver_names()
        ),
        "pin_cores" => {
            "`pin_cores` requires a value: `pin_cores = true` or `pin_cores = false`".to_string()
        }
        "tokio_compat" | "start_paused" => {
            format!("`{name}` requires a value: `{name} = true` or `{name} = false`")
        }
        "flavor" | "multi_thread" | "current_thread" => return flavor_error(path.span()),
        _ => format!("unknown argument `{name}`: {EXPECTED_ARGS}"),
    };
    syn::Error::new_spanned(path, msg)
}

fn path_to_string(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Collects several errors into one, so that every mistake is reported at
/// once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> syn::Result<Args> {
        parse_args(src.parse().expect("test input must tokenize"))
    }

    /// The messages of every error, in order.
    fn errors(src: &str) -> Vec<String> {
        match parse(src) {
            Ok(args) => panic!("expected an error for `{src}`, got {args:?}"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn single_error(src: &str) -> syn::Error {
        let err = parse(src).expect_err(src);
        assert_eq!(err.clone().into_iter().count(), 1, "{src}: {err}");
        err
    }

    /// Column (0-based) at which the error for `src` starts; `src` is on
    /// one line.
    fn error_column(src: &str) -> usize {
        single_error(src).span().start().column
    }

    #[test]
    fn empty() {
        assert_eq!(parse("").unwrap(), Args::default());
    }

    #[test]
    fn all_arguments() {
        assert_eq!(
            parse(r#"cores = 2, driver = "epoll""#).unwrap(),
            Args {
                cores: Some(2),
                driver: Some(Driver::Epoll),
                pin_cores: None,
                tokio_compat: None,
                start_paused: None,
            }
        );
        assert_eq!(
            parse(r#"driver = "uring", pin_cores = false, cores = 16,"#).unwrap(),
            Args {
                cores: Some(16),
                driver: Some(Driver::Uring),
                pin_cores: Some(false),
                tokio_compat: None,
                start_paused: None,
            }
        );
        assert_eq!(
            parse(r#"driver = "auto", pin_cores = true"#).unwrap(),
            Args {
                cores: None,
                driver: Some(Driver::Auto),
                pin_cores: Some(true),
                tokio_compat: None,
                start_paused: None,
            }
        );
        assert_eq!(parse("cores = 4usize").unwrap().cores, Some(4));
    }

    #[test]
    fn worker_threads_is_cores() {
        assert_eq!(parse("worker_threads = 4").unwrap().cores, Some(4));
    }

    #[test]
    fn unknown_driver() {
        let src = r#"cores = 2, driver = "xdp""#;
        assert_eq!(
            errors(src),
            [r#"unknown driver "xdp": expected one of "auto", "uring", "epoll""#]
        );
        assert_eq!(error_column(src), src.find("\"xdp\"").unwrap());
    }

    #[test]
    fn driver_not_a_string() {
        assert_eq!(
            errors("driver = epoll"),
            [
                r#"`driver` expects a string literal: one of "auto", "uring", "epoll"; write `driver = "epoll"`"#
            ]
        );
        assert_eq!(
            errors("driver = 3"),
            [r#"`driver` expects a string literal: one of "auto", "uring", "epoll""#]
        );
    }

    #[test]
    fn zero_cores() {
        let src = "driver = \"auto\", cores = 0";
        assert_eq!(errors(src), ["cores must be at least 1"]);
        assert_eq!(error_column(src), src.find('0').unwrap());
        assert_eq!(errors("cores = -2"), ["cores must be at least 1"]);
    }

    #[test]
    fn cores_not_an_integer() {
        assert_eq!(
            errors(r#"cores = "2""#),
            ["`cores` expects an integer literal, e.g. `cores = 4`"]
        );
        assert_eq!(
            errors("worker_threads = N"),
            ["`worker_threads` expects an integer literal, e.g. `worker_threads = 4`"]
        );
        assert_eq!(
            errors("cores = 99999999999999999999999"),
            ["`cores` is too large for a core count"]
        );
    }

    #[test]
    fn pin_cores_not_a_bool() {
        assert_eq!(
            errors("pin_cores = 1"),
            ["`pin_cores` expects `true` or `false`"]
        );
        assert_eq!(
            errors("pin_cores"),
            ["`pin_cores` requires a value: `pin_cores = true` or `pin_cores = false`"]
        );
    }

    #[test]
    fn unknown_argument() {
        let src = "cores = 1, foo = 3";
        assert_eq!(
            errors(src),
            [
                "unknown argument `foo`: expected `cores`, `driver`, `pin_cores`, `tokio_compat`, `start_paused`, `flavor` or `worker_threads`"
            ]
        );
        assert_eq!(error_column(src), src.find("foo").unwrap());
        assert_eq!(
            errors("a::b = 1"),
            [
                "unknown argument `a::b`: expected `cores`, `driver`, `pin_cores`, `tokio_compat`, `start_paused`, `flavor` or `worker_threads`"
            ]
        );
        assert_eq!(
            errors("cores(2)"),
            ["expected `name = value`, e.g. `cores = ..`"]
        );
    }

    #[test]
    fn duplicates() {
        let src = "cores = 1, cores = 2";
        assert_eq!(errors(src), ["duplicate argument `cores`"]);
        assert_eq!(error_column(src), src.rfind("cores").unwrap());
        assert_eq!(
            errors("cores = 1, worker_threads = 2"),
            [
                "duplicate argument `worker_threads`: `cores` was already given \
                 (`worker_threads` is another name for `cores`)"
            ]
        );
        assert_eq!(
            errors(r#"driver = "auto", driver = "epoll""#),
            ["duplicate argument `driver`"]
        );
        assert_eq!(
            errors("pin_cores = true, pin_cores = true"),
            ["duplicate argument `pin_cores`"]
        );
    }

    #[test]
    fn tokio_compat_is_a_bool() {
        assert_eq!(
            parse("tokio_compat = true").unwrap().tokio_compat,
            Some(true)
        );
        assert_eq!(
            errors("tokio_compat = 1"),
            ["`tokio_compat` expects `true` or `false`"]
        );
        assert_eq!(
            errors("tokio_compat = true, tokio_compat = false"),
            ["duplicate argument `tokio_compat`"]
        );
    }

    #[test]
    fn start_paused_is_a_bool_and_means_one_core() {
        let args = parse("start_paused = true").unwrap();
        assert_eq!(args.start_paused, Some(true));
        assert_eq!(args.cores, Some(1), "paused time needs one core");
        let args = parse(r#"start_paused = true, flavor = "current_thread""#).unwrap();
        assert_eq!((args.start_paused, args.cores), (Some(true), Some(1)));
        assert_eq!(
            parse("start_paused = true, cores = 1").unwrap().cores,
            Some(1)
        );
        let args = parse("start_paused = false, cores = 4").unwrap();
        assert_eq!((args.start_paused, args.cores), (Some(false), Some(4)));
        assert_eq!(
            errors("start_paused = 1"),
            ["`start_paused` expects `true` or `false`"]
        );
        assert_eq!(
            errors("start_paused"),
            ["`start_paused` requires a value: `start_paused = true` or `start_paused = false`"]
        );
        assert_eq!(
            errors("start_paused = true, start_paused = false"),
            ["duplicate argument `start_paused`"]
        );
    }

    #[test]
    fn start_paused_with_several_cores_is_an_error_at_the_argument() {
        let src = "cores = 2, start_paused = true";
        let msgs = errors(src);
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].contains("runs on one core") && msgs[0].contains("cores = 2 was given"),
            "{}",
            msgs[0]
        );
        assert_eq!(error_column(src), src.find("start_paused").unwrap());
        let msgs = errors(r#"start_paused = true, worker_threads = 3"#);
        assert!(
            msgs[0].contains("worker_threads = 3 was given"),
            "{}",
            msgs[0]
        );
        let msgs = errors(r#"flavor = "multi_thread", start_paused = true"#);
        assert!(
            msgs[0].contains("`flavor = \"multi_thread\"` was given"),
            "{}",
            msgs[0]
        );
    }

    #[test]
    fn config_tokens_pass_start_paused() {
        let args = parse("start_paused = true").unwrap();
        let tokens = args.config_tokens(Kind::Main).to_string();
        assert!(tokens.contains("start_paused : true"), "{tokens}");
        assert!(tokens.contains("Some (1usize)"), "{tokens}");
    }

    #[test]
    fn tokio_flavors_are_accepted_as_core_counts() {
        assert_eq!(
            parse(r#"flavor = "current_thread""#).unwrap().cores,
            Some(1)
        );
        assert_eq!(
            parse(r#"flavor = "current_thread", worker_threads = 1"#)
                .unwrap()
                .cores,
            Some(1)
        );
        assert_eq!(
            parse(r#"flavor = "multi_thread", worker_threads = 2"#)
                .unwrap()
                .cores,
            Some(2)
        );
        assert_eq!(parse(r#"flavor = "multi_thread""#).unwrap().cores, None);
    }

    #[test]
    fn a_flavor_that_contradicts_the_core_count_or_is_unknown_is_named() {
        let src = r#"flavor = "current_thread", cores = 4"#;
        let msgs = errors(src);
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].contains("runs on one core, but cores = 4"),
            "{}",
            msgs[0]
        );
        assert_eq!(error_column(src), 0);
        let msgs = errors(r#"flavor = "local""#);
        assert!(msgs[0].contains("always thread-per-core"), "{}", msgs[0]);
        assert!(errors("flavor")[0].contains("requires a value"));
        assert!(errors("multi_thread")[0].contains("thread-per-core"));
        assert_eq!(
            errors(r#"flavor = "multi_thread", flavor = "multi_thread""#),
            ["duplicate argument `flavor`"]
        );
    }

    #[test]
    fn every_error_is_reported() {
        assert_eq!(
            errors(r#"cores = 0, driver = "xdp", bogus = 1"#),
            [
                "cores must be at least 1",
                r#"unknown driver "xdp": expected one of "auto", "uring", "epoll""#,
                "unknown argument `bogus`: expected `cores`, `driver`, `pin_cores`, `tokio_compat`, `start_paused`, `flavor` or `worker_threads`",
            ]
        );
    }

    #[test]
    fn syntax_error() {
        assert!(parse("cores = ").is_err());
        assert!(parse("cores 2").is_err());
    }

    #[test]
    fn config_tokens() {
        let args = parse(r#"cores = 2, driver = "epoll""#).unwrap();
        let expected = quote! {
            ::insane::__private::MacroConfig {
                cores: ::core::option::Option::Some(2usize),
                driver: ::core::option::Option::Some("epoll"),
                pin_cores: ::core::option::Option::None,
                tokio_compat: false,
                start_paused: false,
                kind: ::insane::__private::EntryKind::Test,
            }
        };
        assert_eq!(
            args.config_tokens(Kind::Test).to_string(),
            expected.to_string()
        );
    }
}
