//! Feeds arbitrary bytes to the framing and decoding entry points; anything that
//! decodes must also encode and print without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_openflow::{decode, encode, message_len, Message, OFP13};

fuzz_target!(|data: &[u8]| {
    // Walk the buffer as a stream of framed messages, as a connection would.
    let mut rest = data;
    while let Ok(Some(len)) = message_len(rest) {
        let Some(msg) = rest.get(..len) else { break };
        if let Ok((h, m)) = decode(msg) {
            let again = encode(h.version, h.xid, &m);
            let _ = decode(&again);
            let _ = format!("{m:?}");
            match &m {
                Message::FlowMod(fm) => {
                    let _ = fm.flow.to_string();
                }
                Message::Error(e) => {
                    let _ = e.to_string();
                }
                _ => {}
            }
            let _ = encode(OFP13, 0, &m);
        }
        rest = &rest[len..];
    }
    let _ = decode(data);
});
