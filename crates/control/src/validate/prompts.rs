//! `[prompts]`: how far one render of a stored prompt may go.

use super::checker::Checker;
use crate::raw::RawPrompts;
use crate::spec::RenderLimits;

pub(super) fn render_limits(c: &mut Checker, p: &RawPrompts) -> RenderLimits {
    for (field, value) in [
        ("max_rendered_bytes", p.max_rendered_bytes),
        ("fuel", p.fuel),
    ] {
        c.ensure(
            value > 0,
            format!("prompts.{field}"),
            "must be greater than 0",
        );
    }
    RenderLimits {
        max_bytes: usize::try_from(p.max_rendered_bytes).unwrap_or(usize::MAX),
        fuel: p.fuel,
    }
}
