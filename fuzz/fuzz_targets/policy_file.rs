//! Fuzzes `custodia_policy::Policy::parse` with arbitrary bytes (lossily made UTF-8, as the
//! server and CLI only ever hand it text). It must never panic; an error must point inside the
//! text (line 0 only for whole-file faults); and whatever it accepts must parse again to the
//! same policy and stay within the loader's documented limits.

#![no_main]

use custodia_policy::{MAX_POLICY_BYTES, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text) {
        Ok(policy) => {
            assert!(text.len() <= MAX_POLICY_BYTES);
            // The loader's purpose-count limit (256) is not exported; check the same figure.
            assert!(policy.purposes().len() <= 256);
            assert!(policy.purposes().keys().all(|code| !code.is_empty()));
            assert_eq!(Policy::parse(&text).as_ref(), Ok(&policy), "parsing is deterministic");
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line <= lines, "error line {} beyond the {lines} lines of the text", e.line);
            assert!(e.line > 0 || e.column == 0);
            assert!(!e.message.is_empty());
        }
    }
});
