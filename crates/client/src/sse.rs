//! The block stream (`GET /v1/events/blocks`): server-sent events read into [`BlockEvent`]s.

use crate::ClientError;
use futures::{Stream, StreamExt};
use mycel_types::api::BlockEvent;
use std::pin::Pin;
use std::task::{Context, Poll};

type Events = Pin<Box<dyn Stream<Item = Result<BlockEvent, ClientError>> + Send>>;

/// Finalized blocks as the node finalizes them (and `lagged` where a slow reader missed some).
/// Ends when the node closes the stream.
pub struct BlockStream {
    events: Events,
}

impl BlockStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> BlockStream {
        let state = (response.bytes_stream().boxed(), String::new(), url);
        let events = futures::stream::unfold(state, |(mut bytes, mut buffer, url)| async move {
            loop {
                if let Some((name, data)) = take_event(&mut buffer) {
                    match BlockEvent::from_sse(&name, &data) {
                        Ok(Some(event)) => return Some((Ok(event), (bytes, buffer, url))),
                        // An event this version does not know (or a comment): skip it.
                        Ok(None) => continue,
                        Err(e) => {
                            let error = ClientError::Unexpected {
                                url: url.clone(),
                                path: "/v1/events/blocks".into(),
                                reason: format!("a {name} event that does not read: {e}"),
                            };
                            return Some((Err(error), (bytes, buffer, url)));
                        }
                    }
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(e)) => {
                        let error = ClientError::Unreachable {
                            url: url.clone(),
                            path: "/v1/events/blocks".into(),
                            reason: e.to_string(),
                            timed_out: e.is_timeout(),
                        };
                        return Some((Err(error), (bytes, buffer, url)));
                    }
                    None => return None,
                }
            }
        });
        BlockStream {
            events: events.boxed(),
        }
    }
}

impl Stream for BlockStream {
    type Item = Result<BlockEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// Takes the first complete event (up to a blank line) off `buffer`: its name and data. Events
/// without data (keep-alive comments) come back with an empty name.
fn take_event(buffer: &mut String) -> Option<(String, String)> {
    let normalized = buffer.replace("\r\n", "\n");
    if normalized.len() != buffer.len() {
        *buffer = normalized;
    }
    let end = buffer.find("\n\n")?;
    let block: String = buffer.drain(..end + 2).collect();
    let mut name = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim_start().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return Some((String::new(), String::new()));
    }
    Some((name, data.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let mut buffer = ":\n\nevent: lagged\ndata: {\"missed\":3}\n\nevent: blo".to_string();
        assert_eq!(
            take_event(&mut buffer),
            Some((String::new(), String::new()))
        );
        assert_eq!(
            take_event(&mut buffer),
            Some(("lagged".into(), "{\"missed\":3}".into()))
        );
        assert_eq!(take_event(&mut buffer), None);
        assert_eq!(buffer, "event: blo");
    }
}
