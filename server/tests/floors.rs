//! The backend's floors (ARCHITECTURE.md): every module of `server/src` sits on one, and imports only from its own floor or below, with no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `server/src` and its floor: 0 core, 1 services, 2 adapters, 3 the
/// binary's wiring. A new module must be added here, on the floor it belongs to.
const FLOORS: &[(&str, u8)] = &[
    ("clock", 0),
    ("db", 0),
    ("events", 0),
    ("audit", 0),
    ("store", 0),
    ("jobs", 0),
    ("versions", 1),
    ("registry", 1),
    ("tracking", 1),
    ("artifacts", 1),
    ("fleet", 1),
    ("live", 1),
    ("rollback", 1),
    ("deployments", 1),
    ("metrics", 1),
    ("identity", 1),
    ("webhooks", 1),
    ("trail", 1),
    ("demo", 1),
    ("http", 2),
    ("agent", 2),
    ("config", 3),
    ("telemetry", 3),
    ("application", 3),
    ("main", 3),
    ("lib", 3),
];

const NAMES: [&str; 4] = ["core", "services", "adapters", "wiring"];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`audit/chain.rs` → `audit`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its `#[cfg(test)]` module (tests may reach
/// anything they check).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a file names through `crate::` (in paths and in `use crate::{a, b}`).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut first_of_item = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first_of_item = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && first_of_item {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        found.insert(std::mem::take(&mut item));
                        first_of_item = false;
                    }
                }
            }
            if !item.is_empty() {
                found.insert(item);
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_from_its_floor_or_below_and_no_modules_import_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(&floor) = floors.get(module.as_str()) else {
            problems.push(format!("module `{module}` has no floor: add it to FLOORS in {}", file!()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for import in imports(&code(&text)) {
            if import == module {
                continue;
            }
            let Some(&to) = floors.get(import.as_str()) else { continue };
            if to > floor {
                problems.push(format!(
                    "{} ({}) imports `{import}` from the floor above ({})",
                    file.strip_prefix(&src).unwrap().display(),
                    NAMES[floor as usize],
                    NAMES[to as usize]
                ));
            }
            edges.entry(module.clone()).or_default().insert(import);
        }
    }
    // A circle among modules: a walk that comes back to a module it is still inside.
    fn walk(
        at: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|m| m == at) {
            circles.push(format!("{} -> {at}", path[start..].join(" -> ")));
            return;
        }
        if !done.insert(at.to_string()) {
            return;
        }
        path.push(at.to_string());
        for next in edges.get(at).into_iter().flatten() {
            walk(next, edges, path, done, circles);
        }
        path.pop();
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        walk(module, &edges, &mut Vec::new(), &mut done, &mut circles);
    }
    problems.extend(circles.into_iter().map(|c| format!("modules import in a circle: {c}")));
    assert!(problems.is_empty(), "the floors of ARCHITECTURE.md are broken:\n{}", problems.join("\n"));
}

#[test]
fn the_import_reader_sees_paths_and_groups() {
    let seen = imports(
        "use crate::db::{Conn, Db};\nuse crate::{audit::{Change, Target}, events};\nlet x = crate::live::move_to(y);",
    );
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["audit", "db", "events", "live"]);
}
