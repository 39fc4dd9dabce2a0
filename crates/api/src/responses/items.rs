//! `GET /v1/responses/{id}/input_items`: the conversation a stored response was made from
//! (every earlier turn's input and answer, and its own input, as providers that chain
//! `previous_response_id` list it), a page at a time. Items get ids by their place, the same
//! at every read, so `after` and `before` can name them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::output::item_id;
use super::{status, Invalid, Item};

/// The most items one page holds, and how many it holds unless asked (OpenAI's).
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 20;

/// The query string of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    pub limit: Option<usize>,
    /// `asc` (oldest first) or `desc` (newest first, the default).
    pub order: Option<String>,
    /// The page starts after this item.
    pub after: Option<String>,
    /// The page ends before this item.
    pub before: Option<String>,
}

/// A page of items, as OpenAI's list objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemList {
    pub object: String,
    pub data: Vec<Value>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// The page of `context` (the stored conversation of response `response_id`) that `query`
/// asks for.
pub fn page(response_id: &str, context: &[Item], query: &ItemsQuery) -> Result<ItemList, Invalid> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Invalid::new(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let mut listed: Vec<Value> = context
        .iter()
        .enumerate()
        .map(|(i, item)| listed_item(response_id, i, item))
        .collect();
    match query.order.as_deref() {
        None | Some("desc") => listed.reverse(),
        Some("asc") => {}
        Some(_) => return Err(Invalid::new("order", "`order` must be `asc` or `desc`")),
    }
    let place = |id: &Option<String>, param: &str| -> Result<Option<usize>, Invalid> {
        let Some(id) = id else { return Ok(None) };
        listed
            .iter()
            .position(|v| v["id"] == id.as_str())
            .map(Some)
            .ok_or_else(|| Invalid::new(param, format!("no input item `{id}` in this response")))
    };
    let start = place(&query.after, "after")?.map_or(0, |i| i + 1);
    let end = place(&query.before, "before")?.unwrap_or(listed.len());
    let window = listed.get(start..end.max(start)).unwrap_or_default();
    let data: Vec<Value> = window.iter().take(limit).cloned().collect();
    let id = |v: Option<&Value>| v.and_then(|v| v["id"].as_str()).map(str::to_owned);
    Ok(ItemList {
        object: "list".to_owned(),
        first_id: id(data.first()),
        last_id: id(data.last()),
        has_more: window.len() > data.len(),
        data,
    })
}

/// An item as the list shows it: with its id and status.
fn listed_item(response_id: &str, index: usize, item: &Item) -> Value {
    let prefix = match item {
        Item::Message { .. } => "msg",
        Item::FunctionCall { .. } => "fc",
        Item::FunctionCallOutput { .. } => "fco",
    };
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        let id = item_id(response_id, &format!("{prefix}_in"), index);
        fields.insert("id".into(), id.into());
        fields.insert("status".into(), status::COMPLETED.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::{ItemRole, Part};

    fn conversation(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item::Message {
                role: ItemRole::User,
                content: vec![Part::InputText {
                    text: format!("m{i}"),
                }],
            })
            .collect()
    }

    fn texts(list: &ItemList) -> Vec<String> {
        list.data
            .iter()
            .map(|v| v["content"][0]["text"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn pages_go_newest_first_unless_asked_and_follow_their_cursors() {
        let items = conversation(5);
        let q = |limit, order: &str, after: Option<&str>| ItemsQuery {
            limit: Some(limit),
            order: Some(order.to_owned()),
            after: after.map(str::to_owned),
            before: None,
        };
        let first = page("resp_r", &items, &q(2, "desc", None)).unwrap();
        assert_eq!(texts(&first), ["m4", "m3"]);
        assert!(first.has_more);
        assert_eq!(first.data[0]["id"], "msg_in_r_4");
        assert_eq!(first.data[0]["status"], "completed");
        let next = page("resp_r", &items, &q(2, "desc", first.last_id.as_deref())).unwrap();
        assert_eq!(texts(&next), ["m2", "m1"]);
        let last = page("resp_r", &items, &q(2, "desc", next.last_id.as_deref())).unwrap();
        assert_eq!(texts(&last), ["m0"]);
        assert!(!last.has_more);
        let asc = page("resp_r", &items, &q(3, "asc", None)).unwrap();
        assert_eq!(texts(&asc), ["m0", "m1", "m2"]);
        let before = ItemsQuery {
            before: Some("msg_in_r_2".into()),
            order: Some("asc".into()),
            ..ItemsQuery::default()
        };
        assert_eq!(
            texts(&page("resp_r", &items, &before).unwrap()),
            ["m0", "m1"]
        );
        let all = page("resp_r", &items, &ItemsQuery::default()).unwrap();
        assert_eq!(all.data.len(), 5);
        assert_eq!(all.first_id.as_deref(), Some("msg_in_r_4"));
    }

    #[test]
    fn bad_queries_name_their_param() {
        let items = conversation(2);
        for (q, param) in [
            (
                ItemsQuery {
                    limit: Some(0),
                    ..ItemsQuery::default()
                },
                "limit",
            ),
            (
                ItemsQuery {
                    limit: Some(101),
                    ..ItemsQuery::default()
                },
                "limit",
            ),
            (
                ItemsQuery {
                    order: Some("up".into()),
                    ..ItemsQuery::default()
                },
                "order",
            ),
            (
                ItemsQuery {
                    after: Some("nope".into()),
                    ..ItemsQuery::default()
                },
                "after",
            ),
        ] {
            assert_eq!(page("resp_r", &items, &q).unwrap_err().param, param);
        }
    }
}
