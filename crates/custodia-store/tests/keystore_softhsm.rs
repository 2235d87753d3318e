//! The PKCS#11 keystore against a real token (SoftHSM2): the conformance suite every backend
//! passes (tests/conformance), then what only a token can show — private keys that cannot be
//! read out, objects that really leave the token on destruction, a destruction interrupted after
//! its tombstone, handles that die with their key, and the login.
//!
//! The token lives in a temporary folder made once per test process (SoftHSM2 finds it through
//! the process-global `SOFTHSM2_CONF`); every test uses its own key-name prefix on it.
//!
//! Needs `libsofthsm2.so` (Debian/Ubuntu: `apt-get install softhsm2`). Without it these tests
//! FAIL, unless `CUSTODIA_SKIP_SOFTHSM=1` is set: then each prints a loud skip line and passes.
//! `SOFTHSM2_MODULE=/path/to/libsofthsm2.so` overrides the search.

mod conformance;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use custodia_seal::{DataKey, DecapError, EpochSecretKey, OpenError, unwrap_data_key, wrap_data_key};
use custodia_store::pkcs11_keystore::Pkcs11Keystore;
use custodia_store::{KeyName, KeyState, Keystore, KeystoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

/// The token the conformance suite and the keystore-only tests use.
const LABEL: &str = "custodia-test";
/// The token of the tests that look at objects through a session of their own. SoftHSM2 fails
/// token-object creation that runs beside other object access (SoftHSMv2 #573); the keystore
/// orders its own calls, but these sessions are outside it, so they get a token of their own and
/// take [`INSPECT`] so that only one of them runs at a time.
const INSPECT_LABEL: &str = "custodia-inspect-test";
/// A second token that only the PIN test logs in to: PKCS#11 login state is per process and per
/// token, so a wrong PIN can only be seen on a token nobody else here is logged in to.
const PIN_LABEL: &str = "custodia-pin-test";
const SO_PIN: &str = "so-pin-0000";
const USER_PIN: &str = "user-pin-1234";

const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

struct TestToken {
    module: PathBuf,
    /// Keeps the module loaded and initialised for the whole process.
    _context: Pkcs11,
    _dir: tempfile::TempDir,
}

static TOKEN: OnceLock<Option<TestToken>> = OnceLock::new();
static INSPECT: Mutex<()> = Mutex::new(());

fn module_path() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("SOFTHSM2_MODULE") {
        return Some(PathBuf::from(explicit)).filter(|p| p.exists());
    }
    MODULE_CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists())
}

/// The process's SoftHSM2 token, made on first use; `None` only when skipping was asked for.
fn token() -> Option<&'static TestToken> {
    let token = TOKEN.get_or_init(|| {
        let Some(module) = module_path() else {
            if std::env::var("CUSTODIA_SKIP_SOFTHSM").as_deref() == Ok("1") {
                loud(
                    "\n!!!!!!!! SKIPPING the PKCS#11 keystore tests: libsofthsm2.so not found and \
                     CUSTODIA_SKIP_SOFTHSM=1. The HSM backend is NOT tested in this run. !!!!!!!!\n",
                );
                return None;
            }
            panic!(
                "libsofthsm2.so not found (looked at SOFTHSM2_MODULE and {MODULE_CANDIDATES:?}). \
                 Install SoftHSM2 (`apt-get install softhsm2`), or set CUSTODIA_SKIP_SOFTHSM=1 to \
                 skip the PKCS#11 keystore tests knowingly."
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        // SAFETY: `set_var` races only with another thread reading or writing the environment.
        // Every test in this binary calls `token()` before anything else, so the others are
        // blocked on this `OnceLock`, and libtest reads its own variables before it starts the
        // test threads. SoftHSM2 reads the variable in `C_Initialize`, just below.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };

        let context = Pkcs11::new(&module).unwrap();
        context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
        for label in [LABEL, INSPECT_LABEL, PIN_LABEL] {
            init_token(&context, label);
        }
        Some(TestToken { module, _context: context, _dir: dir })
    });
    if token.is_none() {
        loud("SKIPPED (CUSTODIA_SKIP_SOFTHSM=1): a PKCS#11 keystore test did not run\n");
    }
    token.as_ref()
}

/// Writes to the process's stderr directly: libtest captures `eprintln!` of passing tests, and
/// a skip must be seen.
fn loud(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(message.as_bytes());
}

/// Initialises the first free slot's token as `label` with the SO PIN, then sets the user PIN.
fn init_token(context: &Pkcs11, label: &str) {
    let free = context
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|slot| context.get_token_info(*slot).is_ok_and(|info| !info.token_initialized()))
        .expect("SoftHSM2 always offers one free slot");
    let so_pin = AuthPin::new(SO_PIN.into());
    context.init_token(free, &so_pin, label).unwrap();
    // SoftHSM2 renumbers the slot once its token is initialised: find it again by label.
    let slot = slot_of(context, label);
    let session = context.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&so_pin)).unwrap();
    session.init_pin(&AuthPin::new(USER_PIN.into())).unwrap();
    session.logout().unwrap();
}

fn slot_of(context: &Pkcs11, label: &str) -> Slot {
    context
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| context.get_token_info(*slot).unwrap().label() == label)
        .unwrap_or_else(|| panic!("token {label} not found"))
}

fn open(t: &TestToken) -> Pkcs11Keystore {
    Pkcs11Keystore::open(&t.module, LABEL, Zeroizing::new(USER_PIN.to_string())).unwrap()
}

/// For the tests that inspect the token: the one-at-a-time guard, a keystore on the inspection
/// token, and a session of our own on it to look at what the keystore left there.
fn inspect(t: &TestToken) -> (MutexGuard<'static, ()>, Pkcs11Keystore, Session) {
    let guard = INSPECT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ks = Pkcs11Keystore::open(&t.module, INSPECT_LABEL, Zeroizing::new(USER_PIN.to_string())).unwrap();
    (guard, ks, raw_session(t))
}

fn raw_session(t: &TestToken) -> Session {
    let context = Pkcs11::new(&t.module).unwrap();
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let session = context.open_rw_session(slot_of(&context, INSPECT_LABEL)).unwrap();
    match session.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    session
}

fn objects_labelled(session: &Session, label: &str) -> Vec<ObjectHandle> {
    session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]).unwrap()
}

fn tombstone_of(name: &KeyName) -> String {
    format!("tombstone:{name}")
}

fn one_object(session: &Session, template: &[Attribute]) -> ObjectHandle {
    let found = session.find_objects(template).unwrap();
    assert_eq!(found.len(), 1, "{template:?}");
    found[0]
}

fn bool_attribute(session: &Session, object: ObjectHandle, attribute: AttributeType) -> bool {
    match session.get_attributes(object, &[attribute]).unwrap().as_slice() {
        [
            Attribute::Extractable(b)
            | Attribute::Sensitive(b)
            | Attribute::NeverExtractable(b)
            | Attribute::AlwaysSensitive(b)
            | Attribute::Local(b)
            | Attribute::Token(b)
            | Attribute::Derive(b)
            | Attribute::Sign(b),
        ] => *b,
        other => panic!("{attribute:?}: {other:?}"),
    }
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A keystore on the shared test token, with names under `t/<tag>/`.
struct HsmFixture {
    token: &'static TestToken,
    tag: String,
}

impl conformance::Fixture for HsmFixture {
    fn open(&self) -> Box<dyn Keystore> {
        Box::new(open(self.token))
    }

    fn name(&self, suffix: &str) -> KeyName {
        KeyName::new(format!("t/{}/{suffix}", self.tag)).unwrap()
    }
}

conformance::mount_conformance!(|tag: &str| token().map(|token| HsmFixture { token, tag: tag.to_string() }));

fn name(tag: &str, suffix: &str) -> KeyName {
    KeyName::new(format!("t/{tag}/{suffix}")).unwrap()
}

#[test]
fn private_keys_cannot_be_read_out_of_the_token() {
    let Some(t) = token() else { return };
    let (_inspecting, ks, session) = inspect(t);
    let epoch = name("sensitive", "epoch/1");
    let signing = name("sensitive", "signing");
    ks.generate_epoch_key(&epoch, &mut rng(1)).unwrap();
    ks.ensure_signing_key(&signing, &mut rng(2)).unwrap();

    for (key, key_type) in [(&epoch, KeyType::EC), (&signing, KeyType::EC_EDWARDS)] {
        let private = one_object(
            &session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(key_type),
                Attribute::Label(key.as_str().as_bytes().to_vec()),
            ],
        );
        // C_GetAttributeValue(CKA_VALUE) answers CKR_ATTRIBUTE_SENSITIVE.
        assert_eq!(
            format!("{:?}", session.get_attribute_info(private, &[AttributeType::Value]).unwrap()),
            format!("{:?}", [AttributeInfo::Sensitive])
        );
        assert!(session.get_attributes(private, &[AttributeType::Value]).unwrap().is_empty());
        assert!(!bool_attribute(&session, private, AttributeType::Extractable), "{key:?}");
        assert!(bool_attribute(&session, private, AttributeType::Sensitive));
        assert!(bool_attribute(&session, private, AttributeType::NeverExtractable));
        assert!(bool_attribute(&session, private, AttributeType::AlwaysSensitive));
        // Generated inside the token, and kept on it.
        assert!(bool_attribute(&session, private, AttributeType::Local));
        assert!(bool_attribute(&session, private, AttributeType::Token));
    }
    let epoch_private = one_object(
        &session,
        &[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(epoch.as_str().as_bytes().to_vec())],
    );
    assert!(bool_attribute(&session, epoch_private, AttributeType::Derive));
    assert!(!bool_attribute(&session, epoch_private, AttributeType::Sign));
}

#[test]
fn blind_index_secrets_are_made_in_the_token_and_readable_by_design() {
    let Some(t) = token() else { return };
    let (_inspecting, ks, session) = inspect(t);
    let blind = name("secret-attrs", "blind/2026-11");
    let secret = ks.secret(&blind, &mut rng(3)).unwrap();
    let object = one_object(
        &session,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Label(blind.as_str().as_bytes().to_vec()),
        ],
    );
    assert!(bool_attribute(&session, object, AttributeType::Local), "generated by the token");
    assert!(bool_attribute(&session, object, AttributeType::Token));
    assert!(!bool_attribute(&session, object, AttributeType::Sensitive));
    match session.get_attributes(object, &[AttributeType::Value]).unwrap().as_slice() {
        [Attribute::Value(value)] => assert_eq!(value.as_slice(), &secret[..]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn destruction_takes_every_object_off_the_token_and_leaves_one_tombstone() {
    let Some(t) = token() else { return };
    let (_inspecting, ks, session) = inspect(t);
    let names =
        [name("destroy-objects", "epoch"), name("destroy-objects", "blind"), name("destroy-objects", "signing")];
    ks.generate_epoch_key(&names[0], &mut rng(4)).unwrap();
    ks.secret(&names[1], &mut rng(5)).unwrap();
    ks.ensure_signing_key(&names[2], &mut rng(6)).unwrap();
    assert_eq!(objects_labelled(&session, names[0].as_str()).len(), 2, "public and private");
    assert_eq!(objects_labelled(&session, names[1].as_str()).len(), 1);
    assert_eq!(objects_labelled(&session, names[2].as_str()).len(), 2);
    for name in &names {
        ks.destroy(name).unwrap();
        ks.destroy(name).unwrap();
        assert!(objects_labelled(&session, name.as_str()).is_empty(), "{name:?}");
        let tombstone = one_object(
            &session,
            &[Attribute::Class(ObjectClass::DATA), Attribute::Label(tombstone_of(name).into_bytes())],
        );
        match session.get_attributes(tombstone, &[AttributeType::Application]).unwrap().as_slice() {
            [Attribute::Application(app)] => assert_eq!(app.as_slice(), b"custodia"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_destruction_interrupted_after_its_tombstone_is_finished_by_the_next() {
    let Some(t) = token() else { return };
    let (_inspecting, ks, session) = inspect(t);
    let epoch = name("crash", "epoch/1");
    ks.generate_epoch_key(&epoch, &mut rng(7)).unwrap();
    // What `destroy` writes first, written by hand: the process "crashed" before the
    // C_DestroyObject calls.
    let tombstone = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Application(b"custodia".to_vec()),
        Attribute::Label(tombstone_of(&epoch).into_bytes()),
    ];
    session.create_object(&tombstone).unwrap();
    assert_eq!(objects_labelled(&session, epoch.as_str()).len(), 2, "the key is still there");
    // Yet it is already dead to every method.
    let ks = {
        drop(ks);
        Pkcs11Keystore::open(&t.module, INSPECT_LABEL, Zeroizing::new(USER_PIN.to_string())).unwrap()
    };
    assert_eq!(ks.state(&epoch).unwrap(), KeyState::Destroyed);
    assert!(matches!(ks.epoch_decapsulator(&epoch), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.generate_epoch_key(&epoch, &mut rng(7)), Err(KeystoreError::AlreadyExists(_))));
    // The resumed retention run finishes the job.
    ks.destroy(&epoch).unwrap();
    assert!(objects_labelled(&session, epoch.as_str()).is_empty());
    assert_eq!(session.find_objects(&[Attribute::Label(tombstone_of(&epoch).into_bytes())]).unwrap().len(), 1);
}

#[test]
fn a_decapsulator_taken_before_destruction_stops_working() {
    let Some(t) = token() else { return };
    let ks = open(t);
    let epoch = name("stale-handle", "epoch/1");
    let public = ks.generate_epoch_key(&epoch, &mut rng(10)).unwrap();
    let dec = ks.epoch_decapsulator(&epoch).unwrap();
    let key = DataKey::generate(&mut rng(11));
    let wrapped = wrap_data_key(&key, &public, b"binding", &mut rng(12));
    assert_eq!(unwrap_data_key(&wrapped, &*dec, b"binding").unwrap(), key);
    ks.destroy(&epoch).unwrap();
    let peer = EpochSecretKey::generate(&mut rng(13)).public_key();
    assert!(matches!(dec.diffie_hellman(&peer), Err(DecapError::KeyUnavailable)));
    assert_eq!(
        unwrap_data_key(&wrapped, &*dec, b"binding").unwrap_err(),
        OpenError::Keystore(DecapError::KeyUnavailable)
    );
}

#[test]
fn decapsulation_runs_concurrently_through_the_session_pool() {
    let Some(t) = token() else { return };
    let ks = Arc::new(open(t));
    let epoch = name("concurrent", "epoch/1");
    let public = ks.generate_epoch_key(&epoch, &mut rng(14)).unwrap();
    let threads: Vec<_> = (0..6u64)
        .map(|i| {
            let ks = Arc::clone(&ks);
            let (epoch, public) = (epoch.clone(), public.clone());
            std::thread::spawn(move || {
                let dec = ks.epoch_decapsulator(&epoch).unwrap();
                for j in 0..15u64 {
                    let key = DataKey::generate(&mut rng(1000 * i + j));
                    let wrapped = wrap_data_key(&key, &public, b"b", &mut rng(5000 + 1000 * i + j));
                    assert_eq!(unwrap_data_key(&wrapped, &*dec, b"b").unwrap(), key);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn racing_generations_of_one_name_make_one_key() {
    let Some(t) = token() else { return };
    // Two keystores, as two parts of one process might hold, and three threads on each.
    let stores = [Arc::new(open(t)), Arc::new(open(t))];
    let epoch = name("race", "epoch/1");
    let threads: Vec<_> = (0..6u64)
        .map(|i| {
            let ks = Arc::clone(&stores[i as usize % 2]);
            let epoch = epoch.clone();
            std::thread::spawn(move || ks.generate_epoch_key(&epoch, &mut rng(i)))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let made: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(made.len(), 1, "{results:?}");
    for result in &results {
        assert!(matches!(result, Ok(_) | Err(KeystoreError::AlreadyExists(_))), "{result:?}");
    }
    assert_eq!(&stores[0].epoch_decapsulator(&epoch).unwrap().public_key(), made[0]);
}

#[test]
fn ed25519_runs_in_the_token() {
    let Some(t) = token() else { return };
    let ks = open(t);
    assert!(
        ks.supports_ed25519(),
        "this SoftHSM2 lacks CKM_EC_EDWARDS_KEY_PAIR_GEN/CKM_EDDSA (needs OpenSSL >= 1.1.1 and EdDSA enabled)"
    );
}

#[test]
fn login_and_token_errors_are_told_apart() {
    let Some(t) = token() else { return };
    // Only this test logs in to PIN_LABEL, so a wrong PIN really reaches C_Login.
    assert!(matches!(
        Pkcs11Keystore::open(&t.module, PIN_LABEL, Zeroizing::new("wrong-pin".into())),
        Err(KeystoreError::WrongMasterKey)
    ));
    let ks = Pkcs11Keystore::open(&t.module, PIN_LABEL, Zeroizing::new(USER_PIN.into())).unwrap();
    assert_eq!(ks.state(&name("pin", "x")).unwrap(), KeyState::Absent);
    for label in ["no-such-token", "", &"x".repeat(33)] {
        assert!(
            matches!(
                Pkcs11Keystore::open(&t.module, label, Zeroizing::new(USER_PIN.into())),
                Err(KeystoreError::NotAKeystore(_))
            ),
            "{label:?}"
        );
    }
    assert!(matches!(
        Pkcs11Keystore::open(Path::new("/nonexistent/libpkcs11.so"), LABEL, Zeroizing::new(USER_PIN.into())),
        Err(KeystoreError::Io { .. })
    ));
}
