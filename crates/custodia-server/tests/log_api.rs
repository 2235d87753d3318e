//! The audit log served to auditors under `/log/` (C2SP tlog-tiles): an auditor holding only the
//! verifier key fetches the checkpoint and every tile and bundle through the router, and
//! recomputes the tree; a flipped bit in anything fetched is caught and located; bad paths are
//! problem+json.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use custodia_server::app;
use custodia_tlog::{
    EntryTile, NoteVerifier, ReadError, SignedCheckpoint, Tile, TileSource, Verifiers, VerifyError, new_tiles,
    verify_tiled_log,
};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use http_body_util::BodyExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tower::ServiceExt;

const NOW: i64 = 1_780_000_000_000;

async fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let config = VaultConfig { sites: vec!["anzalduas".into(), "pharr".into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let vault = Vault::open(dir.path(), Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(2)), None)
        .unwrap();
    // Six days of hourly face epochs on two sites: a few hundred events, so more than one tile.
    vault.ensure_epochs(NOW - 3 * DAY_MS, NOW + 3 * DAY_MS).unwrap();
    (dir, vault)
}

async fn get(vault: &Vault, path: &str) -> (StatusCode, Option<String>, Option<String>, Vec<u8>) {
    let response = app(vault.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let h = |name| response.headers().get(name).map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_string());
    let (ct, cc) = (h(header::CONTENT_TYPE), h(header::CACHE_CONTROL));
    (status, ct, cc, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

struct Fetched(HashMap<String, Vec<u8>>);

impl TileSource for Fetched {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        self.0.get(&tile.path()).cloned().ok_or(ReadError::Backend(format!("{} not fetched", tile.path())))
    }
    fn read_entry_bundle(&self, bundle: &EntryTile) -> Result<Vec<u8>, ReadError> {
        self.0.get(&bundle.path()).cloned().ok_or(ReadError::Backend(format!("{} not fetched", bundle.path())))
    }
}

#[tokio::test]
async fn an_auditor_recomputes_the_served_log_and_catches_any_flipped_bit() {
    let (_dir, vault) = vault().await;
    let (status, ct, cc, body) = get(&vault, "/log/checkpoint").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(cc.as_deref(), Some("no-store"));
    let key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let known: Verifiers = [key.clone()].into_iter().collect();
    assert_eq!(vault.audit_log().origin(), "custodia/anzalduas,pharr");
    let cp = SignedCheckpoint::open(&body, "custodia/anzalduas,pharr", &key, &known).unwrap().checkpoint;
    let size = cp.size();
    assert!(size > 256, "want more than one tile, have {size} entries");

    let mut fetched = HashMap::new();
    let paths: Vec<String> =
        new_tiles(0, size).iter().map(Tile::path).chain(EntryTile::all_for(size).map(|b| b.path())).collect();
    for path in &paths {
        let (status, ct, cc, data) = get(&vault, &format!("/log/{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ct.as_deref(), Some("application/octet-stream"));
        let full = !path.contains(".p/");
        assert_eq!(cc.as_deref() == Some("public, max-age=31536000, immutable"), full, "{path}");
        fetched.insert(path.clone(), data);
    }
    let source = Fetched(fetched);
    verify_tiled_log(&cp, &source, |_, _| {}).unwrap();

    // One flipped bit in any tile or bundle: caught, and the error names the tile or the root.
    for path in &paths {
        let mut tampered = Fetched(source.0.clone());
        let data = tampered.0.get_mut(path).unwrap();
        let at = data.len() / 2;
        data[at] ^= 0x10;
        let err = verify_tiled_log(&cp, &tampered, |_, _| {}).expect_err(path);
        match &err {
            // A changed entry shows as its leaf differing from the level-0 tile that covers it.
            VerifyError::TileMismatch { tile, .. } => assert_eq!(tile, &path.replace("entries", "0")),
            VerifyError::RootMismatch { .. } | VerifyError::Tile { .. } => {}
            other => panic!("{path}: unexpected {other}"),
        }
    }
    // A truncated log (one bundle short) is caught.
    let mut short = Fetched(source.0.clone());
    let last = EntryTile::all_for(size).last().unwrap().path();
    short.0.remove(&last);
    assert!(verify_tiled_log(&cp, &short, |_, _| {}).is_err());
}

#[tokio::test]
async fn bad_and_future_tile_paths_are_problems() {
    let (_dir, vault) = vault().await;
    for path in [
        "/log/tile/0/1",
        "/log/tile/0/000.p/0",
        "/log/tile/0/000.p/256",
        "/log/tile/x/000",
        "/log/tile/entries/0001",
        "/log/nonsense",
    ] {
        let (status, ct, _, body) = get(&vault, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "urn:custodia:problem:bad-tile-path");
    }
    for path in ["/log/tile/0/x001/000", "/log/tile/entries/999", "/log/tile/3/000.p/1"] {
        let (status, ct, _, _) = get(&vault, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
    }
    let (status, _, _, body) = get(&vault, "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["paths"]["/log/checkpoint"].is_object() && json["paths"]["/log/tile/{path}"].is_object());
}

#[tokio::test]
async fn the_witness_route_cosigns_answers_conflicts_with_its_size_and_refuses_forks() {
    use custodia_tlog::CosignatureSigner;
    use custodia_vault::audit::witness::{Witness, add_checkpoint_body};
    let (dir, vault) = vault().await;
    let log_key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let signer = CosignatureSigner::generate("oig.example/w", &mut ChaCha20Rng::seed_from_u64(4)).unwrap();
    let witness = Arc::new(Witness::new(signer, log_key, &dir.path().join("witness.state")));
    let router = custodia_server::witness_app(witness, || 1_790_000_000);
    let post = |body: String| {
        let router = router.clone();
        async move {
            let response =
                router.oneshot(Request::post("/add-checkpoint").body(Body::from(body)).unwrap()).await.unwrap();
            let status = response.status();
            let ct = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
            (status, ct, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
        }
    };
    let first = vault.publish_checkpoint().unwrap();
    let (status, _, line) = post(add_checkpoint_body(0, &[], &first.text)).await;
    assert_eq!(status, StatusCode::OK, "{line}");
    assert!(line.starts_with("— oig.example/w "));
    // Growth, sent from a stale size: 409 with the size the witness knows, then accepted.
    vault.ensure_epochs(NOW + 3 * DAY_MS, NOW + 4 * DAY_MS).unwrap();
    let second = vault.publish_checkpoint().unwrap();
    let (status, ct, body) = post(add_checkpoint_body(0, &[], &second.text)).await;
    assert_eq!(
        (status, ct.as_deref(), body.trim()),
        (StatusCode::CONFLICT, Some("text/x.tlog.size"), first.size.to_string().as_str())
    );
    let proof = vault.audit_log().prove_consistency(first.size, second.size).unwrap();
    let (status, _, _) = post(add_checkpoint_body(first.size, &proof, &second.text)).await;
    assert_eq!(status, StatusCode::OK);
    // The first checkpoint again, now a rollback: refused as problem+json.
    let (status, ct, body) = post(add_checkpoint_body(second.size, &[], &first.text)).await;
    assert_eq!((status, ct.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("application/problem+json")), "{body}");
    assert!(body.contains("shrank"), "{body}");
    let (status, _, _) = post("garbage".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
