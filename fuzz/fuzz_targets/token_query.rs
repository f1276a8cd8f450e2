//! The token and query parsing on arbitrary strings: never a panic, query values survive a
//! round trip through percent-encoding, and a pattern without wildcards matches only itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wspubsub_server::fuzzing::{query_value, token, topic_matches};

fuzz_target!(|input: (&str, &str, &str)| {
    let (query, value, topic) = input;
    let _ = query_value(query, "token");
    let _ = topic_matches(query, topic);

    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", value)
        .finish();
    assert_eq!(query_value(&encoded, "token").as_deref(), Some(value));

    if !topic.contains('*') {
        assert!(topic_matches(topic, topic), "{topic:?} matches itself");
    }

    let Ok(uri) = http::Uri::builder().path_and_query(format!("/t?{query}")).build() else {
        return;
    };
    let mut request = http::Request::get(uri);
    if let Ok(header) = http::HeaderValue::from_str(value) {
        request = request.header(http::header::AUTHORIZATION, header);
    }
    if let Ok(request) = request.body(()) {
        let _ = token(&request);
    }
});
