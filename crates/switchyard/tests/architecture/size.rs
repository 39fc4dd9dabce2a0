//! How long functions and files are.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::Visit;

use super::modules::item_attrs;
use super::source::is_test;

/// A production function or method: where its signature starts and how many lines it spans,
/// from the `fn` to the closing brace.
pub struct Function {
    pub name: String,
    pub line: usize,
    pub lines: usize,
}

/// Every production function of a file (nested ones too), outside `#[cfg(test)]` items.
pub fn functions(ast: &syn::File) -> Vec<Function> {
    let mut visitor = FnVisitor {
        owner: None,
        found: Vec::new(),
    };
    visitor.visit_file(ast);
    visitor.found
}

struct FnVisitor {
    /// The type an `impl` or `trait` block is for, to name its methods `Type::method`.
    owner: Option<String>,
    found: Vec<Function>,
}

impl FnVisitor {
    fn add(&mut self, ident: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let line = fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let name = match &self.owner {
            Some(owner) => format!("{owner}::{ident}"),
            None => ident.to_string(),
        };
        self.found.push(Function {
            name,
            line,
            lines: end + 1 - line,
        });
    }
}

impl<'ast> Visit<'ast> for FnVisitor {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.add(&f.sig.ident, &f.sig.fn_token, &f.block);
        let owner = self.owner.take();
        syn::visit::visit_item_fn(self, f);
        self.owner = owner;
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let owner = match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        let outer = std::mem::replace(&mut self.owner, owner);
        syn::visit::visit_item_impl(self, i);
        self.owner = outer;
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        let outer = self.owner.replace(t.ident.to_string());
        syn::visit::visit_item_trait(self, t);
        self.owner = outer;
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            self.add(&f.sig.ident, &f.sig.fn_token, &f.block);
            let owner = self.owner.take();
            syn::visit::visit_impl_item_fn(self, f);
            self.owner = owner;
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.add(&f.sig.ident, &f.sig.fn_token, block);
        }
        let owner = self.owner.take();
        syn::visit::visit_trait_item_fn(self, f);
        self.owner = owner;
    }
}

/// Lines of code, tests apart: lines on which a token stands (a string literal over several
/// lines counts each), less comments (doc comments too) and less the lines of `#[cfg(test)]`
/// and `#[test]` items, attributes included.
pub fn code_lines(text: &str, ast: &syn::File) -> usize {
    let Ok(tokens) = text.parse::<TokenStream>() else {
        return 0;
    };
    let source: Vec<&str> = text.lines().collect();
    let mut lines = BTreeSet::new();
    mark(tokens, &source, &mut lines);
    let tests = test_lines(ast);
    lines.difference(&tests).count()
}

fn mark(tokens: TokenStream, source: &[&str], lines: &mut BTreeSet<usize>) {
    for token in tokens {
        let span = token.span();
        if is_comment(span, source) {
            continue;
        }
        match token {
            TokenTree::Group(g) => {
                lines.insert(g.span_open().start().line);
                lines.insert(g.span_close().end().line);
                mark(g.stream(), source, lines);
            }
            other => {
                let span = other.span();
                lines.extend(span.start().line..=span.end().line);
            }
        }
    }
}

/// A doc comment reaches the token stream as `#[doc = ".."]` tokens placed on the comment:
/// the source there starts with `//` or `/*`.
fn is_comment(span: proc_macro2::Span, source: &[&str]) -> bool {
    let at = span.start();
    source
        .get(at.line.wrapping_sub(1))
        .map(|line| line.chars().skip(at.column).take(2).collect::<String>())
        .is_some_and(|s| s == "//" || s == "/*")
}

/// The lines of test items, from their first attribute to their end.
pub fn test_lines(ast: &syn::File) -> BTreeSet<usize> {
    let mut visitor = TestLines::default();
    visitor.visit_file(ast);
    visitor.lines
}

#[derive(Default)]
struct TestLines {
    lines: BTreeSet<usize>,
}

impl TestLines {
    fn add(&mut self, span: proc_macro2::Span) {
        self.lines.extend(span.start().line..=span.end().line);
    }
}

impl<'ast> Visit<'ast> for TestLines {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test(item_attrs(item)) {
            self.add(item.span());
        } else {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test(&f.attrs) {
            self.add(f.span());
        } else {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
}
