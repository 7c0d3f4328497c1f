//! One `POST /os-server-external-events` and what Nova's answer means for the events it carried.

use serde::Deserialize;
use serde_json::json;

use super::core::Event;

/// Nova's microversion tern speaks (Neutron's `NOVA_API_VERSION`): the four network events.
const API_VERSION: &str = "2.1";

/// What became of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nova took the request: every event is answered for good (`failed` lists those it refused,
    /// with their code: 404 an unknown server, 422 a server on no host, 400 an event without
    /// tag). Neither is sent again.
    Answered { failed: Vec<(usize, u16)> },
    /// Nova refused the whole request for good (404: none of the servers exists, Nova before
    /// 2.x; 400: a request it cannot take). Sending it again would change nothing.
    Refused(String),
    /// 401: the token is no longer valid.
    Unauthorized,
    /// Nova is down, overloaded or unreachable, or refused for a reason an operator can fix
    /// (403): send again later.
    Retry(String),
}

#[derive(Deserialize)]
struct Body {
    events: Vec<EventAnswer>,
}

#[derive(Deserialize)]
struct EventAnswer {
    #[serde(default)]
    code: Option<u16>,
}

/// The URL of the events API under a compute endpoint (`http://nova:8774/v2.1`).
pub fn events_url(base: &str) -> String {
    format!("{}/os-server-external-events", base.trim_end_matches('/'))
}

pub async fn post(http: &reqwest::Client, base: &str, token: Option<&str>, events: &[Event]) -> Answer {
    let url = events_url(base);
    let mut req = http
        .post(&url)
        .header("Accept", "application/json")
        .header("X-OpenStack-Nova-API-Version", API_VERSION)
        .header("OpenStack-API-Version", format!("compute {API_VERSION}"))
        .json(&json!({ "events": events }));
    if let Some(token) = token {
        req = req.header("X-Auth-Token", token);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Answer::Retry(format!("cannot reach Nova at {url}: {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify(status, &text, events.len())
}

/// The meaning of Nova's answer `status` with body `text` to a request of `n` events.
pub fn classify(status: u16, text: &str, n: usize) -> Answer {
    let short = || text.chars().take(300).collect::<String>();
    match status {
        200 | 207 => {
            // Nova answers each event in order, with its code. A body tern cannot read still
            // says Nova took the request (Neutron logs it and moves on too).
            let failed = match serde_json::from_str::<Body>(text) {
                Ok(body) => body
                    .events
                    .iter()
                    .enumerate()
                    .take(n)
                    .filter_map(|(i, e)| match e.code {
                        Some(200) | None => None,
                        Some(code) => Some((i, code)),
                    })
                    .collect(),
                Err(_) => {
                    tracing::warn!(status, body = %short(), "unreadable answer from Nova; taking the events as delivered");
                    Vec::new()
                }
            };
            Answer::Answered { failed }
        }
        401 => Answer::Unauthorized,
        404 => Answer::Refused(format!("Nova knows none of the servers (404): {}", short())),
        400 => Answer::Refused(format!("Nova refused the request (400): {}", short())),
        _ => Answer::Retry(format!("Nova answered {status}: {}", short())),
    }
}

/// An error with its sources (reqwest's own message hides the cause, e.g. "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(events_url("http://nova:8774/v2.1/"), "http://nova:8774/v2.1/os-server-external-events");
        assert_eq!(
            classify(200, r#"{"events": [{"code": 200}, {"code": 200}]}"#, 2),
            Answer::Answered { failed: vec![] }
        );
        let partial = r#"{"events": [{"code": 200}, {"code": 404, "status": "failed"}, {"code": 422}]}"#;
        assert_eq!(classify(207, partial, 3), Answer::Answered { failed: vec![(1, 404), (2, 422)] });
        assert_eq!(classify(200, "not json", 1), Answer::Answered { failed: vec![] });
        assert_eq!(classify(401, "", 1), Answer::Unauthorized);
        assert!(matches!(classify(404, "", 1), Answer::Refused(_)));
        assert!(matches!(classify(400, "", 1), Answer::Refused(_)));
        for status in [403, 413, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(status, "", 1), Answer::Retry(_)), "{status}");
        }
    }
}
