//! Property tests for the HTTP layer's parsers of untrusted input: JSON bodies and list
//! queries (pagination cursors, limits, orders). They must never panic and must answer every
//! input with a value or a client error in the WorkOS shape — never a 5xx.
#![allow(clippy::unwrap_used)]

use axum::response::IntoResponse;
use proptest::prelude::*;
use tessera_server::error::ApiError;
use tessera_server::extract::{parse_json, ListQuery};
use tessera_server::services::mfa::EnrollFactorRequest;
use tessera_server::services::users::CreateUserRequest;

fn is_client_error(e: ApiError) -> bool {
    e.into_response().status().is_client_error()
}

proptest! {
    #[test]
    fn any_bytes_as_a_body_parse_or_get_a_client_error(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Err(e) = parse_json::<CreateUserRequest>(&body, Some(true)) {
            prop_assert!(is_client_error(e));
        }
        if let Err(e) = parse_json::<EnrollFactorRequest>(&body, None) {
            prop_assert!(is_client_error(e));
        }
    }

    #[test]
    fn json_shaped_bodies_parse_or_get_a_client_error(body in r#"\{("[a-z_]{1,12}":( ?(null|true|[0-9]{1,5}|"[^"\\]{0,10}"|\[\]|\{\}))(,|))*\}"#) {
        if let Err(e) = parse_json::<CreateUserRequest>(body.as_bytes(), Some(true)) {
            prop_assert!(is_client_error(e));
        }
    }

    #[test]
    fn list_queries_parse_or_get_a_validation_error(q in "[a-z_&=%0-9A-Z.-]{0,80}") {
        match ListQuery::parse(Some(&q), "user") {
            Ok(l) => {
                prop_assert!((1..=100).contains(&l.params.limit));
                prop_assert!(!(l.params.before.is_some() && l.params.after.is_some()));
            }
            Err(e) => prop_assert!(matches!(e, tessera_core::Error::Validation(_))),
        }
    }

    #[test]
    fn valid_cursors_and_limits_are_kept(limit in 1i64..=100, ms in 0u64..4_000_000_000_000) {
        let cursor = tessera_core::id::new_id("user", tessera_core::Timestamp(ms as i64));
        let q = ListQuery::parse(Some(&format!("limit={limit}&after={cursor}&order=asc")), "user").unwrap();
        prop_assert_eq!(q.params.limit, limit);
        prop_assert_eq!(q.params.after, Some(cursor));
    }
}
