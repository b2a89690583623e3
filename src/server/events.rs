//! Game events as the seed's Flask API logs them: `{"event_type": ...}` updated with every
//! request header, serialized as Python's `json.dumps` does.

use axum::http::HeaderMap;

/// Header name as Flask (Werkzeug) gives it: WSGI's `HTTP_USER_AGENT` → `User-Agent`, i.e.
/// underscores become dashes and the name is title-cased as Python's `str.title()` does.
pub fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut previous_cased = false;
    for c in name.chars() {
        let c = if c == '_' { '-' } else { c };
        if c.is_alphabetic() {
            if previous_cased {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            previous_cased = true;
        } else {
            out.push(c);
            previous_cased = false;
        }
    }
    out
}

/// Appends `text` as a JSON string the way `json.dumps` (with `ensure_ascii=True`) writes it.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// The event for `event_type` and the request's headers, in request order. Repeated headers
/// are joined with `,` and values are read as Latin-1, as Werkzeug does.
pub fn event_json(event_type: &str, headers: &HeaderMap) -> String {
    let mut fields: Vec<(String, String)> = Vec::with_capacity(headers.keys_len());
    for (name, value) in headers {
        let name = canonical_header_name(name.as_str());
        let value: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => fields.push((name, value)),
        }
    }
    let mut out = String::with_capacity(
        64 + fields
            .iter()
            .map(|(n, v)| n.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push_str("{\"event_type\": ");
    push_json_string(&mut out, event_type);
    for (name, value) in &fields {
        // `event.update(request.headers)`: a header can overwrite a key, never add a second one.
        if name == "event_type" {
            continue;
        }
        out.push_str(", ");
        push_json_string(&mut out, name);
        out.push_str(": ");
        push_json_string(&mut out, value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_names_are_title_cased_like_werkzeug() {
        assert_eq!(canonical_header_name("user-agent"), "User-Agent");
        assert_eq!(canonical_header_name("host"), "Host");
        assert_eq!(canonical_header_name("x-api-key"), "X-Api-Key");
        assert_eq!(canonical_header_name("dnt"), "Dnt");
        assert_eq!(canonical_header_name("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(canonical_header_name("x_forwarded_for"), "X-Forwarded-For");
    }

    #[test]
    fn ab_requests_give_the_seed_event_byte_for_byte() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("user1.comcast.com"));
        headers.insert("user-agent", HeaderValue::from_static("ApacheBench/2.3"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(
            event_json("purchase_sword", &headers),
            r#"{"event_type": "purchase_sword", "Host": "user1.comcast.com", "User-Agent": "ApacheBench/2.3", "Accept": "*/*"}"#
        );
    }

    #[test]
    fn values_are_escaped_as_json_dumps_escapes_them() {
        let mut headers = HeaderMap::new();
        headers.insert("x-note", HeaderValue::from_bytes(b"a\"b\\c\xe9").unwrap());
        headers.append("x-note", HeaderValue::from_static("second"));
        let event = event_json("default", &headers);
        assert_eq!(
            event,
            r#"{"event_type": "default", "X-Note": "a\"b\\c\u00e9,second"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&event).unwrap();
        assert_eq!(parsed["X-Note"], "a\"b\\cé,second");
    }
}
