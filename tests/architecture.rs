//! The house reads forwards: no top-level module of `src/` imports one that imports it back.
//!
//! Every `crate::MODULE` path outside `#[cfg(test)]` code and comments is read, in `use` lines
//! (`use crate::{a, b::c}` included) and inline paths alike, and the graph of top-level
//! modules they make must have no circle. Run with `--nocapture` to see the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source without comments, string literals and `#[cfg(test)]` items.
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len() - body, |end| end + close.len());
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            i += j + 1;
        } else if rest.starts_with("'\"'") {
            i += 3;
        } else if rest.starts_with("#[cfg(test)]") {
            i += "#[cfg(test)]".len() + item_len(&text[i + "#[cfg(test)]".len()..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of the item that starts `text`: up to its `;` or its matching `}`.
fn item_len(text: &str) -> usize {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            ';' if depth == 0 => return at + 1,
            _ => {}
        }
    }
    text.len()
}

/// The top-level modules a piece of code names through `crate::`.
fn targets(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // credwatch_sim::crate... or my_crate::
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the first name of each top-level item.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_name(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.extend(first_name(&item));
        } else {
            found.extend(first_name(rest));
        }
    }
    found
}

fn first_name(text: &str) -> Option<String> {
    let name: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ reads") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The graph: each top-level module and the top-level modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name")
            .trim_end_matches(".rs")
            .to_owned();
        // The crate root and the binary only declare and wire; a module's test file is test code.
        if top == "lib" || top == "main" || relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("reads");
        let names = targets(&code_of(&text));
        let edges = graph.entry(top.clone()).or_default();
        edges.extend(names.into_iter().filter(|name| *name != top));
    }
    graph
}

/// Every circle, as the modules on it (strongly connected components of more than one).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(node) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|node| (node, reaches(node))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if done.contains(node) || !reach[node].contains(node) {
            continue;
        }
        let component: Vec<String> = graph
            .keys()
            .filter(|other| reach[node].contains(*other) && reach[*other].contains(node))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let graph = graph();
    for (module, uses) in &graph {
        println!(
            "{module} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(graph.len() >= 15, "the graph was read: {graph:?}");
    let circles = circles(&graph);
    assert!(
        circles.is_empty(),
        "modules that import each other (a circle each): {circles:?}\n{graph:#?}"
    );
}

#[test]
fn the_reader_sees_what_it_must_and_nothing_else() {
    let code = code_of(
        "use crate::a::X;\nuse crate::{b, c::{D, E}, self};\nfn f() { crate::d::g(); }\n\
         // crate::comment\n/* crate::block */\nconst S: &str = \"crate::string\";\n\
         #[cfg(test)]\nmod tests { use crate::tested; }\n#[cfg(test)]\nuse crate::test_only;\n\
         fn h() { my_crate::not(); }\n",
    );
    let found: Vec<String> = targets(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d"]);
    let mut looped = BTreeMap::new();
    looped.insert("x".to_owned(), BTreeSet::from(["y".to_owned()]));
    looped.insert("y".to_owned(), BTreeSet::from(["z".to_owned()]));
    looped.insert("z".to_owned(), BTreeSet::from(["x".to_owned()]));
    looped.insert("w".to_owned(), BTreeSet::from(["x".to_owned()]));
    assert_eq!(circles(&looped), [["x", "y", "z"]]);
}
