//! The query string's strictness: what a client may write, and the message of what it may not.

use super::query::{Form, Request};
use crate::probe::State;

fn parsed(query: &str) -> Request {
    Request::parse(query, false).unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn refused(query: &str) -> String {
    match Request::parse(query, false) {
        Ok(request) => panic!("{query} was taken: {request:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn no_parameter_is_the_plain_array_and_any_parameter_a_page() {
    assert_eq!(parsed("").form, Form::All);
    assert_eq!(
        parsed("limit=5").form,
        Form::Page {
            limit: Some(5),
            cursor: None
        }
    );
    let request =
        parsed("state=invalid&product=confluence&label=team:platform&label=env:prod&q=CI");
    assert_eq!(request.filter.state, Some(State::Invalid));
    assert_eq!(
        request.filter.product,
        Some(crate::config::Product::Confluence)
    );
    assert_eq!(
        request.filter.labels,
        [
            ("team".to_owned(), "platform".to_owned()),
            ("env".to_owned(), "prod".to_owned())
        ]
    );
    assert_eq!(request.filter.text, "CI");
    assert_eq!(
        request.form,
        Form::Page {
            limit: None,
            cursor: None
        }
    );
    // What a GET form sends for "all": empty values filter nothing.
    let form = parsed("state=&label=&q=");
    assert_eq!(form.filter, super::Filter::default());
    assert!(matches!(form.form, Form::Page { .. }));
}

#[test]
fn cursors_and_tokens_read_back() {
    let request = parsed("limit=2&cursor=6.svc-b");
    let Form::Page {
        cursor: Some(cursor),
        ..
    } = request.form
    else {
        panic!("{request:?}");
    };
    assert_eq!((cursor.rank, cursor.name.as_str()), (6, "svc-b"));
    assert_eq!(cursor.to_string(), "6.svc-b");
    let token = "00000000000000ff-12-1796628785343";
    assert!(matches!(
        parsed(&format!("changed_since={token}&state=valid")).form,
        Form::Changes { .. }
    ));
}

#[test]
fn bad_parameters_say_what_is_wrong() {
    let cases = [
        (
            "state=broken",
            "state: \"broken\" is not a state; the states are valid, invalid",
        ),
        (
            "limit=0",
            "limit: \"0\" is not a whole number from 1 to 1000",
        ),
        (
            "limit=1001",
            "limit: \"1001\" is not a whole number from 1 to 1000",
        ),
        ("limit=ten", "limit: \"ten\" is not a whole number"),
        (
            "cursor=svc-b",
            "cursor: \"svc-b\" is not a cursor this API hands out",
        ),
        ("cursor=9.svc-b", "is not a cursor"),
        ("label=team", "label: \"team\" is not KEY:VALUE"),
        (
            "product=trello",
            "product: \"trello\" is not a product; the products are jira",
        ),
        ("label=:x", "is not KEY:VALUE"),
        (
            "changed_since=yesterday",
            "changed_since: \"yesterday\" is not a token",
        ),
        (
            "changed_since=00000000000000ff-1-0&limit=5",
            "it takes no limit or cursor",
        ),
        (
            "changed_since=00000000000000ff-1-0&cursor=1.a",
            "it takes no limit or cursor",
        ),
        ("state=valid&state=invalid", "state is given twice"),
        (
            "sort=name",
            "unknown query parameter \"sort\": the known ones are state, product, label",
        ),
        ("refresh=5", "unknown query parameter \"refresh\""),
    ];
    for (query, message) in cases {
        let said = refused(query);
        assert!(said.contains(message), "{query}: {said}");
    }
    // The page reads its refresh period too, and only the page.
    let page = Request::parse("refresh=5&q=x", true).expect("page query");
    assert_eq!(page.refresh, Some(5));
}
