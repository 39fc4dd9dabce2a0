//! The Responses API's stored responses: kept per tenant (another tenant's id reads as none
//! and cannot be deleted), seen by every store, deleted by their owner or by age.

use switchyard_store::StoredResponse;

use crate::{conformance, Backend};

conformance!(
    a_response_is_kept_for_its_tenant_only,
    responses_are_purged_by_age,
);

fn response(id: &str, tenant: &str, created_ms: i64) -> StoredResponse {
    StoredResponse {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        created_ms,
        body: format!(r#"{{"id":"{id}","object":"response"}}"#),
        context: r#"[{"type":"message","role":"user","content":"hé ✓"}]"#.to_owned(),
    }
}

fn a_response_is_kept_for_its_tenant_only(b: &Backend) {
    let store = b.store();
    let kept = response("resp_1", "acme", 1_000);
    store.put_response(&kept).unwrap();
    assert_eq!(
        store.response("acme", "resp_1").unwrap(),
        Some(kept.clone())
    );
    // Another replica reads it too; another tenant does not.
    assert_eq!(b.another().response("acme", "resp_1").unwrap(), Some(kept));
    assert_eq!(store.response("globex", "resp_1").unwrap(), None);
    assert_eq!(store.response("acme", "resp_2").unwrap(), None);
    assert!(!store.delete_response("globex", "resp_1").unwrap());
    assert!(store.delete_response("acme", "resp_1").unwrap());
    assert!(!store.delete_response("acme", "resp_1").unwrap());
    assert_eq!(store.response("acme", "resp_1").unwrap(), None);
}

fn responses_are_purged_by_age(b: &Backend) {
    let store = b.store();
    for i in 0..5 {
        store
            .put_response(&response(&format!("resp_{i}"), "acme", 100 * i64::from(i)))
            .unwrap();
    }
    assert_eq!(store.purge_responses(250).unwrap(), 3);
    for (i, kept) in [(0, false), (1, false), (2, false), (3, true), (4, true)] {
        let id = format!("resp_{i}");
        assert_eq!(store.response("acme", &id).unwrap().is_some(), kept, "{i}");
    }
    assert_eq!(store.purge_responses(250).unwrap(), 0);
}
