//! The control state: config versions, applications and rollback targets, the audit chain,
//! prompts and labels, flags, rollouts and the control generation.

use std::collections::{BTreeMap, HashMap};

use switchyard_rollout::{
    AuditEntry, AuditEvent, ChainError, ChainFault, Flag, FlagKind, Rollout, RolloutSpec,
    TargetKind, TargetRef,
};
use switchyard_store::control::{CONFIG_APPLY, MIN_PREFIX};
use switchyard_store::{
    ConfigVersion, PromptRow, PromptSummary, StoreError, StoredRollout, Transact,
};

use crate::{conformance, Backend, Changes};

conformance!(
    config_versions_are_content_addressed_and_kept,
    config_versions_resolve_by_unique_prefix,
    applied_history_current_and_previous,
    applying_a_version_audits_it_in_the_same_transaction,
    a_failed_transaction_leaves_nothing,
    concurrent_changes_from_two_stores_form_one_chain,
    kept_rows_refuse_edits,
    audit_pages_and_tampering,
    a_cut_off_tail_is_found_only_with_a_head,
    prompts_push_label_and_list,
    flags_put_replace_delete_and_generation,
    rollouts_round_trip,
    a_transaction_through_a_trait_object_returns_its_work_or_leaves_nothing,
);

fn version(source: &str, at: i64) -> ConfigVersion {
    ConfigVersion::new(source, None, "ana", format!("set {source}"), at)
}

fn event(i: u64, actor: &str) -> AuditEvent {
    AuditEvent {
        at_ms: 1_000 + i,
        actor: actor.into(),
        action: "flag.set".into(),
        target: format!("flag:f{i}"),
        reason: format!("step {i}"),
        diff: "-a\n+b\n".into(),
    }
}

fn flag(key: &str, on: bool) -> Flag {
    Flag {
        key: key.into(),
        kind: FlagKind::Boolean { on },
        enabled: true,
    }
}

fn rollout(id: &str) -> Rollout {
    let config = |id: &str| TargetRef {
        kind: TargetKind::Config,
        id: id.into(),
    };
    Rollout::new(id, config("v1"), config("v2"), RolloutSpec::default()).unwrap()
}

fn config_versions_are_content_addressed_and_kept(b: &Backend) {
    let store = b.store();
    let v = ConfigVersion::new("a = 1\n", None, "ana", "first", 10);
    assert_eq!(v.id, ConfigVersion::id_of("a = 1\n"));
    assert_eq!(v.id.len(), 64);
    assert!(store.put_config_version(&v).unwrap());
    // Again, even with other metadata: the stored one is kept.
    let again = ConfigVersion {
        message: "other".into(),
        ..v.clone()
    };
    assert!(!store.put_config_version(&again).unwrap());
    assert_eq!(store.config_version(&v.id).unwrap(), Some(v.clone()));
    // An id that is not the text's hash is refused.
    let forged = ConfigVersion {
        source: "a = 2\n".into(),
        ..v.clone()
    };
    assert!(matches!(
        store.put_config_version(&forged),
        Err(StoreError::NotContentAddressed { .. })
    ));
    assert_eq!(store.config_versions(10).unwrap().len(), 1);
}

fn config_versions_resolve_by_unique_prefix(b: &Backend) {
    // Two texts whose ids share their first MIN_PREFIX digits.
    let mut seen: HashMap<String, String> = HashMap::new();
    let (a, bb) = (0..200_000)
        .find_map(|i| {
            let text = format!("n = {i}\n");
            let prefix = ConfigVersion::id_of(&text)[..MIN_PREFIX].to_string();
            seen.insert(prefix, text.clone()).map(|other| (other, text))
        })
        .unwrap();
    let store = b.store();
    let (va, vb) = (version(&a, 1), version(&bb, 2));
    store.put_config_version(&va).unwrap();
    store.put_config_version(&vb).unwrap();
    let shared = &va.id[..MIN_PREFIX];
    match store.config_version(shared) {
        Err(StoreError::AmbiguousPrefix { prefix, matches }) => {
            assert_eq!(prefix, shared);
            let mut want = vec![va.id.clone(), vb.id.clone()];
            want.sort();
            assert_eq!(matches, want);
        }
        other => panic!("{other:?}"),
    }
    let err = store.config_version(shared).unwrap_err().to_string();
    assert!(err.contains("ambiguous") && err.contains(&va.id), "{err}");
    // A longer prefix (in capitals, with spaces) that tells them apart.
    let n = (0..64)
        .find(|&n| va.id.as_bytes()[n] != vb.id.as_bytes()[n])
        .unwrap();
    let unique = format!(" {} ", va.id[..=n].to_ascii_uppercase());
    assert_eq!(store.config_version(&unique).unwrap(), Some(va.clone()));
    // Too short, not hex, or unknown: nothing.
    assert_eq!(
        store.config_version(&va.id[..MIN_PREFIX - 1]).unwrap(),
        None
    );
    assert_eq!(store.config_version("zzzzzzzz").unwrap(), None);
    assert_eq!(store.config_version("%").unwrap(), None);
    let unknown = if va.id.starts_with('0') {
        "ffffff"
    } else {
        "000000"
    };
    assert_eq!(store.config_version(unknown).unwrap(), None);
}

fn applied_history_current_and_previous(b: &Backend) {
    let store = b.store();
    assert_eq!(store.current_config().unwrap(), None);
    assert_eq!(store.previous_config().unwrap(), None);
    let (v1, v2) = (version("a = 1\n", 10), version("a = 2\n", 20));
    store.put_config_version(&v1).unwrap();
    store.put_config_version(&v2).unwrap();
    let listed: Vec<String> = store
        .config_versions(10)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [v2.id.clone(), v1.id.clone()]);
    assert!(matches!(
        store.mark_applied("nope", 1, "ana", "x"),
        Err(StoreError::NoSuchConfigVersion(_))
    ));
    store.mark_applied(&v1.id, 100, "ana", "start").unwrap();
    store.mark_applied(&v2.id, 200, "bo", "bump").unwrap();
    // Re-applying the current one keeps the one before it as the rollback target.
    let seq = store.mark_applied(&v2.id, 300, "bo", "again").unwrap();
    assert_eq!(seq, 3);
    let history = store.applied_history(10).unwrap();
    let seen: Vec<(&str, i64)> = history
        .iter()
        .map(|r| (r.version_id.as_str(), r.at_ms))
        .collect();
    assert_eq!(
        seen,
        [
            (v2.id.as_str(), 300),
            (v2.id.as_str(), 200),
            (v1.id.as_str(), 100)
        ]
    );
    assert_eq!(store.applied_history(1).unwrap().len(), 1);
    assert_eq!(store.current_config().unwrap(), Some(v2.clone()));
    assert_eq!(store.previous_config().unwrap(), Some(v1.clone()));
    let summaries = store.config_versions(10).unwrap();
    assert_eq!(summaries[0].last_applied_at_ms, Some(300));
    assert_eq!(summaries[1].last_applied_at_ms, Some(100));
}

fn applying_a_version_audits_it_in_the_same_transaction(b: &Backend) {
    let store = b.store();
    let v1 = version("a = 1\n", 10);
    let entry = store
        .apply_config_version(&v1, "ana", "first", 100, "+a = 1\n")
        .unwrap();
    assert_eq!(entry.seq, 1);
    assert_eq!(entry.event.action, CONFIG_APPLY);
    assert_eq!(entry.event.target, format!("config:{}", v1.id));
    assert_eq!(entry.event.at_ms, 100);
    assert_eq!(store.current_config().unwrap(), Some(v1.clone()));
    assert_eq!(
        store.audit_entries(0, 10).unwrap(),
        std::slice::from_ref(&entry)
    );
    // A forged version fails as a whole: nothing applied, nothing audited.
    let forged = ConfigVersion {
        source: "a = 3\n".into(),
        ..version("a = 2\n", 20)
    };
    assert!(store
        .apply_config_version(&forged, "eve", "x", 200, "")
        .is_err());
    assert_eq!(store.applied_history(10).unwrap().len(), 1);
    assert_eq!(store.audit_head().unwrap(), Some(entry.head()));
}

fn a_failed_transaction_leaves_nothing(b: &Backend) {
    let store = b.store();
    let before = store.control_generation().unwrap();
    let out: Result<(), StoreError> = store.transact(|c| {
        c.put_flag(&flag("f", true), 1)?;
        c.append_audit(event(1, "ana"))?;
        assert_eq!(c.read().flags()?.len(), 1, "reads see the transaction");
        c.set_prompt_label("missing", "production", 1, 1)?;
        Ok(())
    });
    assert!(matches!(
        out,
        Err(StoreError::NoSuchPromptVersion { version: 1, .. })
    ));
    assert_eq!(store.flags().unwrap(), []);
    assert_eq!(store.audit_head().unwrap(), None);
    assert_eq!(store.control_generation().unwrap(), before);
}

/// Two stores on one database (two processes on one SQLite file, two replicas on one
/// PostgreSQL), two threads each, every change a flag and its audit entry: one chain with
/// every entry, and the generation moved once per change.
fn concurrent_changes_from_two_stores_form_one_chain(b: &Backend) {
    let stores = [b.another(), b.another()];
    let before = stores[0].control_generation().unwrap();
    let per_thread = 40u64;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &stores[(t % 2) as usize];
            s.spawn(move || {
                for i in 0..per_thread {
                    store
                        .transact(|c| {
                            // The entry first: no row written yet orders the two.
                            let entry = c.append_audit(event(i, &format!("t{t}")))?;
                            c.put_flag(&flag(&format!("t{t}-{i}"), true), i as i64)?;
                            Ok(entry)
                        })
                        .unwrap();
                }
            });
        }
    });
    let total = 4 * per_thread;
    assert_eq!(stores[0].verify_audit().unwrap(), Ok(total));
    assert_eq!(b.store().verify_audit().unwrap(), Ok(total));
    let all = stores[1].audit_entries(0, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, total);
    assert_eq!(
        all.last().map(AuditEntry::head),
        stores[0].audit_head().unwrap()
    );
    for t in 0..4 {
        let mine = all.iter().filter(|e| e.event.actor == format!("t{t}"));
        assert_eq!(mine.count() as u64, per_thread);
    }
    assert_eq!(b.store().flags().unwrap().len() as u64, total);
    assert_eq!(b.store().control_generation().unwrap(), before + total);
}

fn kept_rows_refuse_edits(b: &Backend) {
    let store = b.store();
    store.append_audit(event(1, "ana")).unwrap();
    store.put_config_version(&version("a = 1\n", 1)).unwrap();
    store.push_prompt("p", "{}", "ana", "x", 1).unwrap();
    for (sql, says) in [
        ("UPDATE audit SET reason = 'x'", "append-only"),
        ("DELETE FROM audit", "append-only"),
        ("UPDATE config_versions SET source = 'x'", "immutable"),
        ("DELETE FROM config_versions", "immutable"),
        ("UPDATE prompt_versions SET body = '[]'", "immutable"),
        ("DELETE FROM prompt_versions", "immutable"),
    ] {
        let err = b.raw(sql).unwrap_err();
        assert!(err.contains(says), "{sql}: {err}");
    }
    if b.is_postgres() {
        for table in ["audit", "config_versions", "prompt_versions"] {
            let err = b.raw(&format!("TRUNCATE {table} CASCADE")).unwrap_err();
            assert!(
                err.contains("append-only") || err.contains("immutable"),
                "{err}"
            );
        }
    }
    assert_eq!(store.verify_audit().unwrap(), Ok(1));
}

fn audit_pages_and_tampering(b: &Backend) {
    let store = b.store();
    assert_eq!(store.verify_audit().unwrap(), Ok(0));
    for i in 0..7 {
        store.append_audit(event(i, "ana")).unwrap();
    }
    let head = store.audit_head().unwrap().unwrap();
    assert_eq!(head.seq, 7);
    let page: Vec<u64> = store
        .audit_entries(2, 3)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, [3, 4, 5]);
    let latest: Vec<u64> = store
        .audit_latest(2)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(latest, [7, 6]);
    assert_eq!(store.verify_audit_with_head(&head).unwrap(), Ok(7));
    let fault = |r: Result<u64, ChainError>| r.map_err(|e| (e.seq, e.what));

    // Editing a field of entry 2.
    b.allow_audit_edits();
    let reason = store.audit_entries(1, 1).unwrap()[0].event.reason.clone();
    b.raw("UPDATE audit SET reason = 'x' WHERE seq = 2")
        .unwrap();
    assert_eq!(
        fault(store.verify_audit().unwrap()),
        Err((2, ChainFault::Edited))
    );
    b.raw(&format!(
        "UPDATE audit SET reason = '{reason}' WHERE seq = 2"
    ))
    .unwrap();
    assert_eq!(store.verify_audit().unwrap(), Ok(7));

    // Deleting entry 3.
    b.raw("DELETE FROM audit WHERE seq = 3").unwrap();
    assert_eq!(
        fault(store.verify_audit().unwrap()),
        Err((4, ChainFault::Missing { expected: 3 }))
    );
    let err = store.verify_audit().unwrap().unwrap_err().to_string();
    assert_eq!(err, "audit entry 4: expected entry 3 before it (deleted)");
}

fn a_cut_off_tail_is_found_only_with_a_head(b: &Backend) {
    let store = b.store();
    for i in 0..5 {
        store.append_audit(event(i, "ana")).unwrap();
    }
    let head = store.audit_head().unwrap().unwrap();
    b.allow_audit_edits();
    b.raw("DELETE FROM audit WHERE seq >= 4").unwrap();
    assert_eq!(store.verify_audit().unwrap(), Ok(3));
    let r = store.verify_audit_with_head(&head).unwrap();
    assert_eq!(
        r.map_err(|e| e.what),
        Err(ChainFault::Truncated {
            last: 3,
            head_seq: 5
        })
    );
    // Rewritten: appended again to the same length, with other content.
    store.append_audit(event(8, "eve")).unwrap();
    store.append_audit(event(9, "eve")).unwrap();
    let r = store.verify_audit_with_head(&head).unwrap();
    assert_eq!(
        r.map_err(|e| (e.seq, e.what)),
        Err((5, ChainFault::NotTheHead))
    );
    // Later appends after a real head are fine.
    let new_head = store.audit_head().unwrap().unwrap();
    store.append_audit(event(10, "ana")).unwrap();
    assert_eq!(store.verify_audit_with_head(&new_head).unwrap(), Ok(6));
}

fn prompts_push_label_and_list(b: &Backend) {
    let store = b.store();
    let body1 = r#"{"system":"Be brief.","user":"{{q}}","variables":["q"]}"#;
    assert_eq!(
        store.push_prompt("qa", body1, "ana", "first", 1).unwrap(),
        1
    );
    // The same JSON, reformatted and reordered: no new version.
    let same = r#"{ "user": "{{q}}", "variables": ["q"], "system": "Be brief." }"#;
    assert_eq!(store.push_prompt("qa", same, "bo", "again", 2).unwrap(), 1);
    let body2 = r#"{"system":"Be very brief.","user":"{{q}}","variables":["q"]}"#;
    assert_eq!(
        store.push_prompt("qa", body2, "bo", "shorter", 3).unwrap(),
        2
    );
    // Pushing an old body again makes it the newest version.
    assert_eq!(
        store.push_prompt("qa", body1, "bo", "revert", 4).unwrap(),
        3
    );
    assert_eq!(store.push_prompt("other", "{}", "bo", "x", 5).unwrap(), 1);
    assert!(matches!(
        store.push_prompt("qa", "{not json", "bo", "x", 6),
        Err(StoreError::Json { .. })
    ));

    let v2 = store.prompt("qa", 2).unwrap().unwrap();
    assert_eq!(
        v2,
        PromptRow {
            name: "qa".into(),
            version: 2,
            body: body2.into(),
            author: "bo".into(),
            message: "shorter".into(),
            created_at_ms: 3,
        }
    );
    assert_eq!(store.prompt("qa", 9).unwrap(), None);
    assert_eq!(store.latest_prompt("qa").unwrap().unwrap().version, 3);
    assert_eq!(store.latest_prompt("none").unwrap(), None);
    let versions: Vec<u32> = store
        .prompt_versions("qa")
        .unwrap()
        .iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(versions, [3, 2, 1]);

    assert_eq!(
        store.set_prompt_label("qa", "production", 1, 10).unwrap(),
        None
    );
    assert_eq!(store.set_prompt_label("qa", "canary", 2, 11).unwrap(), None);
    assert_eq!(
        store.set_prompt_label("qa", "production", 2, 12).unwrap(),
        Some(1)
    );
    assert!(matches!(
        store.set_prompt_label("qa", "staging", 4, 13),
        Err(StoreError::NoSuchPromptVersion { version: 4, .. })
    ));
    assert!(store.set_prompt_label("none", "staging", 1, 13).is_err());
    assert_eq!(store.prompt_by_label("qa", "production").unwrap(), Some(v2));
    assert_eq!(store.prompt_by_label("qa", "staging").unwrap(), None);

    let names = store.prompt_names().unwrap();
    assert_eq!(
        names,
        [
            PromptSummary {
                name: "other".into(),
                latest_version: 1,
                labels: BTreeMap::new(),
            },
            PromptSummary {
                name: "qa".into(),
                latest_version: 3,
                labels: [("canary".to_string(), 2), ("production".to_string(), 2)].into(),
            },
        ]
    );
}

fn flags_put_replace_delete_and_generation(b: &Backend) {
    let store = b.store();
    let other = b.another();
    let g0 = other.control_generation().unwrap();
    assert_eq!(store.put_flag(&flag("b", true), 1).unwrap(), None);
    let pct = Flag {
        key: "a".into(),
        kind: FlagKind::Percentage { basis_points: 500 },
        enabled: true,
    };
    assert_eq!(store.put_flag(&pct, 2).unwrap(), None);
    assert_eq!(
        store.put_flag(&flag("b", false), 3).unwrap(),
        Some(flag("b", true))
    );
    assert_eq!(store.flags().unwrap(), [pct.clone(), flag("b", false)]);
    assert_eq!(store.flag("a").unwrap(), Some(pct.clone()));
    // Another connection sees each write as a new generation.
    let g1 = other.control_generation().unwrap();
    assert_eq!(g1, g0 + 3);
    assert_eq!(store.delete_flag("a").unwrap(), Some(pct));
    assert_eq!(store.delete_flag("a").unwrap(), None);
    assert_eq!(
        other.control_generation().unwrap(),
        g1 + 1,
        "no-op deletes do not bump"
    );
    assert_eq!(other.flags().unwrap(), [flag("b", false)]);

    // What else bumps it: applied config, prompt versions and labels, rollouts.
    let g = other.control_generation().unwrap();
    let v = version("a = 1\n", 1);
    store.put_config_version(&v).unwrap();
    assert_eq!(
        other.control_generation().unwrap(),
        g,
        "stored is not applied"
    );
    store.mark_applied(&v.id, 2, "ana", "x").unwrap();
    store.push_prompt("p", "{}", "ana", "x", 3).unwrap();
    store.push_prompt("p", "{}", "ana", "x", 3).unwrap();
    store.set_prompt_label("p", "production", 1, 4).unwrap();
    store.put_rollout(&rollout("r"), true, 5).unwrap();
    store.append_audit(event(1, "ana")).unwrap();
    assert_eq!(other.control_generation().unwrap(), g + 4);
}

fn rollouts_round_trip(b: &Backend) {
    let store = b.store();
    let mut r = rollout("cfg-2");
    store.put_rollout(&r, true, 100).unwrap();
    r.start(150).unwrap();
    store.put_rollout(&r, true, 200).unwrap();
    store.put_rollout(&rollout("cfg-1"), false, 300).unwrap();
    let got = store.rollout("cfg-2").unwrap().unwrap();
    assert_eq!(
        got,
        StoredRollout {
            rollout: r.clone(),
            active: true,
            created_at_ms: 100,
            updated_at_ms: 200,
        }
    );
    assert_eq!(got.rollout.timeline().len(), 1);
    assert_eq!(store.rollout("none").unwrap(), None);
    let ids = |active_only| -> Vec<String> {
        store
            .rollouts(active_only)
            .unwrap()
            .into_iter()
            .map(|s| s.rollout.id().to_string())
            .collect()
    };
    assert_eq!(ids(true), ["cfg-2"]);
    assert_eq!(ids(false), ["cfg-2", "cfg-1"]);
    // A body the crate cannot read says which rollout it is.
    b.raw("UPDATE rollouts SET body = '{}' WHERE id = 'cfg-1'")
        .unwrap();
    let err = store.rollouts(false).unwrap_err().to_string();
    assert!(err.contains("stored rollout `cfg-1`"), "{err}");
}

fn a_transaction_through_a_trait_object_returns_its_work_or_leaves_nothing(b: &Backend) {
    let store = b.store();
    let before = store.control_generation().unwrap();

    let made = store
        .transact(|c| {
            c.put_flag(&flag("a", true), 1)?;
            assert_eq!(c.read().flags()?.len(), 1, "reads see the transaction");
            Ok("made")
        })
        .unwrap();
    assert_eq!(made, "made");
    assert_eq!(store.control_generation().unwrap(), before + 1);

    let failed: Result<(), StoreError> = store.transact(|c| {
        c.put_flag(&flag("b", true), 2)?;
        Err(StoreError::NoSuchConfigVersion("x".into()))
    });
    assert!(matches!(failed, Err(StoreError::NoSuchConfigVersion(_))));
    let keys: Vec<String> = store.flags().unwrap().into_iter().map(|f| f.key).collect();
    assert_eq!(keys, ["a"]);
    assert_eq!(store.control_generation().unwrap(), before + 1);
}
