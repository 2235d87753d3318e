//! Fuzzes `SealedCapture::parse` with arbitrary bytes. For every input that parses, the header
//! must re-serialise to exactly the input prefix it was parsed from (the encoding is canonical),
//! the part ranges must tile the body, and verifying or opening must fail cleanly, never panic.

#![no_main]

use custodia_seal::{DeviceSigningKey, EpochSecretKey, SIGNATURE_LEN, SealedCapture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = SealedCapture::parse(data) else {
        return;
    };
    let header = c.header_bytes();
    assert_eq!(c.encode_header(), header);
    assert_eq!(&data[..header.len()], header);

    let mut pos = header.len();
    for (gi, g) in c.groups().iter().enumerate() {
        for (pi, p) in g.parts().iter().enumerate() {
            assert_eq!(p.ciphertext_range().start, pos);
            pos = p.ciphertext_range().end;
            assert_eq!(c.part_ciphertext(gi, pi).unwrap(), &data[p.ciphertext_range()]);
        }
    }
    assert_eq!(pos + SIGNATURE_LEN, data.len());

    // A fixed key cannot have signed fuzzer output.
    let device = DeviceSigningKey::from_bytes(&[7; 32]);
    assert!(c.verify_signature(&device.verifying_key()).is_err());
    // Opening with an unrelated epoch key must fail without panicking.
    if let Ok(epoch) = EpochSecretKey::from_bytes(&[9; 32]) {
        assert!(c.open_data_key(0, &epoch).is_err());
    }
});
