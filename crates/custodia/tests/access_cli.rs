//! The access commands end to end on a demo vault: an admin adds an officer and grants it the
//! site, checks and installs policies; the officer searches and reads an image through
//! `custodia serve` with a purpose and a case; a disabled officer's token stops working.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

fn custodia(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custodia"));
    command.args(args).env("CUSTODIA_LOG", "error");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("custodia runs")
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = custodia(args, env);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = custodia(args, env);
    assert!(!out.status.success(), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> (Server, String) {
    let port = common::free_port();
    let server = Server(common::spawn_serve(dir, port, Stdio::null(), Duration::from_secs(30)));
    (server, format!("http://127.0.0.1:{port}"))
}

#[test]
fn an_officer_searches_and_reads_with_purpose_and_case_and_the_admin_controls_it() {
    let root = tempfile::tempdir().unwrap();
    let demo = root.path().join("demo");
    ok(&["demo", "--dir", demo.to_str().unwrap(), "--captures", "12", "--quiet"], &[]);
    let vault = demo.join("vault");
    let v = vault.to_str().unwrap();

    let added = ok(&["principal", "add", "officer-1", "--role", "officer", "--vault", v], &[]);
    let token = added.lines().last().unwrap().trim().to_string();
    assert!(token.starts_with("cst_"), "{added}");
    ok(&["principal", "add", "maint-1", "--role", "maintainer", "--vault", v], &[]);
    ok(&["principal", "grant", "officer-1", "--role", "officer", "--scope", "site:anzalduas", "--vault", v], &[]);
    let listed = ok(&["principal", "list", "--vault", v], &[]);
    assert!(listed.contains("officer-1") && listed.contains("maint-1"), "{listed}");
    assert!(
        fails(&["principal", "add", "officer-1", "--role", "officer", "--vault", v], &[]).contains("already exists")
    );
    assert!(fails(&["principal", "add", "x", "--role", "janitor", "--vault", v], &[]).contains("unknown role"));

    // Policies: a bad one names its line and changes nothing.
    let bad = root.path().join("bad.toml");
    let shown = ok(&["policy", "show", "--vault", v], &[]);
    std::fs::write(&bad, shown.replace("face = \"12h\"", "face = \"twelve hours\"")).unwrap();
    let line = shown.lines().position(|l| l.starts_with("face = ")).unwrap() + 1;
    assert!(fails(&["policy", "check", bad.to_str().unwrap()], &[]).contains(&format!("policy line {line}")));
    assert!(fails(&["policy", "set", bad.to_str().unwrap(), "--vault", v], &[]).contains("unchanged"));
    assert_eq!(ok(&["policy", "show", "--vault", v], &[]), shown);

    let (_server, url) = serve(&vault);
    let env = [("CUSTODIA_TOKEN", token.as_str()), ("PLATE", "not-a-plate-we-have")];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let from = (now - 60 * 86_400_000).to_string();
    let client = ["--url", url.as_str(), "--purpose", "inv", "--case", "2026-118"];
    let search: Vec<&str> = [&["search", "--site", "anzalduas", "--from-ms", from.as_str()][..], &client[..]].concat();
    let found: serde_json::Value = serde_json::from_str(&ok(&search, &env)).unwrap();
    let records = found["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{found}");
    let with_crop = records
        .iter()
        .find(|r| r["images"].as_array().unwrap().iter().any(|i| i == "plate-crop"))
        .expect("a record with a plate crop");
    let id = with_crop["record"].as_str().unwrap();

    let out = root.path().join("crop.jpg");
    let get: Vec<&str> = [&["get", id, "plate-crop", "--out", out.to_str().unwrap()][..], &client[..]].concat();
    ok(&get, &env);
    assert_eq!(&std::fs::read(&out).unwrap()[..2], &[0xFF, 0xD8], "a JPEG");
    let meta: Vec<&str> = [&["get", id][..], &client[..]].concat();
    let view: serde_json::Value = serde_json::from_str(&ok(&meta, &env)).unwrap();
    assert_eq!(view["record"], id);

    let plate_search: Vec<&str> = [&["search", "--plate-env", "PLATE"][..], &client[..]].concat();
    let none: serde_json::Value = serde_json::from_str(&ok(&plate_search, &env)).unwrap();
    assert_eq!(none["records"].as_array().unwrap().len(), 0);

    let wrong_purpose: Vec<&str> =
        [&["get", id, "--url", url.as_str(), "--purpose", "curiosity", "--case", "1"][..]].concat();
    assert!(fails(&wrong_purpose, &env).contains("Refused by policy"));

    // The admin CLI works on the folder, so not beside a running vault: it says so.
    assert!(fails(&["principal", "disable", "officer-1", "--vault", v], &[]).contains("custodia serve"));
    drop(_server);
    ok(&["principal", "disable", "officer-1", "--vault", v], &[]);
    let (_server, url) = serve(&vault);
    let search: Vec<&str> = search.iter().map(|a| if a.starts_with("http://") { url.as_str() } else { a }).collect();
    assert!(fails(&search, &env).contains("401"));
}
