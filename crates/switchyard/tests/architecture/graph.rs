//! The crate's files as a graph of imports: its cycles, and the layering rules.

use std::collections::{BTreeMap, BTreeSet};

use super::modules::{Reference, Tree};
use super::source::Crate;

/// Every reference of the crate's production files, re-exports included.
pub fn references(krate: &Crate) -> Vec<Reference> {
    let tree = Tree::build(krate);
    krate
        .files
        .keys()
        .flat_map(|file| tree.references(krate, file))
        .collect()
}

/// The file-level import cycles: each strongly connected set of two or more files, with every
/// reference inside it (file, line and the names used), first one per pair of files.
pub fn cycles(krate: &Crate) -> Vec<String> {
    let mut edges: BTreeMap<(String, String), (usize, BTreeSet<String>)> = BTreeMap::new();
    for r in references(krate).into_iter().filter(|r| !r.reexport) {
        let entry = edges
            .entry((r.from, r.to))
            .or_insert((r.line, BTreeSet::new()));
        entry.0 = entry.0.min(r.line);
        entry.1.insert(r.name);
    }
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().push(to);
        graph.entry(to).or_default();
    }
    strongly_connected(&graph)
        .into_iter()
        .filter(|set| set.len() > 1)
        .map(|set| {
            let names: Vec<String> = set.iter().map(|f| krate.path_of(f)).collect();
            let mut message = format!("import cycle of {} files: {}", set.len(), names.join(", "));
            for ((from, to), (line, used)) in &edges {
                if set.contains(from.as_str()) && set.contains(to.as_str()) {
                    let used: Vec<&str> = used.iter().map(String::as_str).collect();
                    message += &format!(
                        "\n    {}:{line} uses {} ({})",
                        krate.path_of(from),
                        krate.path_of(to),
                        used.join(", ")
                    );
                }
            }
            message
        })
        .collect()
}

/// Tarjan's strongly connected components:
/// 1. a depth-first walk numbers each node when it is first entered (`index`) and keeps the
///    lowest number reachable from it through the nodes still on the stack (`low`);
/// 2. a node whose `low` is its own number is the root of a component: the stack down to it
///    is that component.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<BTreeSet<&'a str>> {
    struct Walk<'a, 'g> {
        graph: &'g BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<&'a str>>,
    }
    impl<'a> Walk<'a, '_> {
        fn enter(&mut self, node: &'a str) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            self.on_stack.insert(node);
            for &next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.enter(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut set = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    set.insert(top);
                    if top == node {
                        break;
                    }
                }
                self.found.push(set);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.enter(node);
        }
    }
    walk.found
}

/// References from files under a rule's prefix to files under one of its forbidden prefixes
/// (paths under `src/`), re-exports included.
pub fn layer_violations(krate: &Crate, rules: &[(&str, &[&str])]) -> Vec<String> {
    let mut found = Vec::new();
    for r in references(krate) {
        for (prefix, forbidden) in rules {
            if let Some(bad) = forbidden
                .iter()
                .find(|f| r.from.starts_with(prefix) && r.to.starts_with(*f))
            {
                found.push(format!(
                    "{}:{} uses {} ({}): files under `{prefix}` may not import `{bad}`",
                    krate.path_of(&r.from),
                    r.line,
                    krate.path_of(&r.to),
                    r.name
                ));
            }
        }
    }
    found
}
