//! `cargo xtask bench [--quick] [--only NAME] [--out FILE]`: the one command that runs every
//! benchmark the issues ask for and writes `BENCHMARKS.md` from what they measured.
//!
//! Two kinds of benchmark feed it:
//! - criterion benches: after each run the harness reads criterion's own results
//!   (`target/criterion/**/new/{estimates,benchmark}.json` written during this run) and reports
//!   the mean time, and the rate when the bench declared a throughput;
//! - end-to-end benches (`harness = false`) that print their own figures and ratios against a
//!   named peer or hardware limit measured in the same run: their output is kept verbatim.
//!
//! Goals are attached to figures here, by benchmark id, so the table shows figure, goal and
//! whether it is met. `--quick` (what CI runs) uses short measurement times and small inputs,
//! skips the benches whose set-up alone takes minutes, and writes `target/BENCHMARKS.quick.md`
//! instead of the committed file, so benchmarks never rot and CI never rewrites the record.
//!
//! What it is not: a regression tracker. It records one run on one machine, with the machine.
//!
//! `cargo xtask soak [--minutes M]` ([`soak`]) is the long ingest soak (issue #6): it writes its
//! own marked section of the same file, which `bench` keeps when it rewrites the rest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

mod soak;

/// One benchmark target.
struct Bench {
    /// Short name for `--only` and the section heading.
    name: &'static str,
    /// The issue it measures for.
    issue: &'static str,
    package: &'static str,
    target: &'static str,
    /// Prints its own figures (`harness = false`) rather than criterion's.
    prints_figures: bool,
    /// Set-up alone takes minutes (10-million-entry stores): not run in quick mode.
    heavy: bool,
    /// Environment for quick mode (smaller inputs).
    quick_env: &'static [(&'static str, &'static str)],
    /// Measures Python peers (pdqhash, FAISS): outside quick mode the harness makes a venv with
    /// them from PyPI and passes it as `PYTHON`.
    python_peers: bool,
    /// Environment variables naming peers built by hand outside the repository (never by
    /// this harness: nothing fetched is built by our scripts). Passed through when set and
    /// shown in the command line written to BENCHMARKS.md.
    peer_env: &'static [&'static str],
    what: &'static str,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "ingest",
        issue: "#2",
        package: "custodia-server",
        target: "ingest",
        prints_figures: true,
        heavy: false,
        quick_env: &[("INGEST_BENCH_CAPTURES", "300")],
        python_peers: false,
        peer_env: &[],
        what: "end-to-end durable ingest over loopback vs this disk's ceilings; p99 latency at 500/s; 2,000/s offered by 64 lanes",
    },
    Bench {
        name: "lane",
        issue: "#2",
        package: "custodia-lane",
        target: "lane_cost",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "the lane's cost per capture on one core",
    },
    Bench {
        name: "strip",
        issue: "#2",
        package: "custodia-lane",
        target: "strip",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "metadata stripping without re-encoding",
    },
    Bench {
        name: "seal",
        issue: "#2",
        package: "custodia-seal",
        target: "seal",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "sealed-capture format, 251 KB capture, with raw AES-GCM and SHA-256 peers",
    },
    Bench {
        name: "synth",
        issue: "#2",
        package: "custodia-synth",
        target: "generate",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "synthetic traffic generation for the demo, with the JPEG-encode floor",
    },
    Bench {
        name: "tlog",
        issue: "#3",
        package: "custodia-tlog",
        target: "tlog",
        prints_figures: false,
        heavy: true,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "transparency-log math: leaf hashing, append, proofs, full recompute of 10M entries",
    },
    Bench {
        name: "audit",
        issue: "#3",
        package: "custodia-vault",
        target: "audit_log",
        prints_figures: true,
        heavy: false,
        quick_env: &[("CUSTODIA_BENCH_ENTRIES", "200000")],
        python_peers: false,
        peer_env: &[],
        what: "the vault's durable audit log: append rate vs raw leaf hashing, full verification, proofs",
    },
    Bench {
        name: "access",
        issue: "#4",
        package: "custodia-vault",
        target: "access",
        prints_figures: true,
        // The 10M-record vault is built once and cached under target/access-bench/; quick mode
        // builds a 200,000-record one fresh.
        heavy: false,
        quick_env: &[("CUSTODIA_ACCESS_RECORDS", "200000")],
        python_peers: false,
        peer_env: &[],
        what: "search p99 by plate and by lane window over 10,000,000 records beside raw SQLite; authorised image reads beside this disk's fdatasync rate",
    },
    Bench {
        name: "shred",
        issue: "#4",
        package: "custodia-vault",
        target: "shred",
        prints_figures: true,
        heavy: false,
        quick_env: &[("CUSTODIA_SHRED_RECORDS", "20000")],
        python_peers: false,
        peer_env: &[],
        what: "crypto-shredding one epoch of 1,000,000 records: key destruction, index clean-up, blob deletion beside this disk's own unlink rate",
    },
    Bench {
        name: "rotation",
        issue: "#4",
        package: "custodia-store",
        target: "rotation",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "master key rotation over 2,000 keys beside this disk's own floor for the same writes, fsyncs and renames",
    },
    Bench {
        name: "pdq-hash",
        issue: "#5",
        package: "custodia-pdq",
        target: "hash",
        prints_figures: false,
        heavy: false,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "PDQ hashing of a 1080p JPEG on both pipelines",
    },
    Bench {
        name: "pdq-index",
        issue: "#5",
        package: "custodia-pdq",
        target: "index",
        prints_figures: false,
        heavy: true,
        quick_env: &[],
        python_peers: false,
        peer_env: &[],
        what: "Hamming search: multi-index vs brute force, batch join",
    },
    Bench {
        name: "leak-robustness",
        issue: "#5",
        package: "custodia",
        target: "leak_robustness",
        prints_figures: true,
        heavy: false,
        quick_env: &[("LEAK_N", "12")],
        python_peers: false,
        peer_env: &[],
        what: "recall per transform of demo images and false matches per million unrelated pairs",
    },
    Bench {
        name: "leak-hash-speed",
        issue: "#5",
        package: "custodia",
        target: "leak_hash_speed",
        prints_figures: true,
        heavy: false,
        quick_env: &[("LEAK_IMAGES", "10")],
        python_peers: true,
        peer_env: &["PDQ_REFERENCE_BIN"],
        what: "hashing 1080p JPEGs: ours on both pipelines beside Python pdqhash and the ThreatExchange C++ reference, same images, same run",
    },
    Bench {
        name: "leak-match",
        issue: "#5",
        package: "custodia",
        target: "leak_match",
        prints_figures: true,
        heavy: true,
        quick_env: &[],
        python_peers: true,
        peer_env: &[],
        what: "100,000 dump hashes x 8 variants against 10,000,000 stored, beside FAISS IndexBinaryFlat",
    },
];

/// A goal by criterion id prefix: (prefix, goal text, check on the mean time in seconds).
type Goal = (&'static str, &'static str, fn(f64) -> bool);

/// The goals checked from criterion figures.
const GOALS: &[Goal] = &[
    ("lane/strip+seal+sign", "≤ 2 ms", |s| s <= 0.002),
    ("hash_1080p_jpeg/pdq-fast-v1", "≥ 150 images/s/core (≤ 6.7 ms)", |s| s <= 1.0 / 150.0),
    ("query_r31_10000000/multi_index", "≤ 5 ms", |s| s <= 0.005),
    ("verify_entries_10M", "≤ 20 s", |s| s <= 20.0),
];

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match bench(&args[1..]) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("xtask bench: {message}");
                std::process::ExitCode::FAILURE
            }
        },
        Some("soak") => match soak::soak(&args[1..]) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("xtask soak: {message}");
                std::process::ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo xtask bench [--quick] [--only NAME[,NAME]] [--out FILE]");
            eprintln!(
                "       cargo xtask soak [--minutes M (default 10)] [--lanes N (default 32)] [--hashes-per-image H (default 6)] [--out FILE] [--no-build]"
            );
            eprintln!("benches: {}", BENCHES.iter().map(|b| b.name).collect::<Vec<_>>().join(", "));
            std::process::ExitCode::from(2)
        }
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let only: Option<Vec<String>> = value_of("--only").map(|v| v.split(',').map(str::to_string).collect());
    let root = workspace_root();
    let out = value_of("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| if quick { root.join("target/BENCHMARKS.quick.md") } else { root.join("BENCHMARKS.md") });
    if let Some(names) = &only {
        for name in names {
            if !BENCHES.iter().any(|b| b.name == name) {
                return Err(format!("no bench named {name:?}"));
            }
        }
    }

    let mut blocks: Vec<(&str, String)> = Vec::new();
    for bench in BENCHES {
        if only.as_ref().is_some_and(|names| !names.iter().any(|n| n == bench.name)) {
            continue;
        }
        let mut command = vec!["bench", "-p", bench.package, "--bench", bench.target];
        if quick && bench.heavy {
            command.push("--no-run");
        } else if quick {
            command.extend(["--", "--quick"]);
            if !bench.prints_figures {
                command.extend(["--warm-up-time", "0.5", "--measurement-time", "1", "--noplot"]);
            }
        }
        let shown = format!("cargo {}", command.join(" "));
        let mut section = String::new();
        let _ = writeln!(
            section,
            "\n### {} ({}) — {}\n\n`{}`\n",
            bench.name,
            bench.issue,
            bench.what,
            full_command(bench, quick)
        );
        if quick && bench.heavy {
            // Still compiled, so that quick mode alone proves every bench builds (CI relies on it).
            eprintln!("xtask bench: {shown} (not run in quick mode)");
            let status =
                cargo().args(&command).current_dir(&root).status().map_err(|e| format!("running {shown}: {e}"))?;
            if !status.success() {
                return Err(format!("{shown} failed ({status})"));
            }
            let _ = writeln!(
                section,
                "Not run in quick mode (its set-up builds a 10-million-entry store); compiled by `{shown}`."
            );
            blocks.push((bench.name, section));
            continue;
        }
        eprintln!("xtask bench: {shown}");
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut cmd = cargo();
        cmd.args(&command).current_dir(&root);
        if quick {
            for (key, value) in bench.quick_env {
                cmd.env(key, value);
            }
        } else if bench.python_peers && std::env::var_os("PYTHON").is_none() {
            cmd.env("PYTHON", python_peers(&root)?);
        }
        let output = cmd.output().map_err(|e| format!("running {shown}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
            return Err(format!("{shown} failed ({})", output.status));
        }
        let seconds = clock.elapsed().as_secs_f64();
        if bench.prints_figures {
            let lines: Vec<&str> = stdout
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("running") && !l.starts_with("test result"))
                .collect();
            let _ = writeln!(section, "```text\n{}\n```", lines.join("\n"));
        } else {
            let results = criterion_results(&root.join("target/criterion"), started)?;
            if results.is_empty() {
                return Err(format!("{shown} left no criterion results"));
            }
            let _ = writeln!(section, "| benchmark | mean | rate | goal |\n|---|---|---|---|");
            for result in results {
                let goal = GOALS.iter().find(|(prefix, _, _)| result.id.starts_with(prefix));
                let goal_text = match goal {
                    Some((_, text, check)) => {
                        format!("{text}: {}", if check(result.mean_s) { "met" } else { "**not met**" })
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    section,
                    "| {} | {} | {} | {} |",
                    result.id,
                    format_time(result.mean_s),
                    result.rate.unwrap_or_default(),
                    goal_text
                );
            }
        }
        let _ = writeln!(section, "\nMeasured {}.", today());
        eprintln!("xtask bench: {} done in {seconds:.0} s", bench.name);
        blocks.push((bench.name, section));
    }

    // `--only` into an existing record: replace just those sections, keep every other one as it
    // was measured (each section carries its own date).
    if only.is_some() && !quick && out.exists() {
        let mut doc = std::fs::read_to_string(&out).map_err(|e| format!("reading {}: {e}", out.display()))?;
        for (name, block) in &blocks {
            doc = replace_section(&doc, name, block);
        }
        doc = replace_goal_summary(&doc);
        std::fs::write(&out, doc).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!(
            "xtask bench: updated {} in {}",
            blocks.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            out.display()
        );
        return Ok(());
    }
    let sections: String = blocks.iter().map(|(_, b)| b.as_str()).collect();
    let mut doc = String::new();
    let _ = writeln!(doc, "# Benchmarks\n");
    let _ = writeln!(
        doc,
        "Written by `cargo xtask bench{}` on {} — do not edit by hand; run it again.\n",
        if quick { " --quick" } else { "" },
        today()
    );
    let _ = writeln!(doc, "Machine: {}.\n", machine());
    let _ = writeln!(
        doc,
        "Each section names the command that reproduces it. End-to-end benches print their figure beside a \
         named peer or hardware limit measured in the same run, and the ratio. Criterion figures are means; \
         rates are per second where the bench declares a throughput. Figures measured while other work ran \
         on the same two cores are lower bounds. What bounds each figure and what still escapes: \
         [docs/performance.md](docs/performance.md)."
    );
    let summary = goal_summary(&sections);
    if !summary.is_empty() {
        let _ = writeln!(doc, "\n{GOALS_HEADING}\n");
        for line in &summary {
            let _ = writeln!(doc, "- {line}");
        }
    }
    doc.push_str(&sections);
    // Sections other commands write (the soak) are kept: this command does not run them.
    doc.push_str(&kept_sections(&out));
    std::fs::write(&out, doc).map_err(|e| format!("writing {}: {e}", out.display()))?;
    eprintln!("xtask bench: wrote {}", out.display());
    Ok(())
}

const GOALS_HEADING: &str = "Goals checked from criterion figures:";

/// One line per criterion table row that carries a goal ("| id | mean | rate | goal: met |"),
/// in document order: the summary at the top is read from the tables themselves, so after
/// `--only` it still agrees with every section, measured now or kept from before.
fn goal_summary(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix('|')?.strip_suffix('|')?.split('|').map(str::trim).collect();
            let [id, mean, _rate, goal] = cells[..] else { return None };
            let (text, verdict) = goal.rsplit_once(": ")?;
            let verdict = match verdict {
                "met" => "met",
                "**not met**" => "not met",
                _ => return None,
            };
            Some(format!("{id} {mean} → {verdict} ({text})"))
        })
        .collect()
}

/// `doc` with its goal summary rewritten from its tables (see [`goal_summary`]).
fn replace_goal_summary(doc: &str) -> String {
    let lines: String = goal_summary(doc).iter().map(|l| format!("- {l}\n")).collect();
    match doc.find(GOALS_HEADING) {
        Some(start) => {
            let body = start + GOALS_HEADING.len();
            let end = doc[body..].find("\n### ").map_or(doc.len(), |i| body + i);
            format!("{}{GOALS_HEADING}\n\n{lines}{}", &doc[..start], &doc[end..])
        }
        None => doc.to_string(),
    }
}

/// `doc` with bench section `name` (from its `### name (` heading to the next heading or marked
/// section) replaced by `block`, or `block` added before the marked sections if it has none.
fn replace_section(doc: &str, name: &str, block: &str) -> String {
    let heading = format!("\n### {name} (");
    let boundary = |from: usize| -> usize {
        [doc[from..].find("\n### "), doc[from..].find("\n<!-- section ")]
            .into_iter()
            .flatten()
            .min()
            .map_or(doc.len(), |i| from + i)
    };
    match doc.find(&heading) {
        Some(start) => {
            let end = boundary(start + 1);
            format!("{}{}{}", &doc[..start], block.trim_end_matches('\n').to_string() + "\n", &doc[end..])
        }
        None => {
            // A new section goes before the marked ones, with one blank line on each side.
            let at = doc.find("\n<!-- section ").unwrap_or(doc.len());
            format!("{}\n\n{}\n{}", doc[..at].trim_end_matches('\n'), block.trim_matches('\n'), &doc[at..])
        }
    }
}

/// Marks around a section that a command other than `bench` writes (`cargo xtask soak`).
fn section_marks(name: &str) -> (String, String) {
    (
        format!("<!-- section {name}: written by cargo xtask soak, kept by cargo xtask bench -->"),
        format!("<!-- end section {name} -->"),
    )
}

/// Every marked section of the file at `path`, in order, marks included.
fn kept_sections(path: &Path) -> String {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut kept = String::new();
    let mut rest = old.as_str();
    while let Some(start) = rest.find("<!-- section ") {
        let Some(name) = rest[start + 13..].split(':').next() else { break };
        let (_, end_mark) = section_marks(name);
        let Some(end) = rest[start..].find(&end_mark) else { break };
        kept.push('\n');
        kept.push_str(&rest[start..start + end + end_mark.len()]);
        kept.push('\n');
        rest = &rest[start + end + end_mark.len()..];
    }
    kept
}

/// Writes `body` as section `name` of the file at `path`: replaces the section if the file has
/// it, else appends it (to a new file with the harness's heading if there is none).
pub(crate) fn write_section(path: &Path, name: &str, body: &str) -> Result<(), String> {
    let (start_mark, end_mark) = section_marks(name);
    let block = format!("{start_mark}\n{}\n{end_mark}", body.trim_matches('\n'));
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nSections written by `cargo xtask soak`; `cargo xtask bench` writes the rest of this file and keeps them.\n".into()
    });
    let new = match (old.find(&start_mark), old.find(&end_mark)) {
        (Some(start), Some(end)) if end > start => format!("{}{block}{}", &old[..start], &old[end + end_mark.len()..]),
        _ => format!("{}\n\n{block}\n", old.trim_end_matches('\n')),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, new).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A venv under `target/` with the Python peers, made once from PyPI.
fn python_peers(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import faiss, pdqhash, PIL, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!("xtask bench: making {} with faiss-cpu, pdqhash, pillow, numpy from PyPI", venv.display());
        let run = |program: &Path, args: &[&str]| -> Result<(), String> {
            let status =
                Command::new(program).args(args).status().map_err(|e| format!("{}: {e}", program.display()))?;
            if status.success() { Ok(()) } else { Err(format!("{} {} failed", program.display(), args.join(" "))) }
        };
        run(Path::new("python3"), &["-m", "venv", venv.to_str().ok_or("venv path is not UTF-8")?])?;
        run(&venv.join("bin/pip"), &["install", "--quiet", "faiss-cpu", "pdqhash", "pillow", "numpy"])?;
    }
    Ok(python)
}

fn full_command(bench: &Bench, quick: bool) -> String {
    let env: String = if quick {
        bench.quick_env.iter().map(|(k, v)| format!("{k}={v} ")).collect()
    } else {
        bench.peer_env.iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} "))).collect()
    };
    let tail = if quick { " -- --quick" } else { "" };
    format!("{env}cargo bench -p {} --bench {}{tail}", bench.package, bench.target)
}

struct CriterionResult {
    id: String,
    mean_s: f64,
    rate: Option<String>,
}

/// Every criterion result written since `since`, sorted by id.
fn criterion_results(dir: &Path, since: SystemTime) -> Result<Vec<CriterionResult>, String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let is_new_estimates = path.file_name().is_some_and(|n| n == "estimates.json")
                && path.parent().and_then(Path::file_name).is_some_and(|n| n == "new");
            let fresh = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
            if !(is_new_estimates && fresh) {
                continue;
            }
            let estimates: serde_json::Value = read_json(&path)?;
            let benchmark: serde_json::Value = read_json(&path.with_file_name("benchmark.json"))?;
            let mean_ns = estimates["mean"]["point_estimate"].as_f64().ok_or("estimates.json without a mean")?;
            let id = benchmark["full_id"].as_str().unwrap_or("?").to_string();
            let rate = match (&benchmark["throughput"]["Elements"], &benchmark["throughput"]["Bytes"]) {
                (serde_json::Value::Number(n), _) => {
                    n.as_f64().map(|n| format!("{:.0} elements/s", n / (mean_ns * 1e-9)))
                }
                (_, serde_json::Value::Number(n)) => {
                    n.as_f64().map(|n| format!("{:.1} MB/s", n / (mean_ns * 1e-9) / 1e6))
                }
                _ => Some(format!("{:.0}/s", 1.0 / (mean_ns * 1e-9))),
            };
            found.push(CriterionResult { id, mean_s: mean_ns * 1e-9, rate });
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn format_time(seconds: f64) -> String {
    match seconds {
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        s if s >= 1e-6 => format!("{:.1} µs", s * 1e6),
        s => format!("{:.0} ns", s * 1e9),
    }
}

/// The cargo that runs this xtask (`$CARGO`), or the one on `PATH`.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace root").to_path_buf()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)).map(str::trim))
        .unwrap_or("unknown CPU");
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split(':').nth(1)))
        .map(|f| f.split_whitespace().filter(|f| ["sha_ni", "aes", "avx2", "avx512f"].contains(f)).collect())
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores, {model} ({}), {memory} memory, {rustc}, load average at start {}",
        flags.join(", "),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{BENCHES, replace_goal_summary, replace_section, workspace_root};

    /// CI builds the benches only through `cargo xtask bench --quick`, so a bench target missing
    /// from `BENCHES` would be neither measured nor compiled.
    #[test]
    fn every_bench_target_of_the_workspace_is_listed() {
        let crates = workspace_root().join("crates");
        let mut missing = Vec::new();
        let mut seen = 0;
        for entry in std::fs::read_dir(&crates).unwrap() {
            let manifest = entry.unwrap().path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
            let package = text.lines().find_map(|l| l.strip_prefix("name = \"")).unwrap().trim_end_matches('"');
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line.trim() != "[[bench]]" {
                    continue;
                }
                let target = lines
                    .next()
                    .and_then(|l| l.strip_prefix("name = \""))
                    .unwrap_or_else(|| panic!("{}: [[bench]] not followed by its name", manifest.display()))
                    .trim_end_matches('"');
                seen += 1;
                if !BENCHES.iter().any(|b| b.package == package && b.target == target) {
                    missing.push(format!("{package}/{target}"));
                }
            }
        }
        assert!(seen >= BENCHES.len(), "found only {seen} [[bench]] entries under {}", crates.display());
        assert!(missing.is_empty(), "bench targets not in BENCHES: {missing:?}");
    }

    #[test]
    fn the_goal_summary_follows_the_tables() {
        let doc = "# B\n\nGoals checked from criterion figures:\n\n- stale/line 9 ms → not met (≤ 2 ms)\n\n### a (#1) — x\n\n| benchmark | mean | rate | goal |\n|---|---|---|---|\n| a/fast | 1.46 ms | 685/s | ≤ 2 ms: met |\n| a/other | 3 ms | 1/s |  |\n| a/slow | 8.51 ms | 117/s | ≥ 150 images/s/core (≤ 6.7 ms): **not met** |\n";
        let new = replace_goal_summary(doc);
        assert!(!new.contains("stale"), "{new}");
        assert!(
            new.contains("figures:\n\n- a/fast 1.46 ms → met (≤ 2 ms)\n- a/slow 8.51 ms → not met (≥ 150 images/s/core (≤ 6.7 ms))\n\n### a (#1)"),
            "{new}"
        );
    }

    #[test]
    fn only_the_named_section_is_replaced() {
        let doc = "# B\n\nintro\n\n### a (#1) — x\n\nold a\n\n### b (#2) — y\n\nold b\n\n<!-- section soak: w -->\nsoak\n<!-- end section soak -->\n";
        let new = replace_section(doc, "a", "\n### a (#1) — x\n\nnew a\n");
        assert_eq!(
            new,
            "# B\n\nintro\n\n### a (#1) — x\n\nnew a\n\n### b (#2) — y\n\nold b\n\n<!-- section soak: w -->\nsoak\n<!-- end section soak -->\n"
        );
        let new = replace_section(doc, "b", "\n### b (#2) — y\n\nnew b\n");
        assert!(new.contains("new b\n\n<!-- section soak") && new.contains("old a") && !new.contains("old b"), "{new}");
        let added = replace_section(doc, "c", "\n### c (#3) — z\n\nc\n");
        assert!(added.contains("old b\n\n### c (#3) — z\n\nc\n\n<!-- section soak"), "{added}");
        let tight = doc.replace("old b\n\n<!--", "old b\n<!--");
        let added = replace_section(&tight, "c", "\n### c (#3) — z\n\nc\n");
        assert!(added.contains("old b\n\n### c (#3) — z\n\nc\n\n<!-- section soak"), "{added}");
        let unmarked = replace_section("# B\n\n### a (#1) — x\n\nold a\n", "c", "\n### c (#3) — z\n\nc\n");
        assert_eq!(unmarked, "# B\n\n### a (#1) — x\n\nold a\n\n### c (#3) — z\n\nc\n");
    }
}
