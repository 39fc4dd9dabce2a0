//! The module tree of a crate, and every path of its production code resolved to the file
//! that defines what the path names.
//!
//! 1. From each crate root (`lib.rs`, `main.rs`) the `mod` declarations are followed to their
//!    files (`x.rs` or `x/mod.rs`, beside a `mod.rs`/root or in the folder named after the
//!    file; `#[path]` honoured); inline `mod x { .. }` blocks stay in their file. A module
//!    declared under `#[cfg(test)]` is test code, and so is everything below it.
//! 2. Each module records its children, the names its items define, and its `use`s (alias,
//!    path as written, whether it is re-exported).
//! 3. A path starts at `crate`, `self`, `super`, or a name in the module's scope (a child
//!    module, an item, a `use`'s alias, or a name a glob `use` brings in); each further segment
//!    is looked up the same way in the module reached. A name that a `use` brings in is followed
//!    to where that `use` points, so a re-export is never where a path ends. A path that starts
//!    anywhere else (another crate, the prelude, a local variable) is not this crate's.

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;

use super::source::{is_test, Crate};

pub type ModPath = Vec<String>;

/// How deep the lookup follows `use`s into `use`s before it gives up (a `use` that names
/// itself would never end).
const MAX_DEPTH: usize = 32;

#[derive(Default)]
pub struct Module {
    pub file: String,
    pub test: bool,
    children: BTreeSet<String>,
    items: BTreeSet<String>,
    uses: Vec<UseLeaf>,
}

/// One name a `use` tree brings in: `alias` is `None` for a glob.
#[derive(Clone)]
struct UseLeaf {
    alias: Option<String>,
    path: Vec<String>,
    public: bool,
    line: usize,
}

/// What a path names: a module, or an item defined in one.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Module(ModPath),
    Item(ModPath, String),
}

impl Target {
    fn module(&self) -> &ModPath {
        match self {
            Target::Module(m) | Target::Item(m, _) => m,
        }
    }
}

/// One path in one file that names something another file of the crate defines.
pub struct Reference {
    pub from: String,
    pub line: usize,
    pub to: String,
    /// The name the path reaches: the item, or the module.
    pub name: String,
    /// A `pub use` of something in the using module's own subtree: a re-export, not a use.
    pub reexport: bool,
}

pub struct Tree {
    pub modules: BTreeMap<ModPath, Module>,
    /// Every file reached from a root: `true` when only test code declares it.
    pub reached: BTreeMap<String, bool>,
}

impl Tree {
    pub fn build(krate: &Crate) -> Tree {
        let mut tree = Tree {
            modules: BTreeMap::new(),
            reached: BTreeMap::new(),
        };
        for root in ["lib.rs", "main.rs"] {
            if krate.files.contains_key(root) {
                tree.add_file(krate, root, Vec::new(), false);
            }
        }
        tree
    }

    /// Whether a file holds only test code (declared under `#[cfg(test)]`). A file no root
    /// reaches counts as production.
    pub fn is_test_file(&self, file: &str) -> bool {
        self.reached.get(file).copied().unwrap_or(false)
    }

    fn add_file(&mut self, krate: &Crate, file: &str, path: ModPath, test: bool) {
        if self.reached.insert(file.to_owned(), test).is_some() {
            return;
        }
        let Some(source) = krate.files.get(file) else {
            return;
        };
        let dir = match file.rsplit_once('/') {
            Some((dir, name)) => (dir.to_owned() + "/", name),
            None => (String::new(), file),
        };
        let children_dir = match dir.1 {
            "lib.rs" | "main.rs" | "mod.rs" => dir.0.clone(),
            name => format!("{}{}/", dir.0, name.trim_end_matches(".rs")),
        };
        self.add_items(krate, file, &source.ast.items, path, test, &children_dir);
    }

    fn add_items(
        &mut self,
        krate: &Crate,
        file: &str,
        items: &[syn::Item],
        path: ModPath,
        test: bool,
        dir: &str,
    ) {
        let module = self.modules.entry(path.clone()).or_default();
        module.file = file.to_owned();
        module.test = test;
        for item in items {
            let item_test = test || is_test(item_attrs(item));
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    self.module_mut(&path).children.insert(name.clone());
                    let mut child = path.clone();
                    child.push(name.clone());
                    match &m.content {
                        Some((_, inner)) => {
                            let inner_dir = format!("{dir}{name}/");
                            self.add_items(krate, file, inner, child, item_test, &inner_dir);
                        }
                        None => {
                            if let Some(found) = child_file(krate, dir, &name, &m.attrs) {
                                self.add_file(krate, &found, child, item_test);
                            }
                        }
                    }
                }
                syn::Item::Use(u) if !item_test => {
                    let public = !matches!(u.vis, syn::Visibility::Inherited);
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, &mut Vec::new(), public, &mut leaves);
                    self.module_mut(&path).uses.extend(leaves);
                }
                _ if item_test => {}
                other => {
                    if let Some(name) = item_name(other) {
                        self.module_mut(&path).items.insert(name);
                    }
                }
            }
        }
    }

    fn module_mut(&mut self, path: &ModPath) -> &mut Module {
        self.modules.entry(path.clone()).or_default()
    }

    /// The file that defines what a target names.
    pub fn file_of(&self, target: &Target) -> Option<&str> {
        self.modules.get(target.module()).map(|m| m.file.as_str())
    }

    /// What `segments`, written in module `from`, names in this crate.
    pub fn resolve(&self, from: &ModPath, segments: &[String]) -> Option<Target> {
        self.resolve_at(from, segments, 0)
    }

    fn resolve_at(&self, from: &ModPath, segments: &[String], depth: usize) -> Option<Target> {
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" => self.walk(Vec::new(), rest, depth),
            "self" => self.walk(from.clone(), rest, depth),
            "super" => self.walk(parent(from)?, rest, depth),
            _ => self.step(from, segments, depth),
        }
    }

    /// The rest of a path, from module `at`.
    fn walk(&self, at: ModPath, segments: &[String], depth: usize) -> Option<Target> {
        match segments.split_first() {
            None => Some(Target::Module(at)),
            Some((first, rest)) if first == "super" => self.walk(parent(&at)?, rest, depth),
            Some(_) => self.step(&at, segments, depth),
        }
    }

    /// The first segment looked up in module `at`'s scope, the rest walked from there.
    fn step(&self, at: &ModPath, segments: &[String], depth: usize) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        let module = self.modules.get(at)?;
        let (name, rest) = segments.split_first()?;
        if module.children.contains(name) {
            let mut child = at.clone();
            child.push(name.clone());
            return self.walk(child, rest, depth);
        }
        if module.items.contains(name) {
            return Some(Target::Item(at.clone(), name.clone()));
        }
        if let Some(leaf) = module.uses.iter().find(|u| u.alias.as_ref() == Some(name)) {
            return match self.resolve_at(at, &leaf.path, depth + 1)? {
                Target::Module(m) => self.walk(m, rest, depth + 1),
                item => Some(item),
            };
        }
        module
            .uses
            .iter()
            .filter(|u| u.alias.is_none())
            .find_map(|glob| match self.resolve_at(at, &glob.path, depth + 1)? {
                Target::Module(m) if &m != at => self.step(&m, segments, depth + 1),
                _ => None,
            })
    }

    /// Every path of a production file that names something another file defines: `use`
    /// leaves, and paths in code (types, expressions, patterns, macro names) that name an item.
    pub fn references(&self, krate: &Crate, file: &str) -> Vec<Reference> {
        let mut found = Vec::new();
        let Some(source) = krate.files.get(file) else {
            return found;
        };
        let Some(path) = self
            .modules
            .iter()
            .find(|(_, m)| m.file == file)
            .map(|(p, _)| p.clone())
        else {
            return found;
        };
        if self.is_test_file(file) {
            return found;
        }
        let mut visitor = PathVisitor {
            tree: self,
            file,
            module: path,
            found: &mut found,
        };
        visitor.visit_file(&source.ast);
        found
    }
}

fn parent(path: &ModPath) -> Option<ModPath> {
    let (_, init) = path.split_last()?;
    Some(init.to_vec())
}

fn child_file(krate: &Crate, dir: &str, name: &str, attrs: &[syn::Attribute]) -> Option<String> {
    let explicit = attrs.iter().find_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(format!("{dir}{}", s.value())),
            _ => None,
        },
        _ => None,
    });
    let candidates = match explicit {
        Some(path) => vec![path],
        None => vec![format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")],
    };
    candidates.into_iter().find(|c| krate.files.contains_key(c))
}

fn use_leaves(tree: &syn::UseTree, prefix: &mut Vec<String>, public: bool, out: &mut Vec<UseLeaf>) {
    let mut leaf = |alias: Option<String>, path: Vec<String>, span: proc_macro2::Span| {
        out.push(UseLeaf {
            alias,
            path,
            public,
            line: span.start().line,
        })
    };
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, public, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            leaf(prefix.last().cloned(), prefix.clone(), n.ident.span());
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            leaf(Some(n.ident.to_string()), path, n.ident.span());
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            leaf(Some(r.rename.to_string()), path, r.ident.span());
        }
        syn::UseTree::Glob(g) => leaf(None, prefix.clone(), g.star_token.spans[0]),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                use_leaves(tree, prefix, public, out);
            }
        }
    }
}

pub fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Walks one file's production code, in the module each item stands in.
struct PathVisitor<'a> {
    tree: &'a Tree,
    file: &'a str,
    module: ModPath,
    found: &'a mut Vec<Reference>,
}

impl PathVisitor<'_> {
    fn note(&mut self, target: Option<Target>, line: usize, reexport: bool) {
        let Some(target) = target else { return };
        let name = match &target {
            Target::Item(_, name) => name.clone(),
            Target::Module(path) => path.last().cloned().unwrap_or_else(|| "crate".to_owned()),
        };
        let Some(to) = self.tree.file_of(&target) else {
            return;
        };
        if to != self.file {
            self.found.push(Reference {
                from: self.file.to_owned(),
                line,
                to: to.to_owned(),
                name,
                reexport,
            });
        }
    }
}

impl<'ast> Visit<'ast> for PathVisitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.module.push(m.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let public = !matches!(u.vis, syn::Visibility::Inherited);
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), public, &mut leaves);
        for leaf in leaves {
            let target = self.tree.resolve(&self.module, &leaf.path);
            let reexport = leaf.public
                && target
                    .as_ref()
                    .is_some_and(|t| t.module().starts_with(&self.module));
            self.note(target, leaf.line, reexport);
        }
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            // A path in code that ends at a module is a variable or a type parameter that
            // happens to bear a module's name: only items count.
            let target = self
                .tree
                .resolve(&self.module, &segments)
                .filter(|t| matches!(t, Target::Item(..)));
            if let Some(first) = path.segments.first() {
                self.note(target, first.ident.span().start().line, false);
            }
        }
        syn::visit::visit_path(self, path);
    }
}
