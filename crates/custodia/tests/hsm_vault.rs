//! A whole vault on a PKCS#11 token (SoftHSM2): the demo runs with every key in the token, then
//! the "USB copy" — the vault folder copied before retention — is shown to open nothing once
//! retention has run: the folder holds no key at all, and every epoch key its blobs were sealed
//! to is destroyed inside the token.
//!
//! Needs Debian's `softhsm2` (`.ci/run` installs it). Without it the test fails, unless
//! `CUSTODIA_SKIP_SOFTHSM=1` says to skip it loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use custodia_seal::SealedCapture;
use custodia_store::index::Index;
use custodia_store::{KeyName, Keystore, KeystoreError, Pkcs11Keystore};

const PIN: &str = "4921";

fn module() -> Option<PathBuf> {
    let candidates = [std::env::var("SOFTHSM2_MODULE").unwrap_or_default(), "/usr/lib/softhsm/libsofthsm2.so".into()];
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn custodia(args: &[&str], conf: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(args)
        .env("CUSTODIA_LOG", "error")
        .env("SOFTHSM2_CONF", conf)
        .env("HSM_PIN", PIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files_under(&path, out) } else { out.push(path) }
    }
}

#[test]
fn a_vault_on_a_token_leaves_a_usb_copy_nothing_to_open_after_retention() {
    let Some(module) = module() else {
        if std::env::var("CUSTODIA_SKIP_SOFTHSM").as_deref() == Ok("1") {
            eprintln!("SKIPPED: libsofthsm2.so not found and CUSTODIA_SKIP_SOFTHSM=1");
            return;
        }
        panic!("libsofthsm2.so not found: apt-get install softhsm2 (or set CUSTODIA_SKIP_SOFTHSM=1)");
    };
    let root = tempfile::tempdir().unwrap();
    let tokens = root.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = root.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "custodia-test", "--so-pin", "8642", "--pin", PIN])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let demo = root.path().join("demo");
    let m = module.to_str().unwrap();
    let summary = custodia(
        &[
            "demo",
            "--dir",
            demo.to_str().unwrap(),
            "--captures",
            "16",
            "--days",
            "3",
            "--quiet",
            "--hsm-module",
            m,
            "--hsm-token",
            "custodia-test",
            "--pin-env",
            "HSM_PIN",
        ],
        &conf,
    );
    assert!(summary.contains("no JPEG/PNG image"), "{summary}");
    let vault = demo.join("vault");
    assert!(!vault.join("keystore").exists(), "a token vault keeps no keystore folder");
    assert!(!demo.join("keys").exists());

    // The USB copy, taken before retention.
    let usb = root.path().join("usb");
    copy_dir(&vault, &usb);
    let mut copied_blobs = Vec::new();
    files_under(&usb.join("blobs"), &mut copied_blobs);
    assert!(copied_blobs.len() >= 16);

    // Every key the vault has is in the token. SAFETY of set_var: this test file has one test,
    // and nothing else in the process reads the environment while it runs.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let keystore = Pkcs11Keystore::open(&module, "custodia-test", zeroize::Zeroizing::new(PIN.to_string())).unwrap();
    let copied_index = Index::open(&usb.join("index.sqlite3")).unwrap();
    let key_of = |body: &[u8], group: usize| -> KeyName {
        let capture = SealedCapture::parse(body).unwrap();
        let epoch = copied_index.epoch(&capture.groups()[group].epoch_id()).unwrap().unwrap();
        KeyName::new(epoch.key_name).unwrap()
    };
    // Before retention the token opens the copy's blobs: the copy is only as safe as the keys.
    let first = std::fs::read(&copied_blobs[0]).unwrap();
    let capture = SealedCapture::parse(&first).unwrap();
    let (group, _) = capture.metadata_part().unwrap();
    let dec = keystore.epoch_decapsulator(&key_of(&first, group)).unwrap();
    assert!(capture.open_data_key(group, dec.as_ref()).is_ok());
    drop(dec);

    // Retention with a 3-minute cap: every epoch of the demo's past traffic expires.
    let ran = custodia(
        &["retention", "run", "--dir", vault.to_str().unwrap(), "--passphrase-env", "HSM_PIN", "--profile", "cap-3min"],
        &conf,
    );
    assert!(!ran.is_empty());

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut unopenable = 0;
    for path in &copied_blobs {
        let body = std::fs::read(path).unwrap();
        let capture = SealedCapture::parse(&body).unwrap();
        for group in 0..capture.groups().len() {
            let name = key_of(&body, group);
            let epoch = copied_index.epoch(&capture.groups()[group].epoch_id()).unwrap().unwrap();
            match keystore.epoch_decapsulator(&name) {
                Err(KeystoreError::Destroyed(_)) => unopenable += 1,
                // Only an epoch still open (its period not yet over + 3 min) may keep its key.
                Ok(_) => assert!(epoch.not_after_ms + 180_000 > now_ms, "{name} should have been shredded"),
                Err(other) => panic!("{name}: {other}"),
            }
        }
    }
    assert!(unopenable > 0, "retention destroyed no key the copy needs");
    println!("{unopenable} sealed groups in the USB copy have no key left anywhere");
}
