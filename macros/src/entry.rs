//! The expansion of `#[insane::main]` and `#[insane::test]`.
//!
//! The `async fn` becomes a plain `fn` with the same attributes, visibility
//! and signature (minus `async`). For `main` and tests (no arguments, no
//! generics) its body is
//!
//! ```text
//! async fn __insane_main() -> Ret { <original body> }
//! let __insane_body = __insane_main();
//! return ::insane::__private::block_on(::insane::__private::MacroConfig { .. }, __insane_body);
//! ```
//!
//! The nested `async fn` keeps the user's return type on the body, so `?`,
//! `return Err(..)` and coercions (`Box<E>` to `Box<dyn Error>`) behave
//! exactly as in the `async fn` the user wrote. Tests additionally pin the
//! future and pass it as `Pin<&mut dyn Future<Output = Ret>>`. A function
//! with arguments (`#[insane::main]` on a function not called `main`, which
//! tokio allows) uses `let __insane_body = async move { <body> };` instead,
//! which captures them.

use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, ReturnType, Signature, Token, Type, Visibility, braced};

use crate::args::{Args, Errors, Kind, parse_args};

/// Expands `#[insane::main(args)] item`.
pub(crate) fn expand_main(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    expand(Kind::Main, args, item)
}

/// Expands `#[insane::test(args)] item`.
pub(crate) fn expand_test(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    expand(Kind::Test, args, item)
}

fn expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let input: ItemFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(e) => {
            // Not a function: hand the item back untouched plus the error,
            // so that the only diagnostic is ours.
            let msg = format!("{} can only be used on an `async fn`", kind.attr_name());
            let mut tokens = item;
            tokens.extend(syn::Error::new(e.span(), msg).into_compile_error());
            return tokens;
        }
    };

    let mut errors = Errors::default();
    check_signature(&input, kind, &mut errors);
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(e) => {
            errors.push(e);
            Args::default()
        }
    };

    // Even with errors, expand to the function we would have produced (with
    // default arguments): the user then sees our errors and not a cascade of
    // "`main` function not found" / "`async fn main` is not allowed", and
    // IDEs keep working on the body.
    let mut tokens = generate(input, kind, &args);
    if let Err(e) = errors.finish() {
        tokens.extend(e.into_compile_error());
    }
    tokens
}

fn check_signature(input: &ItemFn, kind: Kind, errors: &mut Errors) {
    let sig = &input.sig;
    let attr = kind.attr_name();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        ));
    }
    // `#[insane::main]` on a function not called `main` is allowed, as with
    // tokio: it becomes a sync function that runs a runtime, and may take
    // arguments (they are moved into the future).
    let is_entry = kind == Kind::Test || sig.ident == "main";
    if is_entry && !sig.inputs.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!("{attr} does not take function arguments"),
        ));
    }
    if is_entry && (!sig.generics.params.is_empty() || sig.generics.where_clause.is_some()) {
        let what = match kind {
            Kind::Main => "`main` function",
            Kind::Test => "test function",
        };
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{attr}: a {what} cannot be generic"),
        ));
    }
    if kind == Kind::Test {
        if let Some(test_attr) = input.attrs().find(|a| is_test_attribute(a)) {
            errors.push(syn::Error::new_spanned(
                test_attr,
                "second test attribute: #[insane::test] already adds `#[test]`; remove this one",
            ));
        }
    }
}

fn generate(mut input: ItemFn, kind: Kind, args: &Args) -> TokenStream2 {
    let asyncness = input.sig.asyncness.take();

    // rustc reports a mismatch between the body's type and the return type
    // at the `block_on` call when the body is an async block; giving that
    // call the span of the body's last statement makes the error point into
    // the user's code, as it would for a sync `fn`.
    let (last_stmt_start, last_stmt_end) = {
        let mut last = input.stmts.last().cloned().unwrap_or_default().into_iter();
        let start = last.next().map_or_else(Span::call_site, |t| t.span());
        let end = last.last().map_or(start, |t| t.span());
        (start, end)
    };

    // `Span::mixed_site` keeps the local invisible to the user's code.
    let body_ident = Ident::new("__insane_body", Span::mixed_site());
    let inner_fn = Ident::new("__insane_main", Span::mixed_site());
    let body = input.body();

    // An `async fn` without arguments, generics or `Self` becomes a nested
    // `async fn` with the same return type: the body is then type-checked
    // exactly as the user wrote it, with the declared return type known up
    // front (an async block only learns its output type afterwards, so
    // `return Err(Box::new(e))` would not coerce to `Box<dyn Error>` and
    // `?` could not always infer). Other functions (only `#[insane::main]`
    // on a function not called `main` may have arguments) fall back to an
    // `async move` block, which captures the arguments.
    let nested_fn = input.sig.inputs.is_empty()
        && input.sig.generics.params.is_empty()
        && input.sig.generics.where_clause.is_none()
        && !mentions_self(input.sig.output.to_token_stream())
        && !input.stmts.iter().any(|stmt| mentions_self(stmt.clone()));
    let make_future = if nested_fn {
        let async_token = asyncness.unwrap_or_default();
        let output = &input.sig.output;
        // Lints about the async-ness of a function do not apply: the user
        // wrote an `async fn` because the attribute requires one.
        quote! {
            #[allow(clippy::unused_async, clippy::future_not_send)]
            #async_token fn #inner_fn() #output #body
            let #body_ident = #inner_fn();
        }
    } else {
        quote! {
            let #body_ident = async move #body;
        }
    };

    // Tests: pin the future on the stack and pass a `Pin<&mut dyn Future>`,
    // so that all tests share one instantiation of `block_on`. Not possible
    // when the output is `!` (`dyn Future<Output = !>` is unstable) or an
    // `impl Trait`, which cannot be named.
    let can_name_output = match &input.sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => !matches!(**ty, Type::Never(_)) && !contains_impl_trait(ty),
    };
    let erase = if kind == Kind::Test && can_name_output {
        let output_type = match &input.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        quote! {
            let #body_ident = ::core::pin::pin!(#body_ident);
            let #body_ident: ::core::pin::Pin<
                &mut dyn ::core::future::Future<Output = #output_type>,
            > = #body_ident;
        }
    } else {
        quote!()
    };

    let config = args.config_tokens(kind);
    let call_site_at_last_stmt = Span::call_site().located_at(last_stmt_start);
    let block_on = quote_spanned! {call_site_at_last_stmt=>
        ::insane::__private::block_on
    };
    // An explicit `return`, as tokio-macros emits (tokio-rs/tokio#4636).
    let run = quote_spanned! {last_stmt_end=>
        #[allow(
            clippy::needless_return,
            clippy::diverging_sub_expression,
            clippy::unwrap_in_result,
            unreachable_code
        )]
        {
            return #block_on(#config, #body_ident);
        }
    };

    let generated_attrs = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => quote!(),
    };
    input.into_tokens(
        generated_attrs,
        quote! {
            #make_future
            #erase
        },
        run,
    )
}

/// Whether `tokens` use `Self`, which a nested function could not see.
fn mentions_self(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => mentions_self(group.stream()),
        TokenTree::Punct(_) | TokenTree::Literal(_) => false,
    })
}

/// Whether `ty` mentions `impl Trait` somewhere a type annotation could not.
fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Array(t) => contains_impl_trait(&t.elem),
        Type::Ptr(t) => contains_impl_trait(&t.elem),
        Type::Reference(t) => contains_impl_trait(&t.elem),
        Type::Slice(t) => contains_impl_trait(&t.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Paren(t) => contains_impl_trait(&t.elem),
        Type::Group(t) => contains_impl_trait(&t.elem),
        Type::Path(t) => t
            .path
            .segments
            .iter()
            .any(|segment| match &segment.arguments {
                syn::PathArguments::AngleBracketed(args) => args.args.iter().any(|arg| match arg {
                    syn::GenericArgument::Type(t) => contains_impl_trait(t),
                    syn::GenericArgument::AssocType(t) => contains_impl_trait(&t.ty),
                    _ => false,
                }),
                syn::PathArguments::Parenthesized(args) => {
                    args.inputs.iter().any(contains_impl_trait)
                        || matches!(&args.output, ReturnType::Type(_, t) if contains_impl_trait(t))
                }
                syn::PathArguments::None => false,
            }),
        _ => false,
    }
}

/// `#[test]`, `#[core::prelude::*::test]` or `#[std::prelude::*::test]`
/// (with or without leading `::`).
fn is_test_attribute(attr: &Attribute) -> bool {
    let syn::Meta::Path(path) = &attr.meta else {
        return false;
    };
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|s| {
            if s.arguments.is_none() {
                s.ident.to_string()
            } else {
                String::new()
            }
        })
        .collect();
    match segments.as_slice() {
        [test] => path.leading_colon.is_none() && test == "test",
        [krate, prelude, _, test] => {
            (krate == "core" || krate == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

/// A function item whose body is kept as unparsed statements.
///
/// Parsing only the signature (like tokio-macros does) keeps the macro fast
/// and lets the expansion succeed even when the body has syntax errors, so
/// rustc reports those errors itself, in place.
struct ItemFn {
    outer_attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace_token: syn::token::Brace,
    inner_attrs: Vec<Attribute>,
    /// The body's statements, each with its terminating `;` if it has one.
    stmts: Vec<TokenStream2>,
}

impl ItemFn {
    fn attrs(&self) -> impl Iterator<Item = &Attribute> {
        self.outer_attrs.iter().chain(&self.inner_attrs)
    }

    fn body(&self) -> Body<'_> {
        Body {
            brace_token: self.brace_token,
            stmts: &self.stmts,
        }
    }

    fn into_tokens(
        self,
        generated_attrs: TokenStream2,
        prelude: TokenStream2,
        run: TokenStream2,
    ) -> TokenStream2 {
        let mut tokens = TokenStream2::new();
        for attr in self.outer_attrs {
            attr.to_tokens(&mut tokens);
        }
        // Inner attributes (`#![allow(..)]` at the top of the body) cannot
        // stay on the async block; they become outer attributes of the fn.
        for mut attr in self.inner_attrs {
            attr.style = syn::AttrStyle::Outer;
            attr.to_tokens(&mut tokens);
        }
        // Last, so that attribute macros listed before ours see it.
        generated_attrs.to_tokens(&mut tokens);
        self.vis.to_tokens(&mut tokens);
        self.sig.to_tokens(&mut tokens);
        self.brace_token.surround(&mut tokens, |tokens| {
            prelude.to_tokens(tokens);
            run.to_tokens(tokens);
        });
        tokens
    }
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;

        let content;
        let brace_token = braced!(content in input);
        let inner_attrs = Attribute::parse_inner(&content)?;

        let mut stmts = Vec::new();
        let mut buf = TokenStream2::new();
        while !content.is_empty() {
            if let Some(semi) = content.parse::<Option<Token![;]>>()? {
                semi.to_tokens(&mut buf);
                stmts.push(std::mem::take(&mut buf));
                continue;
            }
            buf.extend([content.parse::<TokenTree>()?]);
        }
        if !buf.is_empty() {
            stmts.push(buf);
        }

        Ok(ItemFn {
            outer_attrs,
            vis,
            sig,
            brace_token,
            inner_attrs,
            stmts,
        })
    }
}

struct Body<'a> {
    brace_token: syn::token::Brace,
    stmts: &'a [TokenStream2],
}

impl ToTokens for Body<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream2) {
        self.brace_token.surround(tokens, |tokens| {
            for stmt in self.stmts {
                stmt.to_tokens(tokens);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_of(args: TokenStream2, item: TokenStream2) -> syn::File {
        let out = expand_main(args, item);
        syn::parse2(out.clone()).unwrap_or_else(|e| panic!("invalid expansion {e}: {out}"))
    }

    /// The expansion as text with all whitespace removed.
    fn squashed(tokens: impl ToTokens) -> String {
        tokens
            .to_token_stream()
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    /// The `compile_error!` messages in an expansion.
    fn compile_errors(tokens: &TokenStream2) -> Vec<String> {
        let mut found = Vec::new();
        let mut iter = tokens.clone().into_iter().peekable();
        while let Some(tt) = iter.next() {
            if let TokenTree::Ident(ident) = &tt {
                if ident == "compile_error" {
                    // `compile_error` `!` `{ "msg" }`
                    iter.next();
                    if let Some(TokenTree::Group(g)) = iter.next() {
                        let lit: syn::LitStr = syn::parse2(g.stream()).expect("message literal");
                        found.push(lit.value());
                    }
                }
            }
        }
        found
    }

    fn main_errors(args: TokenStream2, item: TokenStream2) -> Vec<String> {
        compile_errors(&expand_main(args, item))
    }

    fn test_errors(args: TokenStream2, item: TokenStream2) -> Vec<String> {
        compile_errors(&expand_test(args, item))
    }

    #[test]
    fn main_expansion_shape() {
        let file = main_of(
            quote!(cores = 2, driver = "epoll"),
            quote! {
                /// Docs.
                #[allow(dead_code)]
                pub async fn main() -> Result<(), std::io::Error> {
                    #![allow(unused_mut)]
                    let mut x = 1;
                    helper()?;
                    Ok(())
                }
            },
        );
        assert_eq!(file.items.len(), 1);
        let syn::Item::Fn(f) = &file.items[0] else {
            panic!("not a fn")
        };
        assert!(f.sig.asyncness.is_none());
        assert!(matches!(f.vis, Visibility::Public(_)));
        assert_eq!(f.sig.ident, "main");
        assert_eq!(squashed(&f.sig.output), "->Result<(),std::io::Error>");
        // Doc, allow(dead_code) and the lifted inner allow(unused_mut).
        assert_eq!(f.attrs.len(), 3);
        assert_eq!(squashed(&f.attrs[2]), "#[allow(unused_mut)]");

        let expected = squashed(quote! {
            {
                #[allow(clippy::unused_async, clippy::future_not_send)]
                async fn __insane_main() -> Result<(), std::io::Error> {
                    let mut x = 1;
                    helper()?;
                    Ok(())
                }
                let __insane_body = __insane_main();
                #[allow(
                    clippy::needless_return,
                    clippy::diverging_sub_expression,
                    clippy::unwrap_in_result,
                    unreachable_code
                )]
                {
                    return ::insane::__private::block_on(
                        ::insane::__private::MacroConfig {
                            cores: ::core::option::Option::Some(2usize),
                            driver: ::core::option::Option::Some("epoll"),
                            pin_cores: ::core::option::Option::None,
                            tokio_compat: false,
                            start_paused: false,
                            kind: ::insane::__private::EntryKind::Main,
                        },
                        __insane_body
                    );
                }
            }
        });
        assert_eq!(squashed(&f.block), expected);
    }

    #[test]
    fn main_without_return_type() {
        let file = main_of(
            quote!(),
            quote!(
                async fn main() {}
            ),
        );
        let body = squashed(&file);
        assert!(body.contains("asyncfn__insane_main(){}"), "{body}");
        assert!(
            body.contains("cores:::core::option::Option::None"),
            "{body}"
        );
        assert!(body.contains("EntryKind::Main"), "{body}");
    }

    #[test]
    fn never_and_impl_trait_return_types() {
        for (item, output) in [
            (
                quote!(
                    async fn main() -> ! {
                        loop {}
                    }
                ),
                "->!",
            ),
            (
                quote!(
                    async fn main() -> impl std::process::Termination {}
                ),
                "->implstd::process::Termination",
            ),
        ] {
            let out = squashed(main_of(quote!(), item.clone()));
            assert!(
                out.contains(&format!("asyncfn__insane_main(){output}")),
                "{out}"
            );
            // Tests cannot erase these output types.
            let test = squashed(expand_test(quote!(), item));
            assert!(!test.contains("dyn::core::future::Future"), "{test}");
            assert!(test.contains("block_on"), "{test}");
        }
    }

    #[test]
    fn functions_with_arguments_use_an_async_block() {
        let file = main_of(
            quote!(),
            quote!(
                pub(crate) async fn run(n: u32) -> u32 {
                    n + 1
                }
            ),
        );
        let syn::Item::Fn(f) = &file.items[0] else {
            panic!()
        };
        assert_eq!(f.sig.ident, "run");
        assert_eq!(f.sig.inputs.len(), 1);
        let body = squashed(&f.block);
        assert!(
            body.starts_with("{let__insane_body=asyncmove{n+1};"),
            "{body}"
        );
        assert!(compile_errors(&file.to_token_stream()).is_empty());
    }

    #[test]
    fn self_uses_an_async_block() {
        for item in [
            quote!(
                async fn make() -> Self {
                    Self::new()
                }
            ),
            quote!(
                async fn make() -> Foo {
                    let x = Self::X;
                    Foo(x)
                }
            ),
        ] {
            let out = squashed(main_of(quote!(), item));
            assert!(!out.contains("fn__insane_main"), "{out}");
            assert!(out.contains("let__insane_body=asyncmove{"), "{out}");
        }
    }

    #[test]
    fn test_expansion_shape() {
        let out = expand_test(
            quote!(cores = 2),
            // The input under test: its `#[ignore]` must be kept.
            quote! {
                #[should_panic(expected = "boom")]
                #[ignore]
                async fn it_works() { panic!("boom") }
            },
        );
        let file: syn::File = syn::parse2(out.clone()).unwrap();
        let syn::Item::Fn(f) = &file.items[0] else {
            panic!()
        };
        assert_eq!(f.sig.ident, "it_works");
        let attrs: Vec<String> = f.attrs.iter().map(squashed).collect();
        assert_eq!(
            attrs,
            [
                "#[should_panic(expected=\"boom\")]",
                "#[ignore]",
                "#[::core::prelude::v1::test]"
            ]
        );
        let body = squashed(&f.block);
        let expected = squashed(quote! {
            #[allow(clippy::unused_async, clippy::future_not_send)]
            async fn __insane_main() { panic!("boom") }
            let __insane_body = __insane_main();
            let __insane_body = ::core::pin::pin!(__insane_body);
            let __insane_body: ::core::pin::Pin<
                &mut dyn ::core::future::Future<Output = ()>,
            > = __insane_body;
        });
        assert!(body.starts_with(&format!("{{{expected}")), "{body}");
        assert!(body.contains("EntryKind::Test"), "{body}");
        assert!(body.contains("Some(2usize)"), "{body}");
    }

    #[test]
    fn test_with_result() {
        let out = squashed(expand_test(
            quote!(),
            quote!(
                async fn t() -> Result<(), String> {
                    Err("no".into())
                }
            ),
        ));
        assert!(out.contains("Future<Output=Result<(),String>>"), "{out}");
    }

    #[test]
    fn missing_async() {
        let item = quote!(
            fn main() {}
        );
        assert_eq!(
            main_errors(quote!(), item.clone()),
            ["the `async` keyword is missing from the function declaration"]
        );
        assert_eq!(
            test_errors(quote!(), item),
            ["the `async` keyword is missing from the function declaration"]
        );
    }

    #[test]
    fn errors_still_expand_the_function() {
        let out = expand_main(
            quote!(cores = 0),
            quote!(
                async fn main() {
                    work().await
                }
            ),
        );
        let file: syn::File = syn::parse2(out.clone()).unwrap();
        // The fn plus the `compile_error!` item.
        assert_eq!(file.items.len(), 2);
        let syn::Item::Fn(f) = &file.items[0] else {
            panic!()
        };
        assert!(f.sig.asyncness.is_none());
        assert_eq!(compile_errors(&out), ["cores must be at least 1"]);
    }

    #[test]
    fn main_with_arguments() {
        assert_eq!(
            main_errors(
                quote!(),
                quote!(
                    async fn main(x: u32) {}
                )
            ),
            ["#[insane::main] does not take function arguments"]
        );
    }

    #[test]
    fn test_with_arguments() {
        assert_eq!(
            test_errors(
                quote!(),
                quote!(
                    async fn t(x: u32) {}
                )
            ),
            ["#[insane::test] does not take function arguments"]
        );
    }

    #[test]
    fn generic_main() {
        assert_eq!(
            main_errors(
                quote!(),
                quote!(
                    async fn main<T>() {}
                )
            ),
            ["#[insane::main]: a `main` function cannot be generic"]
        );
        assert_eq!(
            test_errors(
                quote!(),
                quote!(
                    async fn t<T: Default>() {}
                )
            ),
            ["#[insane::test]: a test function cannot be generic"]
        );
    }

    #[test]
    fn argument_errors_are_reported() {
        assert_eq!(
            main_errors(
                quote!(driver = "xdp"),
                quote!(
                    async fn main() {}
                )
            ),
            [r#"unknown driver "xdp": expected one of "auto", "uring", "epoll""#]
        );
        assert_eq!(
            test_errors(
                quote!(foo = 1),
                quote!(
                    async fn t() {}
                )
            ),
            [
                "unknown argument `foo`: expected `cores`, `driver`, `pin_cores`, `tokio_compat`, `start_paused`, `flavor` or `worker_threads`"
            ]
        );
        assert_eq!(
            main_errors(
                quote!(cores = 1, cores = 2),
                quote!(
                    async fn main() {}
                )
            ),
            ["duplicate argument `cores`"]
        );
        let flavor = main_errors(
            quote!(flavor = "current_thread", worker_threads = 2),
            quote!(
                async fn main() {}
            ),
        );
        assert_eq!(flavor.len(), 1);
        assert!(flavor[0].contains("runs on one core"), "{flavor:?}");
    }

    #[test]
    fn worker_threads_maps_to_cores() {
        let out = squashed(expand_main(
            quote!(worker_threads = 4),
            quote!(
                async fn main() {}
            ),
        ));
        assert!(
            out.contains("cores:::core::option::Option::Some(4usize)"),
            "{out}"
        );
        assert!(compile_errors(&out.parse().unwrap()).is_empty());
    }

    #[test]
    fn signature_and_argument_errors_together() {
        assert_eq!(
            main_errors(
                quote!(cores = 0),
                quote!(
                    fn main(x: u8) {}
                )
            ),
            [
                "the `async` keyword is missing from the function declaration",
                "#[insane::main] does not take function arguments",
                "cores must be at least 1",
            ]
        );
    }

    #[test]
    fn second_test_attribute() {
        for attr in [
            quote!(#[test]),
            quote!(#[::core::prelude::v1::test]),
            quote!(#[std::prelude::rust_2024::test]),
        ] {
            let errors = test_errors(quote!(), quote!(#attr async fn t() {}));
            assert_eq!(errors.len(), 1, "{attr}");
            assert!(errors[0].starts_with("second test attribute"), "{errors:?}");
        }
        // Not test attributes.
        assert!(
            test_errors(
                quote!(),
                quote!(
                    #[tested]
                    async fn t() {}
                )
            )
            .is_empty()
        );
        assert!(
            test_errors(
                quote!(),
                quote!(
                    #[my::test]
                    async fn t() {}
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn not_a_function() {
        let out = expand_main(
            quote!(),
            quote!(
                struct Foo;
            ),
        );
        assert_eq!(
            compile_errors(&out),
            ["#[insane::main] can only be used on an `async fn`"]
        );
        // The item is handed back.
        assert!(squashed(&out).starts_with("structFoo;"));
    }

    #[test]
    fn body_with_syntax_errors_is_passed_through() {
        // The body is not parsed, only split at `;`: rustc will report the
        // error inside the body itself.
        let out = expand_main(quote!(), quote!(async fn main() { let = ; }));
        assert!(compile_errors(&out).is_empty());
        assert!(squashed(&out).contains("asyncfn__insane_main(){let=;}"));
    }
}
