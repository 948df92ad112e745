//! The crate's shape, checked: no import cycle between its modules, and no module but `start`
//! uses `http` (services know nothing of HTTP). Reads `src/` as text: every `crate::…`,
//! `super::…` and child-module path (lines that are comments excluded) is an edge from the module of
//! the file to the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules (`a::b`, the crate root `""`) and the modules each one uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The longest known module that `path` (segments from the crate root) starts with.
fn resolve(modules: &BTreeSet<String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// Every path in `code` that starts with `crate::`, `super::` or one of `children`.
fn paths_in(code: &str, children: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if starts_word && (bytes[i].is_alphabetic() || bytes[i] == '_') {
            let mut j = i;
            let mut segments = Vec::new();
            loop {
                let start = j;
                while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_') {
                    j += 1;
                }
                segments.push(bytes[start..j].iter().collect::<String>());
                if j + 2 < bytes.len()
                    && bytes[j] == ':'
                    && bytes[j + 1] == ':'
                    && (bytes[j + 2].is_alphabetic() || bytes[j + 2] == '_')
                {
                    j += 2;
                } else {
                    break;
                }
            }
            let head = segments[0].as_str();
            if segments.len() > 1 && (head == "crate" || head == "super" || children.iter().any(|c| c == head)) {
                out.push((head.to_string(), segments[1..].to_vec()));
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &all {
        let module = module_of(&src, file);
        let children: Vec<String> = modules
            .iter()
            .filter_map(|m| {
                let rest = if module.is_empty() {
                    Some(m.as_str())
                } else {
                    m.strip_prefix(&format!("{module}::"))
                };
                rest.filter(|r| !r.is_empty() && !r.contains("::")).map(str::to_string)
            })
            .collect();
        let code: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(module.clone()).or_default();
        for (head, rest) in paths_in(&code, &children) {
            let mut full: Vec<&str> = match head.as_str() {
                "crate" => Vec::new(),
                "super" => {
                    let mut p: Vec<&str> = if module.is_empty() {
                        Vec::new()
                    } else {
                        module.split("::").collect()
                    };
                    p.pop();
                    p
                }
                child => {
                    let mut p = if module.is_empty() {
                        Vec::new()
                    } else {
                        module.split("::").collect::<Vec<_>>()
                    };
                    p.push(child);
                    p
                }
            };
            full.extend(rest.iter().map(String::as_str));
            if let Some(target) = resolve(&modules, &full) {
                if target != module {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, if any, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|m| m == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn the_node_crate_has_no_import_cycle() {
    let graph = graph();
    // The crate root only declares and re-exports modules.
    let mut without_root = graph.clone();
    without_root.remove("");
    if let Some(cycle) = find_cycle(&without_root) {
        panic!("import cycle between modules of sigil-node: {}", cycle.join(" → "));
    }
}

#[test]
fn only_start_uses_http() {
    let graph = graph();
    let offenders: Vec<&String> = graph
        .iter()
        .filter(|(module, uses)| {
            !module.is_empty()
                && *module != "start"
                && !module.starts_with("http")
                && uses.iter().any(|u| u == "http" || u.starts_with("http::"))
        })
        .map(|(module, _)| module)
        .collect();
    assert!(offenders.is_empty(), "services must not use `http`: {offenders:?}");
}

#[test]
fn the_checker_finds_a_cycle_and_an_http_import() {
    // The checks above fail when they should: a graph with a cycle is caught…
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
    // …and paths are read as the compiler resolves them.
    let paths = paths_in(
        "use crate::signing::pool::{a, b};\nlet x = super::host::f(); code::g(); // crate::no",
        &["code".into()],
    );
    let heads: Vec<&str> = paths.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(heads, ["crate", "super", "code", "crate"]);
    let graph = self::graph();
    assert!(
        graph["start"].contains("http"),
        "the real graph has start → http: {:?}",
        graph["start"]
    );
    assert!(
        graph["signing::share"].contains("signing::pool"),
        "{:?}",
        graph["signing::share"]
    );
}
