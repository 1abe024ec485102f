#!/usr/bin/env python3
"""How much of tokio's public API insane offers under the same path.

The count behind the "coverage of tokio's API" figures in the docs and
issue notes. It builds rustdoc HTML for tokio (the version in Cargo.lock,
features "full") and for the `insane` facade (all features), then compares:

* items: every page rustdoc lists in `all.html` under a module (a struct,
  enum, trait, function, macro, type alias, constant) — present when insane
  has a page at the same path (`net/struct.TcpStream.html`);
* methods: for every item both have, the inherent methods (`impl X { .. }`,
  not trait impls) and, for traits, the required and provided methods —
  present when insane's page has a method of the same name.

A symbol is an item or a method; a module's coverage is the share of
tokio's symbols in that module that insane has. Same name and path is what
"ports by changing imports" needs; it does not prove the same semantics
(the conformance tests do that).

Usage: scripts/tokio-api-coverage.py [--tokio-doc DIR --insane-doc DIR]
       [--details MODULE]
Without the doc directories it builds them (a few minutes, own target dir).
"""

import argparse
import html
import os
import re
import subprocess
import sys
import tempfile

MODULES = ["net", "io", "time", "task", "runtime", "sync", "signal", "fs", "process", "(root)"]


def tokio_version(root):
    lock = open(os.path.join(root, "Cargo.lock")).read()
    m = re.search(r'name = "tokio"\nversion = "([^"]+)"', lock)
    if not m:
        sys.exit("tokio is not in Cargo.lock")
    return m.group(1)


def build_docs(root, target):
    """rustdoc HTML for tokio (full) and insane (all features)."""
    version = tokio_version(root)
    krate = os.path.join(target, "tokio-doc-crate")
    os.makedirs(os.path.join(krate, "src"), exist_ok=True)
    with open(os.path.join(krate, "Cargo.toml"), "w") as f:
        f.write(
            '[package]\nname = "tokio-doc-crate"\nversion = "0.0.0"\nedition = "2021"\n'
            "[workspace]\n"
            f'[dependencies]\ntokio = {{ version = "={version}", features = ["full"] }}\n'
        )
    open(os.path.join(krate, "src", "lib.rs"), "w").close()
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(target, "tokio"))
    subprocess.run(["cargo", "doc", "-q", "-p", "tokio"], cwd=krate, env=env, check=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(target, "insane"))
    subprocess.run(
        ["cargo", "doc", "-q", "-p", "insane", "--all-features", "--no-deps"],
        cwd=root,
        env=env,
        check=True,
    )
    return (
        os.path.join(target, "tokio", "doc", "tokio"),
        os.path.join(target, "insane", "doc", "insane"),
    )


def items(doc):
    """Page paths (relative to the crate's doc dir) listed in all.html."""
    text = open(os.path.join(doc, "all.html")).read()
    return sorted(set(re.findall(r'<a href="([^"]+\.html)">', text)))


def module_of(page):
    return page.split("/")[0] if "/" in page else "(root)"


def methods(doc, page):
    """Inherent methods of a type page, or the methods of a trait page."""
    path = os.path.join(doc, page)
    if not os.path.exists(path):
        return set()
    text = open(path).read()
    if os.path.basename(page).startswith("trait."):
        section = text.split('id="implementors"')[0]
    else:
        start = text.find('id="implementations-list"')
        if start < 0:
            return set()
        end = text.find("<h2", start)
        section = text[start : end if end > 0 else len(text)]
    names = re.findall(r'id="(?:ty)?method\.([A-Za-z0-9_]+)"', section)
    return {html.unescape(n) for n in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokio-doc")
    ap.add_argument("--insane-doc")
    ap.add_argument("--details", help="print tokio's symbols missing from insane in this module")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.tokio_doc and args.insane_doc:
        tokio_doc, insane_doc = args.tokio_doc, args.insane_doc
    else:
        tokio_doc, insane_doc = build_docs(root, os.path.join(tempfile.gettempdir(), "insane-api-coverage"))

    ours = set(items(insane_doc))
    rows = {m: [0, 0, []] for m in MODULES}  # have, total, missing
    for page in items(tokio_doc):
        module = module_of(page)
        if module not in rows:
            continue
        row = rows[module]
        row[1] += 1
        name = page.rsplit("/", 1)[-1][:-5]
        if page in ours:
            row[0] += 1
            theirs = methods(tokio_doc, page)
            mine = methods(insane_doc, page)
            row[1] += len(theirs)
            row[0] += len(theirs & mine)
            row[2].extend(f"{page[:-5]}::{m}" for m in sorted(theirs - mine))
        else:
            row[1] += len(methods(tokio_doc, page))
            row[2].append(f"{page[:-5]} (and its methods)" if "." in name else page)

    print(f"{'module':<10} {'insane':>7} {'tokio':>7} {'coverage':>9}")
    have_all = total_all = 0
    for m in MODULES:
        have, total, _ = rows[m]
        if total == 0:
            continue
        have_all += have
        total_all += total
        print(f"{m:<10} {have:>7} {total:>7} {100.0 * have / total:>8.1f}%")
    print(f"{'all':<10} {have_all:>7} {total_all:>7} {100.0 * have_all / total_all:>8.1f}%")
    if args.details:
        print(f"\nmissing in {args.details}:")
        for s in rows.get(args.details, [0, 0, []])[2]:
            print("  " + s)


if __name__ == "__main__":
    main()
