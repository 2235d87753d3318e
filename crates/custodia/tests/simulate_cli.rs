//! `custodia simulate` end to end: four lanes at 200 captures/s for 5 s against a real vault and
//! server in the binary's process, then the summary's exactly-once line.
//!
//! The truth checked is outside the simulator's own counters: the vault folder is kept (`--dir`)
//! and its record count is read back by opening the vault afresh after the process has exited,
//! and must equal both the acknowledged count the summary printed and what 5 s at 200/s makes.

use std::process::Command;
use std::sync::Arc;

use custodia_vault::Vault;
use custodia_vault::clock::SystemClock;

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_custodia"))
        .arg("simulate")
        .args(args)
        .env("CUSTODIA_LOG", "error")
        .output()
        .expect("custodia runs")
}

#[test]
fn four_lanes_at_200_per_second_store_every_capture_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let output = simulate(&["--lanes", "4", "--rate", "200", "--duration", "5s", "--dir", run_dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));

    // One line a second while loading, at least five.
    let seconds = stdout.lines().filter(|l| l.contains(" s  acked ")).count();
    assert!(seconds >= 5, "expected a line a second:\n{stdout}");

    let once = stdout.lines().find(|l| l.trim_start().starts_with("exactly once:")).expect("an exactly-once line");
    assert!(once.contains("exactly once: ok"), "{once}");
    let numbers: Vec<u64> = once.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers.len(), 2, "{once}");
    let (records, acknowledged) = (numbers[0], numbers[1]);
    assert_eq!(records, acknowledged, "{once}");
    // 5 s at 200/s is 1000 captures, all drained within the default 10 s.
    assert_eq!(acknowledged, 1000, "{stdout}");

    // The vault on disk, opened by someone else, agrees.
    let key = run_dir.join("keys/master.key");
    assert!(key.exists());
    // The vault starts its committer task, so it opens inside a runtime.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let records_on_disk = runtime.block_on(async {
        let vault =
            Vault::open(&run_dir.join("vault"), Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
        vault.record_count().unwrap()
    });
    assert_eq!(records_on_disk, 1000);
}

#[test]
fn json_mode_prints_one_object_a_second_and_a_summary() {
    let output = simulate(&["--lanes", "2", "--rate", "50", "--duration", "2s", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["exactly_once"], true);
    assert_eq!(summary["acknowledged"], 100);
    assert_eq!(summary["records"], 100);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["rss_mb"].as_f64().is_some_and(|r| r > 0.0)));
}

#[test]
fn refuses_unbounded_runs_with_a_clear_message() {
    for (args, says) in [
        (&["--lanes", "1001", "--rate", "10", "--duration", "1s"][..], "--lanes must be 1 to 1000"),
        (&["--lanes", "4", "--rate", "100001", "--duration", "1s"][..], "--rate must be above 0 and at most 100000"),
        (&["--lanes", "4", "--rate", "10", "--duration", "25h"][..], "--duration must be above 0 and at most 24h"),
    ] {
        let output = simulate(args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
