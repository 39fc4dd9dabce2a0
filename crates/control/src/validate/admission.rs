//! `[admission]`: the queue limits of each priority class, and the autoscaling target.

use std::time::Duration;

use super::checker::Checker;
use crate::locate::key_segment;
use crate::raw::RawAdmission;
use crate::spec::{AdmissionSpec, Class};

pub(super) fn admission(c: &mut Checker, raw: &RawAdmission) -> AdmissionSpec {
    let mut spec = AdmissionSpec::default();
    c.ensure(
        raw.target_utilization > 0.0 && raw.target_utilization <= 1.0,
        "admission.target_utilization",
        "must be greater than 0 and at most 1",
    );
    spec.target_utilization = raw.target_utilization;
    for (name, limits) in &raw.classes {
        let path = format!("admission.classes.{}", key_segment(name));
        let Ok(class) = name.parse::<Class>() else {
            c.err(
                path,
                "not a priority class: expected critical, interactive, standard or batch",
            );
            continue;
        };
        let target = &mut spec.classes[class];
        if let Some(ms) = limits.max_wait_ms {
            c.ensure(
                ms > 0,
                format!("{path}.max_wait_ms"),
                "must be greater than 0",
            );
            target.max_wait = Duration::from_millis(ms);
        }
        if let Some(room) = limits.max_queue {
            target.max_queue = room;
        }
    }
    spec
}
